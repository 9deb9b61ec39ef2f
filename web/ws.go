package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/wsconn"
)

// upgrader returns an Upgrader whose origin check admits requests without an
// Origin (devices, tools) and browsers on this site or an allowed origin.
func (s *server) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     s.originAllowed,
	}
}

func (s *server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if s.PublicURL != "" {
		if pu, err := url.Parse(s.PublicURL); err == nil && strings.EqualFold(pu.Host, u.Host) && pu.Scheme == u.Scheme {
			return true
		}
	}
	return slices.Contains(s.AllowedOrigins, strings.ToLower(u.Scheme+"://"+u.Host))
}

// publicHost is the host browsers reach the server by: the public URL's,
// else the request's.
func (s *server) publicHost(r *http.Request) string {
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err == nil && u.Host != "" {
			return u.Host
		}
	}
	return r.Host
}

// refuseCrossOrigin answers 403 before an upgrade from another site.
func (s *server) refuseCrossOrigin(w http.ResponseWriter, r *http.Request) bool {
	if s.originAllowed(r) {
		return false
	}
	s.forbidden(w, r, "cross-origin WebSocket refused")
	return true
}

// handleCallWS connects a visit participant to the call's signaling.
func (s *server) handleCallWS(w http.ResponseWriter, r *http.Request, c caller) {
	if s.refuseCrossOrigin(w, r) {
		return
	}
	a, ok := s.participantVisit(w, r, c)
	if !ok {
		return
	}
	if !a.Status.Live() {
		http.Error(w, "this visit was cancelled", http.StatusGone)
		return
	}
	role := "patient"
	if c.User.Role == store.RolePhysician {
		role = "physician"
	} else {
		s.checkIn(r.Context(), a)
	}
	ws, err := s.upgrader().Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	conn := wsconn.New(ws, wsconn.Options{Rate: s.CallRate.socketRate(defaultCallRate)})
	defer conn.Close()
	s.metrics.sockets.Add(1, "call")
	defer s.metrics.sockets.Add(-1, "call")
	peer := signaling.Peer{
		ID:          "u" + strconv.FormatInt(c.User.ID, 10),
		Name:        c.User.Name,
		Role:        role,
		Appointment: a.ID,
		Host:        s.publicHost(r),
		Browser:     s.callBrowser(r),
	}
	s.keepChecking(r.Context(), conn, s.stillInCall(r, a.ID))
	s.Log.InfoContext(r.Context(), "call connected", "appointment", a.ID, "user", c.User.ID, "role", role)
	if token := r.URL.Query().Get("resume"); token != "" {
		// The token is a credential: never logged.
		last, _ := strconv.ParseUint(r.URL.Query().Get("last"), 10, 64)
		err = s.Calls.Resume(r.Context(), conn, peer, token, last)
	} else {
		err = s.Calls.Serve(r.Context(), conn, peer)
	}
	s.Log.InfoContext(r.Context(), "call disconnected", "appointment", a.ID, "user", c.User.ID, "err", err)
}

// callBrowser names the browser of a signed-in or join-link caller: by its
// per-browser cookie, which outlives session rotation, or by its session
// cookie for a browser that has none (a session started before it existed).
func (s *server) callBrowser(r *http.Request) string {
	if b := browserOf(r, browserCookie); b != "" {
		return b
	}
	return browserOf(r, sessionCookie)
}

// browserOf names the browser of r by its cookie named cookie (a session,
// or a guest's per-browser secret) for signaling.Peer.Browser: a one-way
// digest, so the hub never holds the credential; "" without the cookie.
func browserOf(r *http.Request, cookie string) string {
	ck, err := r.Cookie(cookie)
	if err != nil || ck.Value == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("bedside browser\x00" + ck.Value))
	return hex.EncodeToString(sum[:])
}

// checkIn marks a visit arrived when its patient enters the waiting room
// (a late patient marked a no-show included).
func (s *server) checkIn(ctx context.Context, a scheduling.Appointment) {
	if a.Status != scheduling.StatusBooked && a.Status != scheduling.StatusNoShow {
		return
	}
	_, err := s.Store.SetAppointmentStatus(ctx, a.ID, scheduling.StatusArrived, store.Change{ActorID: a.PatientID, At: s.Now(), Reason: "entered the waiting room"})
	if err != nil && !errors.Is(err, scheduling.ErrTransition) {
		s.Log.ErrorContext(ctx, "check-in", "appointment", a.ID, "err", err)
	}
}

// deviceRegistry keeps one live connection per device: a new connection of
// the same device closes the old one and waits until its handler has finished,
// so one Ingester at a time owns a device's sequence.
type deviceRegistry struct {
	mu    sync.Mutex
	conns map[int64]*deviceConn
	// rates holds each device's message budget across reconnections, so
	// reconnecting does not refill it. One small entry per device seen.
	rates map[int64]*wsconn.Rate
}

type deviceConn struct {
	conn *wsconn.Conn
	done chan struct{} // closed when the handler returns
}

func newDeviceRegistry() *deviceRegistry {
	return &deviceRegistry{conns: make(map[int64]*deviceConn), rates: make(map[int64]*wsconn.Rate)}
}

// rate returns device id's message budget, made from r on first use.
func (d *deviceRegistry) rate(id int64, r MessageRate) *wsconn.Rate {
	d.mu.Lock()
	defer d.mu.Unlock()
	lim := d.rates[id]
	if lim == nil {
		lim = r.socketRate(defaultDeviceRate)
		d.rates[id] = lim
	}
	return lim
}

// claim makes c the device's connection and returns the function to call when
// its handler is done.
func (d *deviceRegistry) claim(id int64, c *wsconn.Conn) (release func()) {
	mine := &deviceConn{conn: c, done: make(chan struct{})}
	for {
		d.mu.Lock()
		old := d.conns[id]
		if old == nil {
			d.conns[id] = mine
			d.mu.Unlock()
			break
		}
		d.mu.Unlock()
		old.conn.CloseWith(websocket.ClosePolicyViolation, "replaced by a newer connection")
		<-old.done
	}
	return func() {
		d.mu.Lock()
		if d.conns[id] == mine {
			delete(d.conns, id)
		}
		d.mu.Unlock()
		close(mine.done)
	}
}
