package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/bedside-health/bedside/calendar"
	"github.com/bedside-health/bedside/joinlink"
	"github.com/bedside-health/bedside/mail"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// Store is what the notifier reads and writes.
type Store interface {
	store.Outbox
	UserByID(ctx context.Context, id int64) (store.User, error)
	AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error)
	SearchAppointments(ctx context.Context, q store.AppointmentQuery) ([]scheduling.Appointment, int, error)
	SetAppointmentStatus(ctx context.Context, id int64, status scheduling.Status, c store.Change) (scheduling.Appointment, error)
}

// Sender delivers one message; mail.SMTP is one.
type Sender interface {
	Send(ctx context.Context, m mail.Message) error
}

// Message kinds, as stored in the outbox.
const (
	KindInvite   = "invite"
	KindUpdate   = "update"
	KindCancel   = "cancel"
	KindReminder = "reminder"
)

// Defaults.
var (
	// DefaultReminders are sent this long before a visit starts.
	DefaultReminders = []time.Duration{24 * time.Hour, time.Hour}
)

const (
	// DefaultNoShowGrace is how long after its start a visit nobody checked
	// in to becomes a no-show.
	DefaultNoShowGrace = 15 * time.Minute
	// maxAttempts is how often a message is tried before it is given up.
	maxAttempts = 10
	// claimLease is how long a claimed message is left to its sender
	// before another may take it: longer than a batch of SMTP sends.
	claimLease = 10 * time.Minute
)

// Notifier composes, queues and delivers visit emails.
type Notifier struct {
	Store     Store
	Links     joinlink.Links
	Sender    Sender // nil keeps every message in the outbox, to be read there
	Log       *slog.Logger
	PublicURL string // base of join links, e.g. https://clinic.example
	From      string // the clinic's address: the invite's organizer
	FromName  string // e.g. "Riverside Clinic"
	Now       func() time.Time
	// Reminders are sent this long before each visit; nil means
	// DefaultReminders, empty (non-nil) none.
	Reminders []time.Duration
	// NoShowGrace is how long after its start a booked visit with no
	// check-in is marked noshow; 0 means DefaultNoShowGrace, negative never.
	NoShowGrace time.Duration

	wakeOnce sync.Once
	wake     chan struct{} // a message was queued: deliver now
}

// woken is the channel that tells Run a message is waiting.
func (n *Notifier) woken() chan struct{} {
	n.wakeOnce.Do(func() { n.wake = make(chan struct{}, 1) })
	return n.wake
}

func (n *Notifier) now() time.Time {
	if n.Now == nil {
		return time.Now()
	}
	return n.Now()
}

func (n *Notifier) log() *slog.Logger {
	if n.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return n.Log
}

// Changed queues the email that a's current state calls for: an invite for
// a new visit, an update for a moved one, a cancellation for one that no
// longer holds its time. Each is queued once per appointment and Sequence,
// however often Changed is called.
func (n *Notifier) Changed(ctx context.Context, a scheduling.Appointment) error {
	kind := KindInvite
	switch {
	case !a.Status.Live():
		kind = KindCancel
	case a.Sequence > 0:
		kind = KindUpdate
	}
	return n.enqueue(ctx, a, kind, fmt.Sprintf("%s:%d:%d", kind, a.ID, a.Sequence))
}

// enqueue composes and queues one message about a under key.
func (n *Notifier) enqueue(ctx context.Context, a scheduling.Appointment, kind, key string) error {
	patient, err := n.Store.UserByID(ctx, a.PatientID)
	if err != nil {
		return fmt.Errorf("notify visit %d: patient: %w", a.ID, err)
	}
	physician, err := n.Store.UserByID(ctx, a.PhysicianID)
	if err != nil {
		return fmt.Errorf("notify visit %d: physician: %w", a.ID, err)
	}
	link := ""
	if kind != KindCancel {
		token, err := n.Links.Current(ctx, a)
		if err != nil && !errors.Is(err, joinlink.ErrNone) {
			return fmt.Errorf("notify visit %d: %w", a.ID, err)
		}
		if token == "" { // none yet, or it expired: the patient needs one
			if token, err = n.Links.Issue(ctx, a); err != nil {
				return fmt.Errorf("notify visit %d: %w", a.ID, err)
			}
		}
		link = joinlink.URL(n.PublicURL, token)
	}
	c := compose(kind, a, patient, physician, link, n.now())
	m := store.Message{Key: key, AppointmentID: a.ID, Kind: kind, To: patient.Email, ToName: patient.Name,
		Subject: c.subject, Text: c.text, CreatedAt: n.now()}
	// Every message carries the visit's calendar entry, reminders too: the
	// same UID and SEQUENCE, so a calendar that already holds the visit
	// sees no change, and one that lost it gets it back.
	{
		ev := calendar.Event{
			UID: uid(a.ID, n.PublicURL), Sequence: a.Sequence, Method: calendar.MethodRequest, Status: "CONFIRMED",
			Start: a.Start, End: a.End, Stamp: n.now(), Summary: c.summary, Description: c.description, JoinURL: link,
			Organizer: calendar.Person{Name: n.FromName, Email: n.From},
			Attendee:  calendar.Person{Name: patient.Name, Email: patient.Email},
		}
		if kind == KindCancel {
			ev.Method, ev.Status = calendar.MethodCancel, "CANCELLED"
		}
		if m.Calendar, err = calendar.Encode(ev); err != nil {
			return fmt.Errorf("notify visit %d: %w", a.ID, err)
		}
		m.Method = string(ev.Method)
	}
	stored, created, err := n.Store.EnqueueMessage(ctx, m)
	if err != nil {
		return fmt.Errorf("notify visit %d: %w", a.ID, err)
	}
	if created {
		n.log().InfoContext(ctx, "mail queued", "message", stored.ID, "kind", kind, "appointment", a.ID)
		select {
		case n.woken() <- struct{}{}:
		default: // already woken
		}
	}
	return nil
}

// uid is a visit's stable iCalendar UID: the same for every message
// about it, so calendars update the one event.
func uid(appointmentID int64, publicURL string) string {
	host := "bedside.invalid"
	if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return "visit-" + strconv.FormatInt(appointmentID, 10) + "@" + host
}

// Tick does what is due at now: marks no-shows, queues reminders, and
// delivers queued messages. Errors are logged and the rest goes on; the
// first is returned.
func (n *Notifier) Tick(ctx context.Context) error {
	return errors.Join(n.markNoShows(ctx), n.queueReminders(ctx), n.Deliver(ctx))
}

// Run calls Tick every interval, and Deliver as soon as a message is
// queued, until ctx ends.
func (n *Notifier) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	work := n.Tick
	for {
		if err := work(ctx); err != nil && ctx.Err() == nil {
			n.log().ErrorContext(ctx, "notifier", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			work = n.Tick
		case <-n.woken():
			work = n.Deliver
		}
	}
}

// markNoShows marks booked visits that started NoShowGrace ago or more
// with nobody checked in. Only the last week is looked at.
func (n *Notifier) markNoShows(ctx context.Context) error {
	grace := n.NoShowGrace
	if grace < 0 {
		return nil
	}
	if grace == 0 {
		grace = DefaultNoShowGrace
	}
	now := n.now()
	list, _, err := n.Store.SearchAppointments(ctx, store.AppointmentQuery{
		From: now.Add(-7 * 24 * time.Hour), To: now.Add(-grace).Add(time.Millisecond),
		Statuses: []scheduling.Status{scheduling.StatusBooked}, Limit: 1000})
	if err != nil {
		return fmt.Errorf("find no-shows: %w", err)
	}
	var errs []error
	for _, a := range list {
		if !scheduling.NoShowDue(a, grace, now) {
			continue
		}
		_, err := n.Store.SetAppointmentStatus(ctx, a.ID, scheduling.StatusNoShow,
			store.Change{At: now, Reason: fmt.Sprintf("nobody checked in within %s of the start", grace)})
		if errors.Is(err, scheduling.ErrTransition) {
			continue // checked in or cancelled meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.log().InfoContext(ctx, "visit marked no-show", "appointment", a.ID)
	}
	return errors.Join(errs...)
}

// queueReminders queues, for each booked visit, the reminder whose time
// has come: of the reminders due (start - offset <= now), only the one
// nearest the start, so a server that was down does not send a stale
// "tomorrow" reminder an hour before. No reminder is sent for a time the
// patient was told about after it (a visit booked or moved 30 minutes
// ahead gets its invite, not a reminder), and each goes out once per
// visit and Sequence: its outbox key holds that across restarts.
func (n *Notifier) queueReminders(ctx context.Context) error {
	offsets := n.Reminders
	if offsets == nil {
		offsets = DefaultReminders
	}
	if len(offsets) == 0 {
		return nil
	}
	offsets = slices.Clone(offsets)
	slices.Sort(offsets) // nearest the start first
	now := n.now()
	list, _, err := n.Store.SearchAppointments(ctx, store.AppointmentQuery{
		From: now, To: now.Add(offsets[len(offsets)-1]).Add(time.Millisecond),
		Statuses: []scheduling.Status{scheduling.StatusBooked}, Limit: 1000})
	if err != nil {
		return fmt.Errorf("find visits to remind: %w", err)
	}
	var errs []error
	for _, a := range list {
		told := a.UpdatedAt
		if told.IsZero() {
			told = a.CreatedAt
		}
		for _, off := range offsets {
			at := a.Start.Add(-off)
			if at.After(now) {
				continue
			}
			if told.Before(at) {
				key := fmt.Sprintf("%s-%s:%d:%d", KindReminder, off, a.ID, a.Sequence)
				errs = append(errs, n.enqueue(ctx, a, KindReminder, key))
			}
			break
		}
	}
	return errors.Join(errs...)
}

// Deliver sends the queued messages that are due. Without a Sender each is
// kept in the outbox, marked so, and a line is logged. A temporary failure
// is retried with a growing delay, up to maxAttempts; a permanent one
// (the server refused the address) is given up at once.
func (n *Notifier) Deliver(ctx context.Context) error {
	now := n.now()
	// Claimed for as long as delivering them may take, so another node
	// does not send them too.
	due, err := n.Store.ClaimMessages(ctx, now, claimLease, 50)
	if err != nil {
		return fmt.Errorf("deliver mail: %w", err)
	}
	var errs []error
	for _, m := range due {
		if n.Sender == nil {
			n.log().InfoContext(ctx, "mail kept in the outbox (no mail server configured)", "message", m.ID, "kind", m.Kind, "appointment", m.AppointmentID)
			errs = append(errs, n.Store.MarkMessageSent(ctx, m.ID, now, "outbox"))
			continue
		}
		err := n.Sender.Send(ctx, mail.Message{
			From: n.From, FromName: n.FromName, To: m.To, ToName: m.ToName, Subject: m.Subject, Text: m.Text,
			Calendar: m.Calendar, Method: m.Method, MessageID: fmt.Sprintf("<%s@%s>", m.Key, hostOf(n.PublicURL)),
		})
		if err == nil {
			n.log().InfoContext(ctx, "mail sent", "message", m.ID, "kind", m.Kind, "appointment", m.AppointmentID)
			errs = append(errs, n.Store.MarkMessageSent(ctx, m.ID, now, "smtp"))
			continue
		}
		permanent := mail.IsPermanent(err) || m.Attempts+1 >= maxAttempts
		retry := now.Add(backoff(m.Attempts))
		n.log().WarnContext(ctx, "mail not sent", "message", m.ID, "attempt", m.Attempts+1, "permanent", permanent, "err", err)
		errs = append(errs, n.Store.MarkMessageFailed(ctx, m.ID, err.Error(), retry, permanent))
	}
	return errors.Join(errs...)
}

// backoff is the wait after the n-th failed attempt (from 0): one minute,
// doubling, at most an hour.
func backoff(attempts int) time.Duration {
	d := time.Minute << min(attempts, 6)
	return min(d, time.Hour)
}

func hostOf(publicURL string) string {
	if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "bedside.invalid"
}
