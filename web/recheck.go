package web

import (
	"context"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/auth"
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
// the first error closes conn with 1008 and the error as the reason. It
// holds a timer, not a goroutine, between checks: with thousands of idle
// sockets, a parked goroutine's stack each was a good part of their memory.
// Nor does it register with ctx (context.AfterFunc) to stop the timer: that
// cost an idle socket's context a map of children; the timer fires once
// more after the socket ended, sees it ended and is not armed again.
func (s *server) keepChecking(ctx context.Context, conn closer, still func(context.Context) error) {
	every := s.Recheck
	if every <= 0 {
		every = defaultRecheck
	}
	var t *time.Timer
	check := func() {
		select {
		case <-conn.Done():
			return
		case <-ctx.Done():
			return
		default:
		}
		if err := still(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Log.InfoContext(ctx, "socket closed: no longer allowed", "reason", err)
			conn.CloseWith(websocket.ClosePolicyViolation, err.Error())
			return
		}
		t.Reset(every)
	}
	// Armed only once t is set, so check never sees it unset.
	t = time.AfterFunc(math.MaxInt64, check)
	t.Reset(every)
}

var (
	errSessionEnded = errors.New("your session ended: sign in or open your link again")
	errVisitOver    = errors.New("this visit is no longer open")
	errTokenEnded   = errors.New("this device token was revoked or has expired")
)

// stillInVisit checks that the session behind r still exists and may join
// the visit, and that the visit is still live; vitals also requires it to be
// within its vitals window.
func (s *server) stillInVisit(r *http.Request, appointmentID int64, vitals bool) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := s.lookupSession(r)
		if err != nil {
			return errSessionEnded
		}
		a, err := s.Store.AppointmentByID(ctx, appointmentID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errVisitOver
			}
			return nil // the store is unwell: keep the call rather than cut it
		}
		if !mayJoin(c, a) || !a.Status.Live() || vitals && !vitalsOpen(a, s.Now()) {
			return errVisitOver
		}
		return nil
	}
}

// stillDevice checks that the token of the device socket p opened for
// patientID is neither revoked nor expired, or, for a patient's browser
// streaming with its visit session, that the session is still valid.
func (s *server) stillDevice(p *socketPeer, patientID int64) func(context.Context) error {
	return func(ctx context.Context) error {
		r := p.request()
		if bearerToken(r) == "" {
			c, err := s.lookupSession(r)
			if err != nil || c.User.ID != patientID {
				return errSessionEnded
			}
			if a, err := s.Store.AppointmentByID(ctx, c.Appointment); err == nil && !a.Status.Live() {
				return errVisitOver
			}
			return nil
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
