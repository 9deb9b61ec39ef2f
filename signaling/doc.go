// Package signaling runs the call protocol of docs/protocol.md over one
// WebSocket per participant: the waiting room and admission, then the SDP
// and ICE exchange for the participant's publish and subscribe connections
// in the media SFU. The web layer authenticates and authorises before
// handing a connection to Hub.Serve.
package signaling
