package web

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/metrics"
)

// webMetrics are the families the web layer counts.
type webMetrics struct {
	requests  metrics.Counter // by route pattern and status class
	refused   metrics.Counter // inputs refused by a limit, by limit
	signIns   metrics.Counter // by outcome: success, failed, throttled
	sockets   metrics.Gauge   // open WebSockets by kind
	bookings  metrics.Counter // by outcome: booked, taken
	auditable metrics.Counter // accesses to patient data recorded, by action
	revoked   metrics.Counter // multi-visit sockets' visits ended by a re-check
}

func newWebMetrics(r *metrics.Registry) *webMetrics {
	return &webMetrics{
		requests:  r.Counter("bedside_http_requests_total", "HTTP requests by route pattern and status class.", "route", "code"),
		refused:   r.Counter("bedside_limit_refusals_total", "Inputs refused by a limit (body size, frame size, message rate, sign-in throttle), by limit.", "limit"),
		signIns:   r.Counter("bedside_sign_ins_total", "Sign-in attempts by outcome.", "outcome"),
		sockets:   r.Gauge("bedside_websockets_open", "Open WebSockets by kind (call, vitals, device).", "kind"),
		bookings:  r.Counter("bedside_bookings_total", "Booking attempts over the web by outcome.", "outcome"),
		auditable: r.Counter("bedside_audit_events_total", "Accesses to patient data recorded in the audit trail, by action.", "action"),
		revoked:   r.Counter("bedside_vitals_subscriptions_revoked_total", "Visits a multi-visit vitals socket watched until a re-check found them no longer open to its physician."),
	}
}

// countRequests counts each request under its route pattern (never its
// path, which may hold tokens) and the class of its status.
func (s *server) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.metrics.requests.Inc(route, string("12345"[min(max(sw.code/100, 1), 5)-1])+"xx")
		if sw.code == http.StatusRequestEntityTooLarge { // a form or FHIR body over its limit
			s.metrics.refused.Inc("body")
		}
	})
}

// statusWriter remembers the status a handler wrote. It passes Hijack
// through, for WebSocket upgrades.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response cannot be hijacked")
	}
	w.code = http.StatusSwitchingProtocols
	return h.Hijack()
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handleMetrics serves the Prometheus text format. The figures hold no
// patient data, only counts; still, with Deps.MetricsToken set a scraper
// must send it as a bearer token, and without one only this machine
// (loopback) may read them.
func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if s.MetricsToken != "" {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.MetricsToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "a metrics token is required (Authorization: Bearer)", http.StatusUnauthorized)
			return
		}
	} else if ip := net.ParseIP(audit.Address(r)); ip == nil || !ip.IsLoopback() {
		http.Error(w, "metrics are served to this machine only; set BEDSIDE_METRICS_TOKEN to scrape from elsewhere", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if err := s.Metrics.WriteText(w); err != nil {
		s.Log.WarnContext(r.Context(), "write metrics", "err", err)
	}
}
