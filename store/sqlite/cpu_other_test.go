//go:build !unix

package sqlite

import "time"

// processCPU is not read on this system: cpu-ms/op reads 0.
func processCPU() time.Duration { return 0 }
