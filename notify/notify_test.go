package notify

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/calendar"
	"github.com/bedside-health/bedside/joinlink"
	"github.com/bedside-health/bedside/mail"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// sender records what it is asked to send and answers with err.
type sender struct {
	mu   sync.Mutex
	sent []mail.Message
	err  error
}

func (s *sender) Send(_ context.Context, m mail.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.sent = append(s.sent, m)
	return nil
}

type env struct {
	st        *sqlite.DB
	clock     *clock
	doc, pat  store.User
	start     time.Time
	key       []byte
	publicURL string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, clock: &clock{}, key: []byte("a notify test key of 32 bytes or more"), publicURL: "https://clinic.example"}
	e.doc, _ = st.CreateUser(ctx, store.User{Email: "okafor@clinic.example", Name: "Dr Ada Okafor", Role: store.RolePhysician, TimeZone: "America/New_York"})
	e.pat, _ = st.CreateUser(ctx, store.User{Email: "maria@example.org", Name: "Maria Silva", Role: store.RolePatient, TimeZone: "Europe/Lisbon"})
	e.start = time.Date(2030, 3, 12, 14, 0, 0, 0, time.UTC)
	return e
}

// notifier is a fresh Notifier on e's store, as after a restart.
func (e *env) notifier(s Sender) *Notifier {
	return &Notifier{Store: e.st, Links: joinlink.Links{Store: e.st, Key: e.key, Now: e.clock.now}, Sender: s,
		PublicURL: e.publicURL, From: "visits@clinic.example", FromName: "Riverside Clinic", Now: e.clock.now}
}

func (e *env) book(t *testing.T, start time.Time, at time.Time) scheduling.Appointment {
	t.Helper()
	a, err := e.st.BookAppointment(context.Background(), scheduling.Appointment{PhysicianID: e.doc.ID, PatientID: e.pat.ID,
		Start: start, End: start.Add(30 * time.Minute)}, store.Change{At: at})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (e *env) messages(t *testing.T) []store.Message {
	t.Helper()
	list, err := e.st.ListMessages(context.Background(), 0, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	// oldest first reads better in tests
	for i, j := 0, len(list)-1; i < j; i, j = i+1, j-1 {
		list[i], list[j] = list[j], list[i]
	}
	return list
}

func TestInviteUpdateCancel(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.clock.set(e.start.Add(-72 * time.Hour))
	n := e.notifier(nil)
	a := e.book(t, e.start, e.clock.now())
	for range 3 { // however often it is called
		if err := n.Changed(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.messages(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages after booking, want 1 invite", len(msgs))
	}
	inv := msgs[0]
	link, err := n.Links.Current(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	joinURL := joinlink.URL(e.publicURL, link)
	ev, err := calendar.Decode(inv.Calendar)
	if err != nil {
		t.Fatal(err)
	}
	uid := fmt.Sprintf("visit-%d@clinic.example", a.ID)
	if inv.Kind != KindInvite || inv.To != "maria@example.org" || inv.Method != "REQUEST" ||
		ev.UID != uid || ev.Sequence != 0 || ev.Method != calendar.MethodRequest || !ev.Start.Equal(e.start) || ev.JoinURL != joinURL ||
		ev.Attendee.Email != "maria@example.org" || ev.Organizer.Email != "visits@clinic.example" {
		t.Fatalf("invite = %+v\nevent = %+v", inv, ev)
	}
	// The patient reads the time in her own zone, with the zone named.
	for _, want := range []string{"Tuesday 12 March 2030, 14:00 (Europe/Lisbon)", joinURL, "Dr Ada Okafor"} {
		if !strings.Contains(inv.Text, want) {
			t.Errorf("invite text lacks %q:\n%s", want, inv.Text)
		}
	}
	if !strings.Contains(inv.Subject, "14:00 (Europe/Lisbon)") {
		t.Errorf("subject %q does not give the time in the patient's zone", inv.Subject)
	}

	// Moved: the store revoked the link, so the update carries a new one, SEQUENCE 1, same UID.
	moved, err := e.st.RescheduleAppointment(ctx, a.ID, e.start.Add(24*time.Hour), e.start.Add(24*time.Hour+30*time.Minute), store.Change{At: e.clock.now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Changed(ctx, moved); err != nil {
		t.Fatal(err)
	}
	msgs = e.messages(t)
	if len(msgs) != 2 {
		t.Fatalf("%d messages after moving, want 2", len(msgs))
	}
	up, _ := calendar.Decode(msgs[1].Calendar)
	if msgs[1].Kind != KindUpdate || up.UID != uid || up.Sequence != 1 || !up.Start.Equal(e.start.Add(24*time.Hour)) || up.JoinURL == joinURL || up.JoinURL == "" {
		t.Fatalf("update = %+v", up)
	}
	if strings.Contains(msgs[1].Text, joinURL) || !strings.Contains(msgs[1].Text, up.JoinURL) {
		t.Errorf("update text should carry the new link only:\n%s", msgs[1].Text)
	}

	// Cancelled, with a reason that must never reach the patient's mailbox.
	gone, err := e.st.SetAppointmentStatus(ctx, a.ID, scheduling.StatusCancelled, store.Change{Reason: "chest pain, sent to A&E", At: e.clock.now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Changed(ctx, gone); err != nil {
		t.Fatal(err)
	}
	msgs = e.messages(t)
	if len(msgs) != 3 {
		t.Fatalf("%d messages after cancelling, want 3", len(msgs))
	}
	c, _ := calendar.Decode(msgs[2].Calendar)
	if msgs[2].Kind != KindCancel || msgs[2].Method != "CANCEL" || c.Method != calendar.MethodCancel || c.Status != "CANCELLED" || c.UID != uid || c.Sequence != 2 {
		t.Fatalf("cancellation = %+v / %+v", msgs[2], c)
	}
	for _, m := range msgs {
		for _, secret := range []string{"chest", "A&E"} {
			if strings.Contains(m.Subject+m.Text+string(m.Calendar), secret) {
				t.Errorf("message %s carries %q", m.Kind, secret)
			}
		}
	}
	if strings.Contains(msgs[2].Text, "/join/") {
		t.Errorf("a cancellation carries a join link:\n%s", msgs[2].Text)
	}
}

func TestRemindersOnceAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	booked := e.start.Add(-7 * 24 * time.Hour)
	e.clock.set(booked)
	a := e.book(t, e.start, booked)
	// Booked 30 minutes ahead, after both its reminder times: it gets its
	// invite and no reminder.
	e.book(t, e.start.Add(2*time.Hour), e.start.Add(90*time.Minute))
	reminders := func() []string {
		var out []string
		for _, m := range e.messages(t) {
			if m.Kind == KindReminder {
				out = append(out, fmt.Sprintf("%d %s", m.AppointmentID, strings.SplitN(m.Key, ":", 2)[0]))
			}
		}
		return out
	}
	step := func(at time.Time, want ...string) {
		t.Helper()
		e.clock.set(at)
		if err := e.notifier(nil).Tick(ctx); err != nil { // a new notifier each time: a restart
			t.Fatal(err)
		}
		if got := reminders(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("at start%+v: reminders %v, want %v", at.Sub(e.start), got, want)
		}
	}
	r24 := fmt.Sprintf("%d reminder-24h0m0s", a.ID)
	r1 := fmt.Sprintf("%d reminder-1h0m0s", a.ID)
	step(e.start.Add(-25 * time.Hour))
	step(e.start.Add(-24*time.Hour), r24)
	step(e.start.Add(-23*time.Hour), r24)
	step(e.start.Add(-2*time.Hour), r24)
	step(e.start.Add(-time.Hour), r24, r1)
	step(e.start.Add(-time.Minute), r24, r1)
	step(e.start.Add(time.Hour+50*time.Minute), r24, r1)

	// Each reminder went out once, with the visit's live join link and
	// the visit's unchanged calendar entry (the invite's UID and SEQUENCE).
	inviteUID := uid(a.ID, e.publicURL)
	for _, m := range e.messages(t) {
		if m.Kind != KindReminder {
			continue
		}
		if !strings.Contains(m.Text, "/join/") || !m.SentAt.Equal(e.start.Add(-24*time.Hour)) && !m.SentAt.Equal(e.start.Add(-time.Hour)) {
			t.Errorf("reminder %s: sent %v, text:\n%s", m.Key, m.SentAt, m.Text)
		}
		ev, err := calendar.Decode(m.Calendar)
		if err != nil {
			t.Fatalf("reminder %s: calendar: %v", m.Key, err)
		}
		if ev.UID != inviteUID || ev.Sequence != a.Sequence || ev.Method != calendar.MethodRequest || m.Method != "REQUEST" ||
			!ev.Start.Equal(e.start) || !strings.Contains(m.Text, ev.JoinURL) {
			t.Errorf("reminder %s: calendar %+v (method %q), want the invite's UID %q, sequence %d, REQUEST, start %v and the text's link",
				m.Key, ev, m.Method, inviteUID, a.Sequence, e.start)
		}
	}
}

func TestStaleReminderIsSkipped(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.clock.set(e.start.Add(-7 * 24 * time.Hour))
	a := e.book(t, e.start, e.clock.now())
	// The server was down from before the 24-hour mark until 30 minutes before.
	e.clock.set(e.start.Add(-30 * time.Minute))
	if err := e.notifier(nil).Tick(ctx); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range e.messages(t) {
		keys = append(keys, m.Key)
	}
	if want := fmt.Sprintf("reminder-1h0m0s:%d:0", a.ID); fmt.Sprint(keys) != fmt.Sprint([]string{want}) {
		t.Fatalf("messages %v, want only %s", keys, want)
	}
}

func TestNoShows(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.clock.set(e.start.Add(-48 * time.Hour))
	absent := e.book(t, e.start, e.clock.now())
	came := e.book(t, e.start.Add(time.Hour), e.clock.now())
	later := e.book(t, e.start.Add(3*time.Hour), e.clock.now())
	if _, err := e.st.SetAppointmentStatus(ctx, came.ID, scheduling.StatusArrived, store.Change{}); err != nil {
		t.Fatal(err)
	}
	n := e.notifier(nil)
	n.Reminders = []time.Duration{}
	check := func(at time.Time, want map[int64]scheduling.Status) {
		t.Helper()
		e.clock.set(at)
		if err := n.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		for id, st := range want {
			if a, _ := e.st.AppointmentByID(ctx, id); a.Status != st {
				t.Errorf("at start%+v visit %d is %s, want %s", at.Sub(e.start), id, a.Status, st)
			}
		}
	}
	check(e.start.Add(DefaultNoShowGrace-time.Second), map[int64]scheduling.Status{absent.ID: scheduling.StatusBooked})
	check(e.start.Add(DefaultNoShowGrace), map[int64]scheduling.Status{absent.ID: scheduling.StatusNoShow})
	check(e.start.Add(2*time.Hour), map[int64]scheduling.Status{absent.ID: scheduling.StatusNoShow, came.ID: scheduling.StatusArrived, later.ID: scheduling.StatusBooked})
	h, _ := e.st.AppointmentHistory(ctx, absent.ID)
	if last := h[len(h)-1]; last.ToStatus != scheduling.StatusNoShow || last.ActorID != 0 || !strings.Contains(last.Reason, "checked in") {
		t.Errorf("no-show history entry = %+v", last)
	}
}

func TestDelivery(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	t0 := e.start.Add(-72 * time.Hour)
	e.clock.set(t0)
	a := e.book(t, e.start, t0)
	s := &sender{err: errors.New("dial tcp: connection refused")}
	n := e.notifier(s)
	n.Reminders = []time.Duration{}
	if err := n.Changed(ctx, a); err != nil {
		t.Fatal(err)
	}
	// A temporary failure: kept, retried after a minute, then two, ...
	if err := n.Deliver(ctx); err != nil {
		t.Fatal(err)
	}
	m := e.messages(t)[0]
	if !m.SentAt.IsZero() || m.Failed || m.Attempts != 1 || !m.NextAttemptAt.Equal(t0.Add(time.Minute)) || !strings.Contains(m.LastError, "refused") {
		t.Fatalf("after a temporary failure: %+v", m)
	}
	e.clock.set(t0.Add(30 * time.Second))
	n.Deliver(ctx)
	if m := e.messages(t)[0]; m.Attempts != 1 {
		t.Fatalf("retried before it was due: %+v", m)
	}
	s.err = nil
	e.clock.set(t0.Add(time.Minute))
	if err := n.Deliver(ctx); err != nil {
		t.Fatal(err)
	}
	m = e.messages(t)[0]
	if m.SentAt.IsZero() || m.Via != "smtp" || len(s.sent) != 1 {
		t.Fatalf("after the server came back: %+v, %d sent", m, len(s.sent))
	}
	got := s.sent[0]
	if got.To != "maria@example.org" || got.From != "visits@clinic.example" || string(got.Calendar) != string(m.Calendar) || got.Method != "REQUEST" ||
		got.MessageID != fmt.Sprintf("<%s@clinic.example>", m.Key) {
		t.Errorf("sent %+v", got)
	}
	n.Deliver(ctx)
	if len(s.sent) != 1 {
		t.Errorf("a delivered message was sent again")
	}

	// A permanent refusal is given up at once.
	gone, _ := e.st.SetAppointmentStatus(ctx, a.ID, scheduling.StatusCancelled, store.Change{Reason: "x"})
	n.Changed(ctx, gone)
	s.err = fmt.Errorf("smtp rcpt to: %w", &textproto.Error{Code: 550, Msg: "no such mailbox"})
	n.Deliver(ctx)
	if m := e.messages(t)[1]; !m.Failed || m.Attempts != 1 {
		t.Errorf("after a 550: %+v", m)
	}
	// Without a mail server, messages stay readable in the outbox.
	e2 := newEnv(t)
	e2.clock.set(t0)
	n2 := e2.notifier(nil)
	n2.Changed(ctx, e2.book(t, e2.start, t0))
	n2.Deliver(ctx)
	if m := e2.messages(t)[0]; m.Via != "outbox" || m.SentAt.IsZero() || m.Text == "" {
		t.Errorf("without SMTP: %+v", m)
	}
}

func TestBackoff(t *testing.T) {
	for attempts, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour} {
		if got := backoff(attempts); got != want {
			t.Errorf("backoff(%d) = %s, want %s", attempts, got, want)
		}
	}
}

// signalSender reports each message on a channel.
type signalSender chan mail.Message

func (s signalSender) Send(_ context.Context, m mail.Message) error { s <- m; return nil }

func TestRunDeliversAsSoonAsQueued(t *testing.T) {
	e := newEnv(t)
	e.clock.set(e.start.Add(-72 * time.Hour))
	got := make(signalSender, 1)
	n := e.notifier(got)
	n.Reminders = []time.Duration{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx, time.Hour); close(done) }()
	defer func() { cancel(); <-done }()
	a := e.book(t, e.start, e.clock.now())
	if err := n.Changed(ctx, a); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got: // long before the hourly tick
		if !strings.Contains(m.Subject, "Your video visit") {
			t.Errorf("delivered %q", m.Subject)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the invite was not delivered when queued")
	}
}
