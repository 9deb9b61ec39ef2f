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
