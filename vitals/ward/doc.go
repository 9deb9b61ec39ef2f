// Package ward runs one NEWS2 monitor (vitals/monitor) per patient on
// this node: every accepted reading goes through the patient's Monitor, a
// ticker lets time pass (inputs going stale, a new band holding,
// reminders), and the events are published to the patient's live stream,
// so viewers get them with offsets, history and resume like readings. A
// viewer that subscribes is first sent the current state as a snapshot.
//
// A Ward reads the clock but does no HTTP or SQL: what it must keep across
// restarts (clinicians' entries, thresholds, the alert timeline) goes
// through a Records interface that the store implements.
package ward
