package web

import (
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Linux's CPU-time clocks, which package syscall does not name.
const (
	clockProcessCPU = 2 // CLOCK_PROCESS_CPUTIME_ID
	clockThreadCPU  = 3 // CLOCK_THREAD_CPUTIME_ID
)

// threadCPU is the CPU time the calling thread has used, to the
// nanosecond. getrusage(RUSAGE_THREAD) would not do: it reports the time
// accounted at the last scheduler tick (4 ms here), so a render read
// either 0 or about 4 ms and the 99th percentile measured the tick.
func threadCPU(b *testing.B) time.Duration { return cpuClock(b, clockThreadCPU) }

// processCPU is the CPU time the whole process has used, every thread.
func processCPU(b *testing.B) time.Duration { return cpuClock(b, clockProcessCPU) }

func cpuClock(b *testing.B, clock uintptr) time.Duration {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clock, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		b.Fatal(errno)
	}
	return time.Duration(ts.Nano())
}
