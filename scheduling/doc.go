// Package scheduling computes physicians' slots from their weekly hours,
// date overrides, time off and visit types, checks requested bookings
// against them, and holds the appointment model and its lifecycle; it does
// no I/O.
package scheduling
