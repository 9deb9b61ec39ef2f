package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
)

// defaultRecheck is how often a long-lived socket re-checks that whoever
// opened it may still use it: a signed-out session, a revoked token or a
// cancelled visit closes its open sockets within this time.
const defaultRecheck = 30 * time.Second

// closer is a socket keepChecking can end: a wsconn.Conn or a viewer's.
type closer interface {
	Done() <-chan struct{}
	CloseWith(code int, reason string)
}

// keepChecking runs still every Deps.Recheck until conn closes or ctx ends;
// the first error closes conn with 1008 and the error as the reason.
// Between checks a socket holds no goroutine (with thousands of idle
// sockets, a parked goroutine's stack each was a good part of their
// memory) and no timer of its own: it waits in its server's queue of
// re-checks (socketChecks), about 50 bytes, where a timer and its function
// were about 300. Nor does it register with ctx (context.AfterFunc): a
// check due after the socket ended sees it ended and is dropped.
func (s *server) keepChecking(ctx context.Context, conn closer, still func(context.Context) error) {
	every := s.Recheck
	if every <= 0 {
		every = defaultRecheck
	}
	s.rechecks.add(s.Log, socketCheck{ctx: ctx, conn: conn, still: still}, every)
}

// socketChecks is a server's queue of socket re-checks, run from one
// timer armed for the earliest. Every socket waits the same interval, so
// a check comes back at the queue's end and the queue stays in order of
// due time. The zero value is ready.
type socketChecks struct {
	mu    sync.Mutex
	log   *slog.Logger
	base  time.Time     // due times count from here (monotonic)
	queue []socketCheck // in order of due
	head  int           // queue[:head] are done
	timer *time.Timer
}

// socketCheck is one socket's next re-check.
type socketCheck struct {
	due   time.Duration // since the queue's base
	every time.Duration
	ctx   context.Context
	conn  closer
	still func(context.Context) error
}

// add queues c's next check, every from now; log tells of a socket closed.
func (q *socketChecks) add(log *slog.Logger, c socketCheck, every time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.base.IsZero() {
		q.base, q.log = time.Now(), log
	}
	now := time.Since(q.base)
	c.due, c.every = now+every, every
	i := len(q.queue)
	for i > q.head && q.queue[i-1].due > c.due {
		i-- // a shorter interval than the rest: rare, tests only
	}
	q.queue = slices.Insert(q.queue, i, c)
	if i > q.head {
		return // the timer is armed for an earlier check
	}
	if q.timer == nil {
		q.timer = time.AfterFunc(every, q.fire)
		return
	}
	q.timer.Reset(every)
}

// fire starts the checks that are due, each on a goroutine of its own as a
// timer's function runs, and arms the timer for the next.
func (q *socketChecks) fire() {
	q.mu.Lock()
	now := time.Since(q.base)
	var due []socketCheck
	for q.head < len(q.queue) && q.queue[q.head].due <= now {
		due = append(due, q.queue[q.head])
		q.queue[q.head] = socketCheck{}
		q.head++
	}
	if q.head > len(q.queue)/2 {
		n := copy(q.queue, q.queue[q.head:])
		clear(q.queue[n:])
		q.queue, q.head = q.queue[:n], 0
	}
	if q.head < len(q.queue) {
		q.timer.Reset(q.queue[q.head].due - now)
	}
	q.mu.Unlock()
	for _, c := range due {
		go q.run(c)
	}
}

// run checks c's socket: the first error closes it with 1008 and the error
// as the reason; else its next check is queued.
func (q *socketChecks) run(c socketCheck) {
	select {
	case <-c.conn.Done():
		return
	case <-c.ctx.Done():
		return
	default:
	}
	if err := c.still(c.ctx); err != nil {
		if c.ctx.Err() != nil {
			return
		}
		q.log.InfoContext(c.ctx, "socket closed: no longer allowed", "reason", err)
		c.conn.CloseWith(websocket.ClosePolicyViolation, err.Error())
		return
	}
	q.add(q.log, c, c.every)
}

var (
	errSessionEnded = errors.New("your session ended: sign in or open your link again")
	errVisitOver    = errors.New("this visit is no longer open")
	errTokenEnded   = errors.New("this device token was revoked or has expired")
)

// stillInVisit checks that the session behind r still exists and may join
// the visit, and that the visit is still live; vitals also requires it to be
// within its vitals window.
//
// A re-check is not its person's activity: a session that has seen no
// request for idleTimeout ends, and its sockets close, however long the
// page stays open. Only a call socket's counts, while in a call
// (stillInCall).
func (s *server) stillInVisit(r *http.Request, appointmentID int64, vitals bool) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := s.recheckVisit(ctx, r, appointmentID, vitals)
		return err
	}
}

// stillInCall is stillInVisit for a call socket, whose re-check counts as
// its person's activity while they are in a call (inCall), so that nobody
// is signed out mid-call for not clicking.
func (s *server) stillInCall(r *http.Request, appointmentID int64) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := s.recheckVisit(ctx, r, appointmentID, false)
		if err == nil && c.tokenHash != nil && s.inCall(c, appointmentID) {
			s.touchSession(ctx, c.tokenHash, c.seen)
		}
		return err
	}
}

// recheckVisit checks the session behind r and the visit, as stillInVisit
// says; the caller is zero if the store could not say.
func (s *server) recheckVisit(ctx context.Context, r *http.Request, appointmentID int64, vitals bool) (caller, error) {
	c, err := s.recheckSession(r)
	if err != nil {
		return caller{}, errSessionEnded
	}
	a, err := s.Store.AppointmentByID(ctx, appointmentID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return caller{}, errVisitOver
		}
		return caller{}, nil // the store is unwell: keep the call rather than cut it
	}
	if !mayJoin(c, a) || !a.Status.Live() || vitals && !vitalsOpen(a, s.Now()) {
		return caller{}, errVisitOver
	}
	return c, nil
}

// inCall reports whether c's open call socket in the visit is its
// person's activity: a patient's visit session in the waiting room or the
// call (waiting for their visit, or in it), or anyone else admitted to
// the call with somebody else in it on this node (a consultation under
// way, not a consult page left open with nobody there).
func (s *server) inCall(c caller, appointmentID int64) bool {
	if c.Appointment != 0 {
		return true
	}
	me := "u" + strconv.FormatInt(c.User.ID, 10)
	if !s.Calls.Admitted(appointmentID, me) {
		return false
	}
	return slices.ContainsFunc(s.Calls.InCall(appointmentID), func(p signaling.Peer) bool { return p.ID != me })
}

// stillDevice checks that the token of the device socket p opened for
// patientID is neither revoked nor expired, or, for a patient's browser
// streaming with its visit session, that the session is still valid and
// its "Web browser" device, deviceID, not revoked.
func (s *server) stillDevice(p *socketPeer, patientID, deviceID int64) func(context.Context) error {
	return func(ctx context.Context) error {
		r := p.request()
		if bearerToken(r) == "" {
			c, err := s.recheckSession(r)
			if err != nil || c.User.ID != patientID {
				return errSessionEnded
			}
			if a, err := s.Store.AppointmentByID(ctx, c.Appointment); err == nil && !a.Status.Live() {
				return errVisitOver
			}
			return s.browserStillOn(ctx, deviceID)
		}
		got, err := s.Store.CredentialByHash(ctx, store.CredentialDevice, auth.HashToken(bearerToken(r)))
		if errors.Is(err, store.ErrNotFound) {
			return errTokenEnded
		}
		if err != nil {
			return nil // the store is unwell: keep the stream, which the store also holds
		}
		if !got.RevokedAt.IsZero() || !got.ExpiresAt.IsZero() && !s.Now().Before(got.ExpiresAt) {
			return errTokenEnded
		}
		return nil
	}
}
