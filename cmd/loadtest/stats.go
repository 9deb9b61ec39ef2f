package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// sorted, or 0 when it is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100 + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// latencies summarises a set of latencies.
type latencies struct {
	n                  int
	p50, p99, p999, mx time.Duration
}

func summarise(d []time.Duration) latencies {
	slices.Sort(d)
	l := latencies{n: len(d), p50: percentile(d, 50), p99: percentile(d, 99), p999: percentile(d, 99.9)}
	if len(d) > 0 {
		l.mx = d[len(d)-1]
	}
	return l
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times; it
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user plus system CPU time a process has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of process %d: %w", pid, err)
	}
	// The command name in parentheses may hold spaces: count fields after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("read cpu of process %d: no command name in %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// Fields from the state (3rd of stat) on: utime is the 14th, stime the 15th.
	if len(f) < 13 {
		return 0, fmt.Errorf("read cpu of process %d: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read cpu of process %d: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// procRSS returns a process's resident memory in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read memory of process %d: %q", pid, line)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("read memory of process %d: no VmRSS", pid)
}
