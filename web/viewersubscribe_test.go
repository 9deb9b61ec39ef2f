package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/metrics"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals/live"
)

// TestDayListSubscribingToManyVisitsAtOnceIsNotDroppedAsBehind: a
// physician's day list opens the multi-visit socket, subscribes to its ten
// visits at once and reads everything promptly. Each fresh subscription
// replays the patient's numerics of the last minutes (here 800 readings:
// 160 s of five 1 Hz numerics, what the default history holds), so the ten
// replays together are more than a viewer's queue holds
// (QueueMessages = HistoryMessages + 1,024). Each replay must wait for the
// viewer to have taken the previous ones, rather than overflow the queue
// and close a viewer that reads as fast as it can as "fell behind" (4001).
func TestDayListSubscribingToManyVisitsAtOnceIsNotDroppedAsBehind(t *testing.T) {
	hub := live.NewHub(live.Config{})
	// Frames at most every 250 ms (default 2 ms): the writer drains 512
	// messages a frame, so what it can drain while the subscriptions are
	// handled does not depend on how busy the machine is.
	f := newFixtureWith(t, func(d *Deps) { d.Live = hub; d.VitalsFlush = 250 * time.Millisecond })
	ctx := t.Context()
	const visits, perPatient = 10, 800
	var ids []int64
	for i := range visits {
		p, err := f.st.CreateUser(ctx, store.User{Email: fmt.Sprintf("p%d@example.org", i), Name: "p", Role: store.RolePatient, TimeZone: "Europe/London"})
		if err != nil {
			t.Fatal(err)
		}
		start := f.visit.Start.Add(-time.Duration(2*i+2) * time.Minute)
		a, err := f.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: f.doc.ID, PatientID: p.ID,
			Start: start, End: start.Add(time.Minute), Status: scheduling.StatusBooked, CreatedAt: time.Now().UTC()}, store.Change{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
		for n := range perPatient {
			body := fmt.Sprintf(`{"type":"reading","code":"8867-4","value":%d,"unit":"/min","time":"2026-12-06T02:00:00Z"}`, 60+n%40)
			if err := hub.Publish(ctx, p.ID, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	v, status := dialVitalsPath(t, f, "doc@example.org", "/ws/vitals")
	if v == nil {
		t.Fatalf("multi-visit socket: %d", status)
	}
	for _, id := range ids {
		if err := v.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"subscribe","appointment":%d}`, id))); err != nil {
			t.Fatal(err)
		}
	}
	streams, readings := 0, 0
	for streams < visits {
		_ = v.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := v.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == closeFellBehind {
				t.Fatalf("a viewer reading promptly was closed as fallen behind after %d of %d subscriptions' streams (%d readings)", streams, visits, readings)
			}
			t.Fatalf("read after %d streams: %v", streams, err)
		}
		var msgs []streamMsg
		if err := json.Unmarshal(b, &msgs); err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			switch m.Type {
			case "stream":
				streams++
			case "reading":
				readings++
			}
		}
	}
	if readings != visits*perPatient {
		t.Fatalf("%d readings replayed, want %d", readings, visits*perPatient)
	}
}

// TestMultiVisitSubscribeAfterDeactivationIsRefused: a physician
// deactivated by an admin (their sessions deleted) while their day list's
// multi-visit socket is open cannot subscribe on it to a patient's live
// vitals: the subscription looks the session up again rather than trusting
// the one the socket opened with, refuses (audited as denied, never as a
// read) and closes the socket saying the session ended, at once rather
// than at the next re-check.
func TestMultiVisitSubscribeAfterDeactivationIsRefused(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) {
		d.Audit = &audit.Recorder{Store: d.Store}
		d.Recheck = time.Hour // the refusal must not wait for the re-check
	})
	v, status := dialVitalsPath(t, f, "doc@example.org", "/ws/vitals")
	if v == nil {
		t.Fatalf("multi-visit socket: %d", status)
	}
	if _, err := f.st.DeactivateUser(t.Context(), f.doc.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"subscribe","appointment":%d}`, f.visit.ID))); err != nil {
		t.Fatal(err)
	}
	_ = v.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := v.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != errSessionEnded.Error() {
				t.Fatalf("after a subscription refused as the session ended, the socket ended with %v, want close 1008 %q", err, errSessionEnded)
			}
			break
		}
		var msgs []struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(b, &msgs)
		for _, m := range msgs {
			if m.Type == "snapshot" || m.Type == "stream" {
				t.Fatalf("a deactivated physician subscribed to patient %d's live vitals: got %s", f.pat.ID, b)
			}
		}
	}
	events, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{ActorID: f.doc.ID, Action: audit.ActionRead})
	if err != nil {
		t.Fatal(err)
	}
	denied := false
	for _, e := range events {
		if e.PatientID != f.pat.ID {
			continue
		}
		if e.Outcome != audit.OutcomeDenied {
			t.Fatalf("the refused subscription was audited as %s: %+v", e.Outcome, e)
		}
		denied = true
	}
	if !denied {
		t.Fatalf("the refused subscription was not audited as denied: %+v", events)
	}
}

// subscribeHook is a node's live streams whose Subscribe first runs a
// hook: the moment a multi-visit socket has recorded a visit and not yet
// subscribed to it.
type subscribeHook struct {
	*live.Hub
	before func(appointment int64)
}

func (h subscribeHook) Subscribe(ctx context.Context, v *live.Viewer, patient int64, from live.Position, appointment int64) error {
	h.before(appointment)
	return h.Hub.Subscribe(ctx, v, patient, from, appointment)
}

// TestMultiVisitRecheckDuringSubscribeEndsTheSubscription: a day list
// subscribes to a visit, and the visit is cancelled after the socket
// checked it but before it subscribed; the re-check that runs in that gap
// finds the visit closed. The subscription that follows must end as the
// re-check said, not go on untracked (every later reading of the patient
// sent to a physician no longer allowed to see them) until the socket
// closes.
func TestMultiVisitRecheckDuringSubscribeEndsTheSubscription(t *testing.T) {
	hub := live.NewHub(live.Config{})
	reg := metrics.NewRegistry()
	var target atomic.Int64 // the visit cancelled mid-subscribe
	hookErr := make(chan error, 1)
	var st store.Store
	hook := func(appointment int64) {
		if appointment != target.Load() {
			return
		}
		if _, err := st.SetAppointmentStatus(context.Background(), appointment, scheduling.StatusCancelled, store.Change{}); err != nil {
			hookErr <- err
			return
		}
		// Wait for the re-check to have dropped the visit.
		deadline := time.Now().Add(10 * time.Second)
		for revokedCount(reg) == 0 {
			if time.Now().After(deadline) {
				hookErr <- errors.New("no re-check dropped the cancelled visit within 10 s")
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		hookErr <- nil
	}
	f := newFixtureWith(t, func(d *Deps) {
		d.Live = subscribeHook{Hub: hub, before: hook}
		d.Metrics = reg
		d.Recheck = 20 * time.Millisecond
	})
	st = f.st
	ctx := t.Context()
	// A second visit of another patient, watched throughout: its readings
	// mark how far the socket's stream has come.
	other, v := f.dayList(t)
	read := func() streamMsg {
		t.Helper()
		var m streamMsg
		if err := json.Unmarshal(v.next(t), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	subscribe := func(id int64) {
		t.Helper()
		if err := v.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"subscribe","appointment":%d}`, id))); err != nil {
			t.Fatal(err)
		}
	}
	subscribe(other.ID)
	for m := read(); m.Type != "stream"; m = read() {
	}
	target.Store(f.visit.ID)
	subscribe(f.visit.ID)
	if err := <-hookErr; err != nil {
		t.Fatal(err)
	}
	// Until the visit's subscription ends, what the socket sends of it is
	// what it was allowed when it subscribed.
	for m := read(); m.Type != "unsubscribed" || m.Appointment != f.visit.ID; m = read() {
	}
	reading := func(patient int64, value int) {
		t.Helper()
		body := fmt.Sprintf(`{"type":"reading","code":"8867-4","value":%d,"unit":"/min","time":"2026-12-06T20:00:00Z"}`, value)
		if err := hub.Publish(ctx, patient, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	reading(f.pat.ID, 71)
	reading(f.other.ID, 72)
	for {
		m := read()
		if m.Patient == f.pat.ID {
			t.Fatalf("after its visit was unsubscribed as cancelled, the socket still sends patient %d's vitals: %+v", f.pat.ID, m)
		}
		if m.Type == "reading" && m.Patient == f.other.ID && m.Value == 72 {
			break
		}
	}
}

// revokedCount reads the count of visits ended by a re-check.
func revokedCount(reg *metrics.Registry) int {
	var b strings.Builder
	_ = reg.WriteText(&b)
	for line := range strings.Lines(b.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "bedside_vitals_subscriptions_revoked_total "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// dayList books the physician a second visit, of the other patient, an
// hour before the fixture's, and opens their multi-visit vitals socket.
func (f *fixture) dayList(t *testing.T) (scheduling.Appointment, *viewerClient) {
	t.Helper()
	start := f.visit.Start.Add(-time.Hour)
	other, err := f.st.BookAppointment(t.Context(), scheduling.Appointment{PhysicianID: f.doc.ID, PatientID: f.other.ID,
		Start: start, End: start.Add(30 * time.Minute), Status: scheduling.StatusBooked, CreatedAt: time.Now().UTC()}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	v, status := dialVitalsPath(t, f, "doc@example.org", "/ws/vitals")
	if v == nil {
		t.Fatalf("multi-visit socket: %d", status)
	}
	return other, v
}
