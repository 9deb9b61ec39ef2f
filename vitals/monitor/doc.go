// Package monitor watches one patient's live vitals: a Monitor consumes
// validated readings, a clinician's entries (consciousness, air or oxygen,
// SpO2 scale 2, manual values), physician-set thresholds and clock ticks,
// and emits events for the live stream: NEWS2 updated, alert raised,
// cleared, acknowledged or re-announced, and an input gone stale or fresh
// again (docs/protocol.md, "NEWS2, alerts and staleness").
//
// It does no I/O and reads no clock: every call passes the current time.
// One Monitor serves one patient, from one goroutine; feeding it a reading
// that changes nothing costs about a microsecond and allocates nothing
// (BenchmarkObserve).
//
// What it does with doubtful readings (an improbable value, or a problem
// the device reported): they keep their code's display fresh, but NEWS2
// does not score them and no alert counts them, neither toward raising nor
// toward clearing. A NEWS2 input fed only doubtful readings keeps its last
// sound value, marked doubtful, until that goes stale; the clinician can
// then enter a value.
package monitor
