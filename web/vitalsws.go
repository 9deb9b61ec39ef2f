package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals/live"
)

// LiveStreams is the node's live vitals streams (live.Hub): devices publish
// to them, viewer sockets subscribe.
type LiveStreams interface {
	Publish(ctx context.Context, patientID int64, body []byte) error
	// Source is a device connection's way into its patient's stream.
	Source(patientID int64) *live.Source
	NewViewer() *live.Viewer
	Subscribe(ctx context.Context, v *live.Viewer, patientID int64, from live.Position, appointment int64) error
	Unsubscribe(v *live.Viewer, patientID int64)
	Leave(v *live.Viewer)
}

var _ LiveStreams = (*live.Hub)(nil)

// maxViewerVisits is how many visits one multi-visit socket may watch.
const maxViewerVisits = 200

const vitalsWindowRefusal = "live vitals are shown to the visit's physician from 30 minutes before it until 2 hours after"

// handleVitalsWS streams one visit's patient's live vitals to its
// physician. The epoch and offset query parameters resume where the
// viewer was.
func (s *server) handleVitalsWS(w http.ResponseWriter, r *http.Request, c caller) {
	if s.refuseCrossOrigin(w, r) {
		return
	}
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return
	}
	if !mayJoin(c, a) || !vitalsOpen(a, s.Now()) {
		s.auditDenied(r, c, audit.ActionRead, a.PatientID, audit.Ref("Appointment", a.ID)+"/vitals")
		s.forbidden(w, r, vitalsWindowRefusal)
		return
	}
	q := r.URL.Query()
	from, err := live.ParsePosition(q.Get("epoch"), q.Get("offset"), q.Has("epoch"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.audited(r, c, audit.ActionRead, a.PatientID, audit.Ref("Appointment", a.ID)+"/vitals")
	id := a.ID // not a, which the re-check would keep
	s.serveViewer(w, r, visitViewer{
		appointment: a.ID, patient: a.PatientID, from: from,
		still: func(r *http.Request) func(context.Context) error { return s.stillInVisit(r, id, true) },
		name:  "vitals viewer", log: []any{"appointment", a.ID, "user", c.User.ID},
	})
}

// visitViewer is who watches one visit's live vitals on a socket of its
// own, and how that is re-checked and logged.
type visitViewer struct {
	appointment, patient int64
	from                 live.Position // where the viewer resumes
	// still returns the re-check (keepChecking) of the socket's request.
	still func(r *http.Request) func(context.Context) error
	name  string // "vitals viewer", for the log
	log   []any  // who is watching, for the log
}

// serveViewer upgrades r, already checked and audited, to a socket
// streaming one visit's live vitals: the NEWS2 snapshot, then the stream
// from vv.from, re-checked while it is open. The socket's reader, which
// acts on no request but notices the viewer leaving and answers pings,
// runs on a goroutine of its own; serveViewer returns once it has started.
func (s *server) serveViewer(w http.ResponseWriter, r *http.Request, vv visitViewer) {
	vs, ok := s.upgradeViewer(w, r)
	if !ok {
		return
	}
	ctx, p := vs.p.ctx, vs.p
	s.sendSnapshot(ctx, vs.v.Send, vv.patient)
	if err := s.Live.Subscribe(ctx, vs.v, vv.patient, vv.from, vv.appointment); err != nil {
		vs.end()
		return
	}
	still := func(ctx context.Context) error { return vv.still(p.request())(ctx) }
	s.serveViewerSocket(vs, still, func([]byte) {}, vv.name, vv.log)
}

// viewerSocket is a live vitals viewer's socket, from upgradeViewer.
type viewerSocket struct {
	p    *socketPeer // what the socket keeps of its opening request
	v    *live.Viewer
	conn *viewerConn
	// end closes the socket and lets go of its viewer; it runs once,
	// when the reader has returned or instead of starting it.
	end func()
}

// upgradeViewer upgrades r, already checked, to a live vitals viewer's
// socket, counted among the open sockets; false if the upgrade failed
// (the upgrader has answered r). The caller then subscribes the viewer
// and hands the socket to serveViewerSocket, or ends it.
func (s *server) upgradeViewer(w http.ResponseWriter, r *http.Request) (*viewerSocket, bool) {
	hj := &viewerHijacker{ResponseWriter: w}
	ws, err := s.socketUpgrader(viewerReadBuffer).Upgrade(hj, r, nil)
	if err != nil {
		return nil, false
	}
	p, done := s.socketRequest(r)
	v := s.Live.NewViewer()
	conn := newViewerConn(ws, hj.conn, v, s.VitalsFlush, s.VitalsWriteTimeout)
	s.metrics.sockets.Add(1, "vitals")
	return &viewerSocket{p: p, v: v, conn: conn, end: func() {
		s.metrics.sockets.Add(-1, "vitals")
		conn.end()
		s.Live.Leave(v)
		done()
	}}, true
}

// serveViewerSocket re-checks vs with still while it is open, and starts
// its reader on a goroutine of its own, which hands each of the viewer's
// requests to handle until the connection ends, then ends vs. name and
// log say who is watching, for the log.
func (s *server) serveViewerSocket(vs *viewerSocket, still func(context.Context) error, handle func([]byte), name string, log []any) {
	ctx := vs.p.ctx
	s.keepChecking(ctx, vs.conn, still)
	s.Log.InfoContext(ctx, name+" connected", log...)
	s.goServe(ctx, func() {
		s.countViewerEnd(vs.conn.read(handle))
		s.Log.InfoContext(ctx, name+" disconnected", log...)
	}, vs.end)
}

func (s *server) countViewerEnd(err error) {
	switch {
	case errors.Is(err, errViewerTooFast):
		s.metrics.refused.Inc("vitals-rate")
	case errors.Is(err, errViewerFrame):
		s.metrics.refused.Inc("vitals-frame")
	}
}

// handleVitalsMultiWS streams the live vitals of every visit a physician
// subscribes to over one socket (a day list with acuity). Each
// subscription is checked and audited like the single-visit socket.
func (s *server) handleVitalsMultiWS(w http.ResponseWriter, r *http.Request, c caller) {
	if s.refuseCrossOrigin(w, r) {
		return
	}
	vs, ok := s.upgradeViewer(w, r)
	if !ok {
		return
	}
	m := &multiViewer{s: s, p: vs.p, c: c, v: vs.v, conn: vs.conn, visits: make(map[int64]*visitSub)}
	// The reader acts on the viewer's requests (socketctx.go).
	s.serveViewerSocket(vs, m.recheck, m.handle, "vitals viewer", []any{"user", c.User.ID})
}

// multiViewer is the state of one multi-visit socket.
type multiViewer struct {
	s *server
	p *socketPeer // the socket's opening request, for audit records and re-checks
	c caller      // who opened the socket; each subscription looks the session up again
	v *live.Viewer
	// conn is the socket's connection: a refused session closes it.
	conn closer

	mu     sync.Mutex
	visits map[int64]*visitSub // by appointment
}

// visitSub is one visit a multi-visit socket watches. The reader
// subscribes it (handle) while the re-check, on a goroutine of its own,
// may drop it: a drop while the reader is still subscribing (pending)
// only marks it ended, and the reader ends it once Subscribe has
// returned. Dropped before, the subscription that followed would go on,
// untracked, until the socket closed.
type visitSub struct {
	patient int64
	pending bool   // the reader is subscribing it
	ended   bool   // dropped while pending
	reason  string // why, for the unsubscribed message
}

// handle acts on one request of the viewer.
func (m *multiViewer) handle(b []byte) {
	req, err := live.DecodeRequest(b)
	if err != nil {
		m.v.Send(live.ErrorMessage(req.Appointment, err.Error()))
		return
	}
	if req.Type == live.TypeUnsubscribe {
		m.drop(req.Appointment, "")
		return
	}
	if !m.awaitReplayRoom() {
		return
	}
	ctx := m.p.ctx
	a, err := m.s.Store.AppointmentByID(ctx, req.Appointment)
	switch {
	case errors.Is(err, store.ErrNotFound):
		m.v.Send(live.ErrorMessage(req.Appointment, "no such visit"))
		return
	case err != nil:
		m.s.Log.ErrorContext(ctx, "vitals subscribe", "appointment", req.Appointment, "err", err)
		m.v.Send(live.ErrorMessage(req.Appointment, "could not look up the visit; try again"))
		return
	}
	resource := audit.Ref("Appointment", a.ID) + "/vitals"
	// The session, not the caller the socket opened with: a physician
	// signed out or deactivated since may not start watching anyone, even
	// before the next re-check closes the socket. Subscriptions are rare,
	// so one session lookup each costs little.
	c, err := m.s.lookupSession(m.p.request())
	if err != nil {
		m.s.auditDenied(m.p.request(), m.c, audit.ActionRead, a.PatientID, resource)
		m.conn.CloseWith(websocket.ClosePolicyViolation, errSessionEnded.Error())
		return
	}
	if !mayJoin(c, a) || !vitalsOpen(a, m.s.Now()) {
		m.s.auditDenied(m.p.request(), c, audit.ActionRead, a.PatientID, resource)
		m.v.Send(live.ErrorMessage(a.ID, vitalsWindowRefusal))
		return
	}
	m.mu.Lock()
	sub, again := m.visits[a.ID]
	full := !again && len(m.visits) >= maxViewerVisits
	if !full {
		if !again {
			sub = &visitSub{patient: a.PatientID}
			m.visits[a.ID] = sub
		}
		sub.pending = true
	}
	m.mu.Unlock()
	if full {
		m.v.Send(live.ErrorMessage(a.ID, fmt.Sprintf("one socket watches at most %d visits", maxViewerVisits)))
		return
	}
	if !again {
		m.s.audited(m.p.request(), c, audit.ActionRead, a.PatientID, resource)
	}
	m.s.sendSnapshot(ctx, m.v.Send, a.PatientID)
	err = m.s.Live.Subscribe(ctx, m.v, a.PatientID, req.From, a.ID)
	m.mu.Lock()
	sub.pending = false
	ended, reason := sub.ended || err != nil, sub.reason
	m.mu.Unlock()
	if ended {
		m.drop(a.ID, reason)
	}
}

// awaitReplayRoom waits until the viewer has taken enough of its queue for
// a subscription's replay (live.Viewer.ReplayRoom): the replays of visits
// subscribed in a burst then follow one another as fast as the viewer
// reads, instead of overflowing its queue together. False if the
// connection ended meanwhile. The requests that follow wait unread.
func (m *multiViewer) awaitReplayRoom() bool {
	select {
	case <-m.v.ReplayRoom():
		return true
	case <-m.v.FellBehind():
	case <-m.conn.Done():
	case <-m.p.ctx.Done():
	}
	return false
}

// drop ends the viewer's subscription to a visit; the patient's stream is
// left only when no other subscribed visit is of the same patient. It
// reports whether the visit was subscribed (or being subscribed).
func (m *multiViewer) drop(appointment int64, reason string) (ended bool) {
	m.mu.Lock()
	sub, ok := m.visits[appointment]
	if ok && sub.pending {
		sub.ended, sub.reason = true, reason // the reader ends it (handle)
		m.mu.Unlock()
		return true
	}
	delete(m.visits, appointment)
	shared := false
	for _, other := range m.visits {
		shared = shared || ok && other.patient == sub.patient
	}
	m.mu.Unlock()
	if ok && !shared {
		m.s.Live.Unsubscribe(m.v, sub.patient)
	}
	if ok {
		m.v.Send(live.UnsubscribedMessage(appointment, reason))
	}
	return ok
}

// recheck ends the socket if the session ended, and each subscription
// whose visit is no longer open to the physician.
func (m *multiViewer) recheck(ctx context.Context) error {
	c, err := m.s.lookupSession(m.p.request())
	if err != nil {
		return errSessionEnded
	}
	m.mu.Lock()
	ids := make([]int64, 0, len(m.visits))
	for id := range m.visits {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		a, err := m.s.Store.AppointmentByID(ctx, id)
		var open bool
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			continue // the store is unwell: keep watching
		default:
			open = mayJoin(c, a) && vitalsOpen(a, m.s.Now()) && a.Status != scheduling.StatusEnteredInError
		}
		if !open && m.drop(id, errVisitOver.Error()) {
			m.s.metrics.revoked.Inc()
		}
	}
	return nil
}
