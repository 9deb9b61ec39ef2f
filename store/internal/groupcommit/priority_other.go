//go:build !linux

package groupcommit

import (
	"errors"
	"runtime"
)

// lowerPriority cannot set one thread's priority here.
func lowerPriority(int) error {
	return errors.New("groupcommit: a thread's priority is set on Linux only, not on " + runtime.GOOS)
}

// idleClass has no idle scheduling class to put the thread in here.
func idleClass() error {
	return errors.New("groupcommit: the idle scheduling class is Linux's, not " + runtime.GOOS + "'s")
}
