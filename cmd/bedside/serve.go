package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/postgres"
	"github.com/bedside-health/bedside/store/sqlite"
	"github.com/bedside-health/bedside/vitals/live"
	"github.com/bedside-health/bedside/vitals/monitor"
	"github.com/bedside-health/bedside/vitals/ward"
	"github.com/bedside-health/bedside/web"
)

// config is everything serve reads from flags and the environment.
type config struct {
	addr           string
	data           string
	publicURL      string
	databaseURL    string
	redisURL       string
	nodeURL        string
	ice            iceSettings // media networking: see ice.go
	logLevel       string
	seedDemo       bool
	allowedOrigin  string
	smtpURL        string
	mailFrom       string
	clinicName     string
	reminders      string
	noShowGrace    time.Duration
	secret         string
	trustedProxies []netip.Prefix
	callLimits     signaling.Limits
	vitals         live.Config   // live vitals history bounds
	vitalsFlush    time.Duration // shortest time between two frames to a viewer
	deviceAck      time.Duration // time between two acks of a streaming device; < 0: at once
	resumeGrace    time.Duration // how long a call participant whose connection was lost may resume
	recheck        time.Duration // how often open sockets re-check their session, token or visit
	bandHold       time.Duration // how long a new NEWS2 band holds before it is announced
	https          httpsSettings // serving TLS itself: see tls.go
}

// parseProxies reads BEDSIDE_TRUSTED_PROXIES: comma-separated addresses
// or CIDR prefixes of the reverse proxies whose X-Forwarded-For to believe.
func parseProxies(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		if a, err := netip.ParseAddr(part); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("BEDSIDE_TRUSTED_PROXIES: %q is neither an address nor a prefix such as 10.0.0.0/8", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// parseCount reads a non-negative whole number setting.
func parseCount(name, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("serve: %s %q: want a whole number, 0 for no limit", name, v)
	}
	return n, nil
}

// parsePositive reads a whole number setting above 0.
func parsePositive(name, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("serve: %s %q: want a whole number above 0", name, v)
	}
	return n, nil
}

// envOr returns the environment value for key, or def when unset.
func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func dataFlag(fs *flag.FlagSet, getenv func(string) string, p *string) {
	fs.StringVar(p, "data", envOr(getenv, "BEDSIDE_DATA", "./bedside-data"), "data folder for the embedded SQLite store (BEDSIDE_DATA)")
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", envOr(getenv, "BEDSIDE_ADDR", ":8080"), "listen address (BEDSIDE_ADDR)")
	dataFlag(fs, getenv, &c.data)
	fs.StringVar(&c.publicURL, "public-url", getenv("BEDSIDE_PUBLIC_URL"), "public base URL used in join links (BEDSIDE_PUBLIC_URL); default: the request's host")
	finishICE := iceFlags(fs, getenv, &c) // ice.go
	fs.StringVar(&c.logLevel, "log-level", envOr(getenv, "BEDSIDE_LOG_LEVEL", "info"), "debug, info, warn or error (BEDSIDE_LOG_LEVEL)")
	fs.BoolVar(&c.seedDemo, "demo", envOr(getenv, "BEDSIDE_DEMO", "1") != "0", "seed a demo clinic when the database is empty (BEDSIDE_DEMO=0 to disable)")
	fs.StringVar(&c.allowedOrigin, "allowed-origins", getenv("BEDSIDE_ALLOWED_ORIGINS"), "extra comma-separated origins allowed to open WebSockets (BEDSIDE_ALLOWED_ORIGINS)")
	fs.StringVar(&c.smtpURL, "smtp-url", getenv("BEDSIDE_SMTP_URL"), "mail server for invites and reminders, e.g. smtp://user:pass@smtp.example.org:587?from=visits@example.org (BEDSIDE_SMTP_URL); without it mail stays in the outbox page")
	fs.StringVar(&c.mailFrom, "mail-from", getenv("BEDSIDE_MAIL_FROM"), "sender address of invites (BEDSIDE_MAIL_FROM); default: the SMTP URL's from, else visits@ the public host")
	fs.StringVar(&c.clinicName, "clinic-name", envOr(getenv, "BEDSIDE_CLINIC_NAME", "Bedside clinic"), "the clinic's name as the sender of invites (BEDSIDE_CLINIC_NAME)")
	fs.StringVar(&c.reminders, "reminders", envOr(getenv, "BEDSIDE_REMINDERS", "24h,1h"), "when to remind patients before a visit, comma-separated durations, or none (BEDSIDE_REMINDERS)")
	grace := envOr(getenv, "BEDSIDE_NOSHOW_GRACE", "15m")
	fs.Func("noshow-grace", "mark a visit a no-show this long after its start with nobody checked in; 0 never (BEDSIDE_NOSHOW_GRACE, default 15m)", func(v string) error {
		grace = v
		return nil
	})
	maxVisits := envOr(getenv, "BEDSIDE_MAX_VISITS", "200")
	fs.Func("max-visits", "visits (waiting rooms and calls) this node holds at once; 0 no limit (BEDSIDE_MAX_VISITS, default 200)", func(v string) error {
		maxVisits = v
		return nil
	})
	maxParticipants := envOr(getenv, "BEDSIDE_MAX_PARTICIPANTS", "600")
	fs.Func("max-participants", "call participants this node holds at once; 0 no limit (BEDSIDE_MAX_PARTICIPANTS, default 600)", func(v string) error {
		maxParticipants = v
		return nil
	})
	vitalsHistory := envOr(getenv, "BEDSIDE_VITALS_HISTORY", "2400")
	fs.Func("vitals-history", "messages of each patient's live vitals kept for viewers to resume from (BEDSIDE_VITALS_HISTORY, default 2400: about 160 s)", func(v string) error {
		vitalsHistory = v
		return nil
	})
	vitalsHistoryBytes := envOr(getenv, "BEDSIDE_VITALS_HISTORY_BYTES", "1048576")
	fs.Func("vitals-history-bytes", "bytes of each patient's live vitals history at most (BEDSIDE_VITALS_HISTORY_BYTES, default 1048576)", func(v string) error {
		vitalsHistoryBytes = v
		return nil
	})
	vitalsFlush := envOr(getenv, "BEDSIDE_VITALS_FLUSH", "2ms")
	fs.Func("vitals-flush", "shortest time between two frames to a live vitals viewer; the first message after a quiet spell goes at once (BEDSIDE_VITALS_FLUSH, default 2ms)", func(v string) error {
		vitalsFlush = v
		return nil
	})
	deviceAck := envOr(getenv, "BEDSIDE_DEVICE_ACK_INTERVAL", "1s")
	fs.Func("device-ack-interval", "time between two commits, and acks, of a device that keeps streaming ahead of its acks (one that waits for each ack is acked at once); 0 stores and acks each message at once (BEDSIDE_DEVICE_ACK_INTERVAL, default 1s)", func(v string) error {
		deviceAck = v
		return nil
	})
	resumeGrace := envOr(getenv, "BEDSIDE_RESUME_GRACE", "20s")
	fs.Func("resume-grace", "how long a call participant whose connection was lost is kept, with its media, for the browser to resume; 0 removes it at once (BEDSIDE_RESUME_GRACE, default 20s)", func(v string) error {
		resumeGrace = v
		return nil
	})
	recheck := envOr(getenv, "BEDSIDE_SOCKET_RECHECK", "30s")
	fs.Func("socket-recheck", "how often an open WebSocket re-checks the session, token or visit that opened it; a signed-out session or revoked token closes its sockets within this time (BEDSIDE_SOCKET_RECHECK, 1s to 10m, default 30s)", func(v string) error {
		recheck = v
		return nil
	})
	bandHold := envOr(getenv, "BEDSIDE_NEWS2_BAND_HOLD", monitor.DefaultBandHold.String())
	fs.Func("news2-band-hold", "how long a patient's new NEWS2 band must hold before its alert is raised or a lower band is announced (BEDSIDE_NEWS2_BAND_HOLD, 1s to 10m, default 30s)", func(v string) error {
		bandHold = v
		return nil
	})
	finishTLS := tlsFlags(fs, getenv, &c) // tls.go
	// How the other nodes reach this one: node.go.
	finishNode := nodeFlags(fs, getenv, &c)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := finishTLS(); err != nil {
		return c, err
	}
	if err := finishICE(); err != nil {
		return c, err
	}
	var err error
	if c.noShowGrace, err = time.ParseDuration(grace); err != nil || c.noShowGrace < 0 {
		return c, fmt.Errorf("serve: no-show grace %q: want a duration such as 15m, or 0 for never", grace)
	}
	if c.resumeGrace, err = time.ParseDuration(resumeGrace); err != nil || c.resumeGrace < 0 || c.resumeGrace > 10*time.Minute {
		return c, fmt.Errorf("serve: resume grace %q: want a duration from 0 to 10m, such as 20s", resumeGrace)
	}
	if c.recheck, err = time.ParseDuration(recheck); err != nil || c.recheck < time.Second || c.recheck > 10*time.Minute {
		return c, fmt.Errorf("serve: socket re-check %q: want a duration from 1s to 10m, such as 30s", recheck)
	}
	if c.bandHold, err = time.ParseDuration(bandHold); err != nil || c.bandHold < time.Second || c.bandHold > 10*time.Minute {
		// The ward looks at its patients' bands once a second: a shorter
		// hold would not be kept.
		return c, fmt.Errorf("serve: NEWS2 band hold %q: want a duration from 1s to 10m, such as 30s", bandHold)
	}
	if _, err := parseReminders(c.reminders); err != nil {
		return c, err
	}
	c.callLimits = signaling.Limits{PerVisit: signaling.DefaultPerVisit}
	if c.callLimits.Visits, err = parseCount("max-visits", maxVisits); err != nil {
		return c, err
	}
	if c.callLimits.Participants, err = parseCount("max-participants", maxParticipants); err != nil {
		return c, err
	}
	if c.vitals.HistoryMessages, err = parsePositive("vitals-history", vitalsHistory); err != nil {
		return c, err
	}
	if c.vitals.HistoryBytes, err = parsePositive("vitals-history-bytes", vitalsHistoryBytes); err != nil {
		return c, err
	}
	if c.vitalsFlush, err = time.ParseDuration(vitalsFlush); err != nil || c.vitalsFlush <= 0 || c.vitalsFlush > time.Second {
		return c, fmt.Errorf("serve: vitals flush %q: want a duration such as 2ms, above 0 and at most 1s", vitalsFlush)
	}
	if c.deviceAck, err = time.ParseDuration(deviceAck); err != nil || c.deviceAck < 0 || c.deviceAck > time.Minute {
		return c, fmt.Errorf("serve: device ack interval %q: want a duration such as 1s, from 0 to 1m", deviceAck)
	}
	if c.deviceAck == 0 {
		c.deviceAck = -1 // web.Deps: at once
	}
	c.secret = getenv("BEDSIDE_SECRET")
	if c.trustedProxies, err = parseProxies(getenv("BEDSIDE_TRUSTED_PROXIES")); err != nil {
		return c, err
	}
	c.databaseURL = getenv("DATABASE_URL")
	c.redisURL = getenv("REDIS_URL")
	if err := finishNode(); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// giveWriterAProc lends the store's writer one more P while it commits
// when its readings are committed by a thread at a lowered priority (the
// SQLite store's): that thread holds a P while it runs, and when the
// kernel leaves it waiting, the P waits with it. Without the extra P, a
// two-core node delivered live vitals with one P whenever a commit was in
// hand. Ps kept all the time instead cost CPU on every delivery: one more
// a tenth more, and two a CPU (four on two cores) 5 % more on a slower
// instance and, on a faster one, a median 1.52 times the bare relay's
// against the lending's 1.45 (the target is 1.5), for a p99 not told
// apart on either (docs/benchmarks.md). Each loan and return stops the
// world once, which shows as stops of a few ms on a starved machine.
// GOMAXPROCS, when set, is left as it is.
func giveWriterAProc(st store.Store, getenv func(string) string, log *slog.Logger) {
	w, ok := st.(interface {
		WriterLowered() error
		LendWriterAProc()
	})
	if !ok {
		return
	}
	if err := w.WriterLowered(); err != nil {
		log.Info("readings are committed at the server's priority", "reason", err)
		return
	}
	procs := "with the Ps GOMAXPROCS sets"
	if getenv("GOMAXPROCS") == "" {
		w.LendWriterAProc()
		procs = "with one more P while they commit"
	}
	log.Info("readings are committed by a thread in the idle scheduling class (at nice +10 while starved there), " + procs)
}

// openStore opens the record store the configuration selects.
func openStore(ctx context.Context, data, databaseURL string) (store.Store, string, error) {
	if isPostgres(databaseURL) {
		where := "postgres"
		if u, err := url.Parse(databaseURL); err == nil {
			where = "postgres:" + u.Redacted()
		}
		db, err := postgres.Open(ctx, databaseURL)
		if err != nil {
			return nil, "", fmt.Errorf("open store %s: %w", where, err)
		}
		return db, where, nil
	}
	if databaseURL != "" {
		return nil, "", fmt.Errorf("DATABASE_URL %q: only postgres:// URLs are recognised", databaseURL)
	}
	path := filepath.Join(data, "bedside.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, "", fmt.Errorf("open store %s: %w", path, err)
	}
	return db, "sqlite:" + path, nil
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseServe(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	// Check the media settings before taking any port.
	if _, err := mediaConfig(c.ice, nil); err != nil {
		return err
	}
	// Take the port first, so a second copy fails before touching the data.
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	defer ln.Close()
	// One server (or restore) at a time on a data folder: see backup.go.
	lock, err := lockDataFolder(ctx, c.data, c.databaseURL)
	if err != nil {
		return err
	}
	defer lock.Release()
	// HTTPS, and with ACME the challenge port: see tls.go.
	tlsSrv, err := c.listenTLS(log)
	if err != nil {
		return err
	}
	defer tlsSrv.close()
	st, where, err := openStore(ctx, c.data, c.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	giveWriterAProc(st, getenv, log)
	var bus cluster.Bus = cluster.NewLocal()
	busName := "in-process"
	streams := live.NewHub(c.vitals)
	if c.redisURL != "" {
		rb, err := cluster.NewRedis(ctx, c.redisURL, log.With("component", "cluster"))
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		bus, busName = rb, "redis"
		// Live vitals streams are shared through Redis: offsets and
		// history are the same on every node.
		feed, err := cluster.NewRedisFeed(ctx, c.redisURL, streams, cluster.FeedConfig{
			HistoryMessages: c.vitals.HistoryMessages, HistoryBytes: c.vitals.HistoryBytes,
		}, log.With("component", "vitals-feed"))
		if err != nil {
			rb.Close()
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		defer feed.Close()
		streams.SetFeed(feed)
		go streams.Run(ctx)
	}
	defer bus.Close()

	if c.seedDemo {
		if err := seedDemo(ctx, st, c.data, stdout); err != nil {
			return fmt.Errorf("seed demo clinic: %w", err)
		}
	}

	secret, err := loadSecret(c.secret, c.data)
	if err != nil {
		return err
	}
	mc, err := mediaConfig(c.ice, secret)
	if err != nil {
		return err
	}
	sfu, err := media.New(mc, log.With("component", "media"))
	if err != nil {
		return fmt.Errorf("start media: %w", err)
	}
	defer sfu.Close()
	logMediaPorts(log, sfu)
	hub := signaling.NewHub(sfu, log.With("component", "signaling"))
	reg := newMetrics()
	registerMediaMetrics(reg, sfu)
	registerWriterMetrics(reg, st)
	callRefused := reg.Counter("bedside_call_refusals_total",
		"Call connections refused by a node limit (visits, participants, per-visit) or ended for their message rate or frame size, by limit.", "limit")
	hub.SetLimits(c.callLimits, func(limit string) { callRefused.Inc(limit) })
	hub.SetResumeGrace(c.resumeGrace)
	// Each visit's call is held by one node; the others pass it on.
	rooms, releasePins, err := startRooms(ctx, c, hub, log.With("component", "rooms"))
	if err != nil {
		return err
	}
	defer releasePins()
	// A device's connection is one in the cluster: a reconnection through
	// another node ends the old one there first.
	var devices cluster.Devices
	if c.redisURL != "" {
		d, err := cluster.NewRedisDevices(ctx, c.redisURL, cluster.DevicesConfig{}, log.With("component", "devices"))
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		defer d.Close()
		devices = d
	}

	var origins []string
	for _, o := range strings.Split(c.allowedOrigin, ",") {
		if o = strings.TrimSpace(strings.ToLower(o)); o != "" {
			origins = append(origins, o)
		}
	}
	notifier, err := newNotifier(c, st, secret, displayURL(c.publicURL, ln.Addr()), log.With("component", "notify"))
	if err != nil {
		return err
	}
	go notifier.Run(ctx, 30*time.Second)
	// NEWS2 and alerts follow each patient's readings; the ticker lets
	// inputs go stale and new bands hold.
	monitors := ward.New(streams, web.NewWardRecords(st), ward.Config{
		Monitor: monitor.Config{BandHold: c.bandHold},
		Log:     log.With("component", "news2"),
	})
	if c.redisURL != "" {
		// The node that sees a patient's readings leads their NEWS2;
		// readings and physicians' changes taken on other nodes are
		// carried to it (Run checks the leads and forwards them).
		peers, err := cluster.NewRedisNEWS2(ctx, c.redisURL, live.NewEpoch(), "", monitors.Apply, log.With("component", "news2-peers"))
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		defer peers.Close()
		monitors.SetPeers(peers)
	}
	go monitors.Run(ctx)
	handler := web.NewServer(web.Deps{
		Log: log, Store: st, Bus: bus, Calls: hub, Connectivity: sfu,
		Live: streams, VitalsFlush: c.vitalsFlush, DeviceAckInterval: c.deviceAck, NEWS2: monitors,
		PublicURL: strings.TrimRight(c.publicURL, "/"), AllowedOrigins: origins,
		// Behind a TLS-terminating proxy the public URL says HTTPS: then
		// cookies are Secure and browsers are told to stay on HTTPS.
		Secure: strings.HasPrefix(strings.ToLower(c.publicURL), "https://"),
		Secret: secret, Notifier: notifier, MailConfigured: notifier.Sender != nil,
		Audit:   &audit.Recorder{Store: st, Log: log.With("component", "audit")},
		Metrics: reg, MetricsToken: getenv("BEDSIDE_METRICS_TOKEN"),
		TrustedProxies: c.trustedProxies, Rooms: rooms, Devices: devices,
		Recheck: c.recheck,
	})

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	log.Info("bedside serving", "addr", ln.Addr().String(), "store", where, "bus", busName, "tls", c.https.mode())
	shown := displayURL(c.publicURL, ln.Addr())
	fmt.Fprintf(stdout, "Bedside is running at %s\n", shown)
	if hint := devicesimHint(c.data, shown); hint != "" {
		fmt.Fprintln(stdout, hint)
	}

	errc := make(chan error, 1)
	go func() { errc <- tlsSrv.serve(srv, ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	releasePins() // the visits' next requests go to the other nodes at once
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("shutdown incomplete", "err", err)
	}
	return nil
}

// devicesimHint tells a demo user who runs the server elsewhere than
// devicesim's default (http://localhost:8080) how to point it here: the
// command printed with the demo token has no --url. Empty otherwise.
func devicesimHint(data, shown string) string {
	if _, err := os.Stat(filepath.Join(data, demoFile)); err != nil || shown == "http://localhost:8080" {
		return ""
	}
	ws := "ws" + strings.TrimPrefix(strings.TrimSuffix(shown, "/"), "http")
	return "The simulated vitals hub reaches it with: go run ./cmd/devicesim --url " + ws + "/ws/device --token …"
}

func displayURL(public string, addr net.Addr) string {
	if public != "" {
		return public
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
