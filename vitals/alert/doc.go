// Package alert holds the alert rules' building blocks for live vitals:
// the Alert record (identity, severity, rule, the triggering value,
// raised and cleared times, acknowledgement), a Board that keeps a
// patient's alerts through that life, hysteresis so one noisy reading does
// not make an alert flap, and physician-set thresholds per code. It does
// no I/O and keeps no clock: every call says what time it is.
//
// An alert's Value is health data, for the live view only: Alert's
// LogValue leaves it out, and nothing here logs.
package alert
