// Package notify tells patients about their visits by email: an invite
// with an iCalendar attachment when a visit is booked, an update when it
// moves, a cancellation, and reminders before it starts. Messages go
// through the store's outbox, so none is lost or sent twice across
// restarts, and are delivered over SMTP when a mail server is configured.
// The same clock also marks visits nobody checked in to as no-shows.
package notify
