// Package mail renders email messages — plain text, or text with an
// iCalendar invitation that mail clients show as a calendar event — and sends
// them to an SMTP relay.
//
// The package is a leaf: it imports nothing of the project. It treats the
// calendar as opaque bytes; the calendar package writes them.
package mail
