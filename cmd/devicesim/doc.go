// Command devicesim is a simulated home vitals hub. It streams a patient's
// measurements as FHIR Observations to Bedside's device endpoint, following
// the ack contract of docs/protocol.md:
//
//	go run ./cmd/devicesim --token <device token> [--url ws://localhost:8080/ws/device]
//	    [--rate 1s] [--scenario normal|fever|hypoxia] [--duration 0] [--ecg=true] [--seed N]
//
// Every --rate it measures heart rate (with respiratory sinus arrhythmia and
// a slow drift), SpO2, respiratory rate and temperature; a blood-pressure
// panel at once and then every three minutes; and, unless --ecg=false, a
// 250 Hz synthetic ECG (lead II) in ten chunks a second whose beats follow
// the heart rate.
//
// Sequences count from 1. Each message is kept until the server acks it;
// after a lost connection devicesim reconnects with backoff and resends,
// in order, what is not acked, measuring on meanwhile (up to 20,000 held
// messages). If the server acks a sequence beyond any it has sent, the
// token streamed in an earlier run, and the held messages are renumbered to
// follow it. Progress goes to stderr; SIGINT stops it cleanly after waiting
// briefly for the last acks, and it prints a summary to stdout.
package main
