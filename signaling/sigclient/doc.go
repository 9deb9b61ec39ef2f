// Package sigclient is a Go participant of a Bedside call: it speaks the
// signaling protocol of docs/protocol.md over a WebSocket and runs the two
// Pion peer connections a browser would, publishing the tracks it is given
// once admitted and answering every subscribe offer. Tests and load tests
// use it in place of a browser.
package sigclient
