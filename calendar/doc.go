// Package calendar writes and reads the iCalendar (RFC 5545) invitations that
// tell a patient's and a physician's calendars about a video visit: a REQUEST
// when a visit is booked or moved, a CANCEL when it is called off.
//
// The package is a leaf: it imports nothing of the project and does no I/O.
package calendar
