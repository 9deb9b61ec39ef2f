// Package scheduling computes physicians' free slots from their weekly hours
// and holds the appointment model and its rules; it does no I/O.
package scheduling
