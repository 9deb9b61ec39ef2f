package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/metrics"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals/live"
	"github.com/bedside-health/bedside/vitals/ward"
	"github.com/bedside-health/bedside/wsconn"
)

// CallHub is the signaling service the call WebSocket hands connections to.
type CallHub interface {
	Serve(ctx context.Context, conn *wsconn.Conn, p signaling.Peer) error
	Resume(ctx context.Context, conn *wsconn.Conn, p signaling.Peer, token string, last uint64) error
	Waiting(appointment int64) []signaling.Peer
	// Admitted reports whether a participant is in the call, not waiting.
	Admitted(appointment int64, participant string) bool
	// AdmittedFrom is Admitted, from the browser named browser
	// (signaling.Peer.Browser) only.
	AdmittedFrom(appointment int64, participant, browser string) bool
	// InCall lists who is admitted to a call on this node.
	InCall(appointment int64) []signaling.Peer
	// Remove ends a participant's session on this node at once (a
	// revoked guest link); with several nodes the revocation is passed on
	// to the node holding the call (pin.go).
	Remove(appointment int64, participant, reason string) bool
}

// Deps are the services the web layer needs. Store, Bus and Calls are
// required; the rest have defaults.
type Deps struct {
	Log   *slog.Logger
	Store store.Store
	Bus   cluster.Bus
	Calls CallHub
	// Streams opens WHIP publishers and WHEP viewers; Calls when it can,
	// else nil, and those routes answer 503.
	Streams   StreamHub
	PublicURL string           // e.g. "https://clinic.example"; used in join links
	Secure    bool             // served over HTTPS: cookies marked Secure, HSTS sent
	Now       func() time.Time // clock; time.Now by default
	// Secret is the server's key (at least 32 bytes) from which join links
	// are derived, so invites and reminders can carry the same link.
	Secret []byte
	// Notifier queues the patient's emails when a visit changes; nil sends none.
	Notifier Notifier
	// MailConfigured says whether emails leave the outbox over SMTP.
	MailConfigured bool
	// Audit records every access to patient data; nil records nothing.
	Audit *audit.Recorder
	// Metrics is where the web layer counts; a fresh registry if nil.
	Metrics *metrics.Registry
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed; from anyone else the header is ignored.
	TrustedProxies []netip.Prefix
	// MetricsToken, if set, is the bearer token GET /metrics requires;
	// without it only loopback callers may read the metrics.
	MetricsToken string
	// AllowedOrigins are extra origins (scheme://host[:port]) that may open
	// WebSockets besides the server's own host.
	AllowedOrigins []string
	// DeviceRate bounds the messages of one device across its connections,
	// CallRate those of one call connection; zero takes the defaults.
	DeviceRate, CallRate MessageRate
	// Connectivity runs the pre-call connectivity check; nil turns the
	// check's routes into 404s.
	Connectivity ConnectivityChecker
	// Live is the node's live vitals streams; an in-process live.Hub with
	// default settings if nil.
	Live LiveStreams
	// NEWS2 is the node's NEWS2 monitors; a ward.Ward publishing to Live
	// and keeping its records in Store if nil (without a ticker: call
	// ward.Ward.Run to let inputs go stale).
	NEWS2 NEWS2Monitors
	// VitalsFlush is the shortest time between two frames to one vitals
	// viewer (default 2 ms); the first message after a quiet spell is sent
	// at once.
	VitalsFlush time.Duration
	// DeviceAckInterval is the time between two commits, and acks, of a
	// device that keeps streaming: zero takes vitals.DefaultAckInterval,
	// and a negative value commits and acks each message at once.
	DeviceAckInterval time.Duration
	// VitalsWriteTimeout is how long one write to a vitals viewer may block
	// before the connection is cut (default 10 s).
	VitalsWriteTimeout time.Duration
	// Recheck is how often open sockets re-check their session, token or
	// visit (default 30s); losing it closes them with 1008.
	Recheck time.Duration
	// Rooms says which node holds each visit's call; routes of a call
	// held elsewhere are passed on to that node (pin.go). A single node
	// (cluster.LocalRooms, the default) holds every call.
	Rooms cluster.Rooms
	// Devices keeps each device's connection unique across the nodes
	// (deviceclaim.go); nil on a single node, whose own registry does.
	Devices cluster.Devices
}

// Notifier queues the emails a change of appointment calls for.
type Notifier interface {
	Changed(ctx context.Context, a scheduling.Appointment) error
}

// Session and link lifetimes.
const (
	sessionTTL = 12 * time.Hour
	// idleTimeout ends a session unused this long (staff and patients).
	idleTimeout = 30 * time.Minute
	joinSession = 4 * time.Hour
	// joinOpensBefore is how long before its visit a join link opens.
	joinOpensBefore = 24 * time.Hour
)

type server struct {
	Deps
	devices *deviceRegistry
	metrics *webMetrics
	checks  checkLimits
	// Passing requests on to the node that holds their visit: pin.go.
	pins       *pinMetrics
	forwardKey []byte
	forwarder  http.Handler
	sockets    socketScopes // sockets served past their handlers
	rechecks   socketChecks // their re-checks: recheck.go
	// Refused attempts with a device token, guest or password link,
	// throttled and summarised per address: throttle.go.
	refusals *refusals
}

// NewServer returns the HTTP handler for the whole application.
func NewServer(d Deps) http.Handler {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Live == nil {
		d.Live = live.NewHub(live.Config{})
	}
	if d.NEWS2 == nil {
		d.NEWS2 = ward.New(d.Live, NewWardRecords(d.Store), ward.Config{Now: d.Now, Log: d.Log})
	}
	if d.Metrics == nil {
		d.Metrics = metrics.NewRegistry()
	}
	if d.Streams == nil {
		d.Streams, _ = d.Calls.(StreamHub)
	}
	if d.Rooms == nil {
		d.Rooms = cluster.LocalRooms{}
	}
	s := &server{Deps: d, devices: newDeviceRegistry(), metrics: newWebMetrics(d.Metrics),
		pins: newPinMetrics(d.Metrics, d.Rooms), forwardKey: forwardKey(d.Secret)}
	s.forwarder = s.newForwarder()
	s.refusals = s.newRefusals(func(e store.AuditEvent) { d.Audit.Record(context.Background(), e) })
	mux := http.NewServeMux()
	s.routes(mux)
	cop := http.NewCrossOriginProtection()
	return s.nodeForwarded(s.realClient(securityHeaders(s.countRequests(cop.Handler(mux)), d.Secure)))
}

// securityHeaders sets the headers every response carries; secure (the
// site is served over HTTPS) adds HSTS, so browsers never fall back to
// plain HTTP.
func securityHeaders(next http.Handler, secure bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if secure {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Permissions-Policy", "camera=(self), microphone=(self), bluetooth=(self), geolocation=()")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}
