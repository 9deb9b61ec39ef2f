// Package media is Bedside's selective forwarding unit (SFU), built on Pion
// WebRTC: one room per appointment, where each participant publishes over one
// peer connection (the client offers) and receives everyone else's tracks
// over another (the server offers, and offers again when tracks come and go).
//
// RTP is forwarded untouched: one read loop per published track writes into
// a local track that fans out to every subscriber. The SFU asks publishers
// for a keyframe (RTCP PLI) when someone starts receiving their video, and
// forwards subscribers' PLI and FIR to the publisher, throttled.
//
// Networking (network.go): every peer connection shares one UDP socket per
// address (ICE UDP mux) and one TCP listener (ICE-TCP), optionally behind a
// 1:1 NAT address, with the embedded TURN relay of package turnserver
// beside them; ICEServers mints each participant's TURN credentials, and
// Check answers the pre-call connectivity check. Config.Net lets tests run
// all of it on a virtual network.
//
// The package knows nothing of HTTP or WebSockets: a participant's outgoing
// signaling goes through the Signaler it joined with, and its incoming
// signaling arrives through Participant's methods.
package media
