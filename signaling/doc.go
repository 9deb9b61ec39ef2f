// Package signaling runs the call protocol of docs/protocol.md over one
// WebSocket per participant: the waiting room and admission, then the SDP
// and ICE exchange for the participant's publish and subscribe connections
// in the media SFU.
//
// The web layer authenticates and authorises, upgrades the request, wraps
// the socket with wsconn.New and hands it to Hub.Serve, which is its one
// reader; wsconn's goroutine is its one writer. Message and the Type
// constants are shared with Go clients such as package sigclient.
package signaling
