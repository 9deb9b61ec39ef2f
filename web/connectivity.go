package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/bedside-health/bedside/media"
)

// ConnectivityChecker is the SFU as the pre-call connectivity check uses
// it: the ICE servers a browser should use, and a test connection.
type ConnectivityChecker interface {
	ICEServers(user, host string) []webrtc.ICEServer
	Check(ctx context.Context, offer string) (answer string, err error)
}

// Limits of the connectivity check.
const (
	maxCheckOffer = 16 << 10 // bytes of SDP
	checkTimeout  = 10 * time.Second
)

// checkRate is how often one person may run the check: a page load runs
// it once, and "Check again" a few more times.
var checkRate = MessageRate{PerSecond: 1.0 / 10, Burst: 6}

// checkLimits holds each user's check budget.
type checkLimits struct {
	mu    sync.Mutex
	users map[int64]*rate.Limiter
}

func (l *checkLimits) allow(user int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == nil {
		l.users = make(map[int64]*rate.Limiter)
	}
	lim := l.users[user]
	if lim == nil {
		lim = checkRate.limiter(checkRate)
		l.users[user] = lim
	}
	return lim.Allow()
}

// checkUser names a check's TURN credentials: a user's, or a guest's
// (guestAPI: a negative id).
func checkUser(c caller) string {
	if c.User.ID < 0 {
		return "check-g" + strconv.FormatInt(-c.User.ID, 10)
	}
	return "check-u" + strconv.FormatInt(c.User.ID, 10)
}

// handleCheckServers gives the browser the ICE servers, with fresh
// credentials, that its check (and its call) will use.
func (s *server) handleCheckServers(w http.ResponseWriter, r *http.Request, c caller) {
	if s.Connectivity == nil {
		http.Error(w, "the connectivity check is not available", http.StatusNotFound)
		return
	}
	servers := s.Connectivity.ICEServers(checkUser(c), s.publicHost(r))
	if servers == nil {
		servers = []webrtc.ICEServer{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"iceServers": servers})
}

// handleCheck answers the browser's test connection: an SDP offer with a
// data channel in, the SFU's answer out (201, application/sdp).
func (s *server) handleCheck(w http.ResponseWriter, r *http.Request, c caller) {
	if s.Connectivity == nil {
		http.Error(w, "the connectivity check is not available", http.StatusNotFound)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/sdp" {
		http.Error(w, "send the offer as Content-Type: application/sdp", http.StatusUnsupportedMediaType)
		return
	}
	if !s.checks.allow(c.User.ID) {
		s.metrics.refused.Inc("connectivity-check-rate")
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many connectivity checks: wait a few seconds and try again", http.StatusTooManyRequests)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCheckOffer))
	if err != nil {
		http.Error(w, "the offer is larger than 16 KiB", http.StatusRequestEntityTooLarge)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	answer, err := s.Connectivity.Check(ctx, string(body))
	switch {
	case errors.Is(err, media.ErrBusy):
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the video service is busy: try again in a few seconds", http.StatusServiceUnavailable)
		return
	case errors.Is(err, media.ErrBadOffer):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	s.Log.DebugContext(r.Context(), "connectivity check", "user", c.User.ID)
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}
