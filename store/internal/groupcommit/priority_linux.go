package groupcommit

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
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

// idleClass puts the calling thread in the kernel's idle scheduling class
// (SCHED_IDLE): it runs only on CPU time no other thread of the machine
// wants, and a thread of any other class that wakes takes its CPU at
// once, where a thread at nice 10 still takes a tenth of a busy core.
// The caller has locked the thread to its goroutine. A thread cannot
// leave the idle class without CAP_SYS_NICE.
func idleClass() error {
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0); err != nil {
		return os.NewSyscallError("sched_setattr", err)
	}
	return nil
}
