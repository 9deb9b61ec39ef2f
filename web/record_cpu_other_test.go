//go:build !linux

package web

import (
	"testing"
	"time"
)

// threadCPU is not measured outside Linux: the request CPU percentile
// then reads 0.
func threadCPU(*testing.B) time.Duration { return 0 }
