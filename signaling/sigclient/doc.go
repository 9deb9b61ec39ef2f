// Package sigclient is a Go participant of a Bedside call: it speaks the
// signaling protocol of docs/protocol.md over a WebSocket and runs the two
// Pion peer connections a browser would, publishing the tracks it is given
// once admitted and answering every subscribe offer. It numbers its
// messages, can lose its socket (Drop) and resume the session (Resume), and
// restarts ICE on request (RestartICE), as a browser does after a network
// change. Tests and load tests use it in place of a browser.
package sigclient
