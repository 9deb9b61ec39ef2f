package main

import (
	"runtime"

	"github.com/bedside-health/bedside/metrics"
)

// newMetrics is the server's registry, with the process's own gauges.
func newMetrics() *metrics.Registry {
	r := metrics.NewRegistry()
	r.GaugeFunc("bedside_goroutines", "Goroutines of the server process.", func() int64 { return int64(runtime.NumGoroutine()) })
	r.GaugeFunc("bedside_heap_bytes", "Bytes of allocated heap objects.", func() int64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	})
	return r
}
