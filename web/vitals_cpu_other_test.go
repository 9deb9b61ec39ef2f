//go:build !linux

package web

import (
	"testing"
	"time"
)

// processCPU is not measured outside Linux: cpu-ns/delivery then reads 0.
func processCPU(*testing.B) time.Duration { return 0 }
