// Command loadtest puts a running Bedside server under measured load and
// compares it with a floor measured in the same run.
//
//	go run ./cmd/loadtest vitals provision --data DIR --patients N [--per-physician K] [--out FILE]
//	go run ./cmd/loadtest vitals run --url http://127.0.0.1:8080 --creds FILE --pid PID
//	    [--patients N] [--duration 30s] [--watch 1,10] [--rounds 1] [--relay=true]
//	go run ./cmd/loadtest relay [--addr 127.0.0.1:0]
//	go run ./cmd/loadtest media provision --data DIR --consults N [--out FILE]
//	go run ./cmd/loadtest media run --url http://127.0.0.1:8080 --creds FILE --pid PID
//	    [--consults N] [--duration 20s] [--warmup 3s] [--rounds 1] [--forwarder=true]
//	go run ./cmd/loadtest forwarder [--addr 127.0.0.1:0]
//
// vitals provision creates, in a server's data folder (or DATABASE_URL),
// N patients each with a device token and a visit open for live vitals, and
// physicians each holding the visits of K patients and a signed-in session;
// it writes the tokens to FILE (owner-readable only). Start the server on
// that folder with --noshow-grace 0, since the visits are never joined.
//
// vitals run streams, open-loop, from each patient's device five 1 Hz
// numerics (JSON envelopes) and a 250 Hz ECG in ten binary waveform frames
// a second, and reads them back as the visit's physician. Every message
// carries its scheduled send time as its measurement time, and latency is
// the time from then to the viewer's receipt, so a generator or server
// that falls behind shows as latency rather than as a slower load. Losses
// and duplicates are counted by stream offset. The server's CPU and memory
// come from /proc/PID. First the same clients and load run against a bare
// WebSocket relay started as a child process (loadtest relay: patient i's
// frames forwarded untouched to viewer i), the floor for what the sockets
// cost; then against the server, once per --watch value: 1 watches each
// visit on its own /ws/vitals/{id} socket, K>1 has each viewer watch K
// visits on one /ws/vitals socket, whose messages the server batches into
// one frame per tick. The report gives each phase's figures and their
// ratios to the relay. --rounds repeats the relay and server phases,
// alternating, and the report pairs each server phase with its own round's
// relay and gives the medians and ranges of the ratios and p99s over the
// rounds: on a shared machine one phase's p99 says more about the machine
// than about the server. Around each phase's streaming the tool reads the
// target's /metrics (with BEDSIDE_METRICS_TOKEN as the bearer token if it
// is set, as a server with a token requires; the relay serves the same
// family), and reports which share of the goroutine waits
// the Go runtime sampled in that process lasted over 1 ms and over 5 ms:
// where a tail is the process's own wait for a CPU. The tool's own share
// over 5 ms is reported beside it.
//
// On a machine the tool shares with the target, a viewer goroutine's clock
// also counts the tool's own wait for a CPU. On Linux the viewers' sockets
// keep the kernel's receive time of what they read (SO_TIMESTAMPNS), and
// the report gives the latencies on arrival beside those read, from the
// same scheduled times: the first the target and the network, the second
// those and the tool's reader. "send late p99" is how late the devices
// wrote, which both include, as open-loop latencies must.
//
// media provision creates N visits, each with its own physician and patient,
// and a session for each (the patient's confined to the visit, as a join
// link's is), and writes the session tokens to FILE (owner-readable only).
// The sessions idle out after 30 minutes unused: provision just before
// running.
//
// media run holds N 1:1 consults at once: in each, the physician and the
// patient are Pion clients (as a browser: default codecs and interceptors)
// that join /ws/call/{visit} with their session, the physician admitting
// the patient, and each publishes VP8 at 1.5 Mbit/s and 30 frames a second
// (a keyframe every 2 seconds and on request) and Opus, and receives the
// other's. Every packet carries its stream, counter and send time after
// its codec headers, so each receiver counts loss, duplicates and
// reordering and the time the path took. First the same clients and load
// run against a bare forwarder started as a child process (loadtest
// forwarder: a minimal Pion program that copies each packet a participant
// publishes to the other, offer and answer over plain HTTP), the floor for
// what forwarding costs with Pion; then against the server. The report
// gives, per phase, packets forwarded a second, loss, latency
// percentiles, NACKs, keyframe requests, the forwarder's CPU per forwarded
// packet and memory (from /proc/PID) and the generator's own CPU, then the
// server's ratios to the bare forwarder and the consults a server core
// would forward at that cost. --rounds repeats both phases, alternating,
// as a shared machine's noise calls for.
//
// The vitals parts live in vitals_*.go, the media parts in media_*.go and
// forwarder.go.
package main
