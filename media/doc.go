// Package media is Bedside's selective forwarding unit: one room per
// appointment, where each participant publishes over one peer connection
// (the client offers) and receives everyone else's tracks over another (the
// server offers, and offers again when tracks come and go). It forwards RTP
// untouched, asks publishers for keyframes when someone new subscribes, and
// forwards subscribers' keyframe requests, throttled. It knows nothing of
// HTTP or WebSockets: outgoing signaling goes through a Signaler.
package media
