// Package media is Bedside's selective forwarding unit (SFU), built on Pion
// WebRTC: one room per appointment, where each participant publishes over one
// peer connection (the client offers) and receives everyone else's tracks
// over another (the server offers, and offers again when tracks come and go).
//
// Each published track has one read loop per simulcast layer, which caches
// its packets and hands them to a down track per subscriber. A down track
// rewrites SSRC, sequence numbers, timestamps and VP8 picture ids, so that
// it can start on a keyframe, switch layers at keyframes and drop packets
// without leaving holes; it answers the subscriber's NACKs from the cache
// (RTX where negotiated) and forwards its keyframe requests, throttled. A
// per-subscriber queue with one writer goroutine does the network writes,
// audio first, so a slow subscriber delays nobody. A per-subscriber
// allocator picks each video's layer from the subscriber's estimated
// bandwidth (TWCC feedback, delay-based) and the size it draws the video at.
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
