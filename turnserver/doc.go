// Package turnserver is Bedside's embedded TURN relay (RFC 8656) and the
// short-lived TURN REST credentials that browsers use with it, or with an
// external TURN server that shares the secret (coturn's use-auth-secret).
//
// The relay is not an open proxy: a Server relays UDP only, and only to
// the peers its Peers allow (the SFU's own media sockets), so a client
// with valid credentials can reach the call and nothing else.
package turnserver
