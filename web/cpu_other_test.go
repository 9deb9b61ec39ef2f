//go:build !linux

package web

import (
	"testing"
	"time"
)

// CPU time is not measured outside Linux: the request CPU percentile and
// cpu-ns/delivery then read 0.
func threadCPU(*testing.B) time.Duration  { return 0 }
func processCPU(*testing.B) time.Duration { return 0 }
