// Command devicesim is a simulated home vitals hub. It streams patients'
// measurements as FHIR Observations (and, for some faults, relayed
// Bluetooth values) to Bedside's device endpoint, following the ack
// contract of docs/protocol.md:
//
//	go run ./cmd/devicesim --token <device token>[,<token>...] [--tokens-file FILE]
//	    [--url ws://localhost:8080/ws/device] [--rate 1s] [--scenario normal]
//	    [--ramp 10m] [--flaky-every 30s] [--flaky-outage 8s]
//	    [--duration 0] [--ecg=true] [--ecg-format json|binary] [--seed N]
//
// Every --rate it measures heart rate (with respiratory sinus arrhythmia and
// a slow drift), SpO2, respiratory rate and temperature; a blood-pressure
// panel at once and then every three minutes; and, unless --ecg=false, a
// 250 Hz synthetic ECG (lead II) in ten chunks a second whose beats follow
// the heart rate, as FHIR SampledData or, with --ecg-format=binary, as
// compact binary waveform frames (docs/protocol.md).
//
// Scenarios are patients: normal, fever, hypoxia, afib (atrial
// fibrillation: irregularly irregular beats without P waves, a jumpy
// rate), deteriorating (NEWS2 climbing from 0 to high over --ramp); and
// behaviours that combine with any patient, joined by "+": flaky (the link
// drops about every --flaky-every and comes back after about
// --flaky-outage, with nothing lost) and faulty (now and then a heart rate
// of 400, a value in the wrong unit, NaN, an oximeter with no value, a
// temperature in kelvin, a garbled frame, and a cuff reporting itself too
// loose). Example: --scenario deteriorating+flaky.
//
// Several tokens (comma-separated, or one per line in --tokens-file) stream
// one patient each, concurrently, with their own seeds.
//
// Sequences count from 1. Each message is kept until the server acks it;
// after a lost connection devicesim reconnects with backoff and resends,
// in order, what is not acked, measuring on meanwhile (up to 20,000 held
// messages). If the server acks a sequence beyond any it has sent, the
// token streamed in an earlier run, and the held messages are renumbered to
// follow it. Progress goes to stderr; SIGINT stops it cleanly after waiting
// briefly for the last acks, and it prints a summary to stdout, a line per
// patient: messages measured, acknowledged, rejected and unacknowledged,
// and how many of them were readings (which a visit record counts) and how
// many waveform chunks.
package main
