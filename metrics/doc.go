// Package metrics keeps the server's counters and gauges and writes them
// in the Prometheus text exposition format for GET /metrics. It is a leaf
// package: a Registry holds named families, each a counter, a gauge or a
// histogram with fixed label names, safe for concurrent use.
package metrics
