package groupcommit

import (
	"fmt"
	"os"
	"syscall"
)

// lowerPriority adds by (1 to 19) to the calling thread's nice value, at
// most 19; the caller has locked the thread to its goroutine. On Linux,
// getpriority and setpriority given a thread ID read and set that thread
// alone, and a thread the runtime starts later is not a copy of a locked
// one (it starts from the runtime's template thread).
func lowerPriority(by int) error {
	if by < 1 || by > 19 {
		return fmt.Errorf("groupcommit: lower the priority by %d: want 1 to 19", by)
	}
	tid := syscall.Gettid()
	// The system call answers 20 - nice, which is never negative.
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return os.NewSyscallError("getpriority", err)
	}
	nice := min(20-p+by, 19)
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
		return os.NewSyscallError("setpriority", err)
	}
	return nil
}
