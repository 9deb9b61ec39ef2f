package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// joinFunc connects consult i's two participants, publishing pubs[0] (the
// physician's) and pubs[1] (the patient's) and handing every received
// track to recv, and returns what ends them.
type joinFunc func(ctx context.Context, i int, pubs [2]*publisher, recv *receiver) (leave func(), err error)

// mediaPhase is one measurement: N consults against one forwarder.
type mediaPhase struct {
	name     string
	pid      int // the forwarder's process, for its CPU and memory
	consults int
	warmup   time.Duration
	duration time.Duration
	mkJoin   func(*webrtc.API) joinFunc
	log      io.Writer
}

// mediaResult is what a phase measured over its window.
type mediaResult struct {
	name     string
	round    int
	consults int
	// window is the media's time measured: what the publishers scheduled
	// over it was sent, however late. wall is the time they took to send
	// it, over which CPU is measured.
	window, wall time.Duration
	sent         int64 // packets sent in the window
	got          int64 // of those, received
	// videoSent and videoGot are sent and got of video alone.
	videoSent, videoGot int64
	// longestGap is the longest run of one stream's packets lost, as time.
	longestGap time.Duration
	dups       int
	reordered  int
	lat        latencies
	rtcp       rtcpSnapshot // in the window
	cpu        time.Duration
	rss        int64
	selfCPU    time.Duration
	behind     int64 // frames the generator sent a frame interval late
	// rcvbufErrs counts the machine's UDP datagrams dropped for a full
	// socket buffer (anyone's) during the window.
	rcvbufErrs int64
	bad        int64
	firstErr   string
	// stalled counts the streams that delivered nothing for a while after
	// the window, rather than what was sent after it.
	stalled int
}

func (r mediaResult) loss() float64 { return lossOf(r.sent, r.got) }

// audioLoss and videoLoss are loss() of one kind.
func (r mediaResult) audioLoss() float64 {
	return lossOf(r.sent-r.videoSent, r.got-r.videoGot)
}
func (r mediaResult) videoLoss() float64 { return lossOf(r.videoSent, r.videoGot) }

func lossOf(sent, got int64) float64 {
	if sent == 0 {
		return 0
	}
	return float64(sent-got) / float64(sent)
}

// perPacket is the forwarder's CPU per forwarded packet.
func (r mediaResult) perPacket() time.Duration {
	if r.got == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.got)
}

func (p mediaPhase) run(ctx context.Context) (mediaResult, error) {
	res := mediaResult{name: p.name, consults: p.consults}
	counts := &rtcpCounts{}
	api, err := newLoadAPI(counts)
	if err != nil {
		return res, err
	}
	join := p.mkJoin(api)
	recv := newReceiver(p.consults)
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var senders sync.WaitGroup
	pubs := make([][2]*publisher, p.consults)
	var leaves []func()
	defer func() {
		stopSending()
		senders.Wait()
		for _, l := range leaves {
			l()
		}
		recv.wg.Wait()
	}()

	// Join the consults a few at a time, each sending as soon as it is in.
	fmt.Fprintf(p.log, "%s: joining %d consults\n", p.name, p.consults)
	var mu sync.Mutex
	var joinErr error
	sem := make(chan struct{}, 4)
	var joins sync.WaitGroup
	for i := range p.consults {
		for side := range 2 {
			if pubs[i][side], err = newPublisher(i, side); err != nil {
				return res, err
			}
		}
		sem <- struct{}{}
		joins.Add(1)
		go func() {
			defer func() { <-sem; joins.Done() }()
			jctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			leave, err := join(jctx, i, pubs[i], recv)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				joinErr = errors.Join(joinErr, fmt.Errorf("consult %d: %w", i, err))
				return
			}
			leaves = append(leaves, leave)
			for _, pub := range pubs[i] {
				senders.Add(1)
				go func() { defer senders.Done(); pub.run(sendCtx) }()
			}
		}()
	}
	joins.Wait()
	if joinErr != nil {
		return res, joinErr
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = recv.awaitFlowing(fctx)
	cancel()
	if err != nil {
		return res, fmt.Errorf("%s: %w", p.name, err)
	}
	fmt.Fprintf(p.log, "%s: every stream flowing; warming up %s, then measuring %s\n", p.name, p.warmup, p.duration)
	if err := sleepCtx(ctx, p.warmup); err != nil {
		return res, err
	}

	// The window: the media scheduled over p.duration from now, counters
	// lo to hi, and CPU between the moments the publishers reached its
	// edges. On a busy machine they reach them late, but the window still
	// holds the media of p.duration.
	open := time.Now()
	e0, err := p.edge(ctx, pubs, counts, open)
	if err != nil {
		return res, err
	}
	e1, err := p.edge(ctx, pubs, counts, open.Add(p.duration))
	if err != nil {
		return res, err
	}
	if res.rss, err = procRSS(p.pid); err != nil {
		return res, err
	}
	// What was sent in the window has arrived, or is lost, once each
	// stream delivers a packet sent after it, or has delivered nothing new
	// for two seconds; retransmissions of those lost arrive within a second
	// more.
	if res.stalled, err = recv.awaitPast(ctx, e1.next, 2*time.Second); err != nil {
		return res, err
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return res, err
	}
	stopSending()
	senders.Wait()

	res.window, res.wall = p.duration, e1.at.Sub(e0.at)
	res.cpu, res.selfCPU = e1.cpu-e0.cpu, e1.self-e0.self
	res.rtcp = rtcpSnapshot{e1.rtcp.nacksSent - e0.rtcp.nacksSent, e1.rtcp.nacksReceived - e0.rtcp.nacksReceived, e1.rtcp.keyRequests - e0.rtcp.keyRequests}
	res.behind = e1.behind - e0.behind
	res.rcvbufErrs = e1.rcvbufErrs - e0.rcvbufErrs
	lo, hi := e0.next, e1.next
	var lats []time.Duration
	k := 0
	for i, pp := range pubs {
		for side := range pp {
			for kind := range 2 {
				t := recv.tallies[streamID(i, side, kind)]
				var got, gap int
				got, gap, lats = t.window(lo[k], hi[k], lats)
				sent := int64(hi[k] - lo[k])
				res.sent += sent
				res.got += int64(got)
				if kind == 0 {
					res.videoSent += sent
					res.videoGot += int64(got)
				}
				if sent > 0 {
					// The gap as time, at the stream's mean packet rate.
					res.longestGap = max(res.longestGap, res.window*time.Duration(gap)/time.Duration(sent))
				}
				t.mu.Lock()
				res.dups += t.dups
				res.reordered += t.reordered
				t.mu.Unlock()
				k++
			}
		}
	}
	res.lat = summarise(lats)
	res.bad = recv.bad.Load()
	recv.errMu.Lock()
	if recv.err != nil {
		res.firstErr = recv.err.Error()
	}
	recv.errMu.Unlock()
	return res, nil
}

// edge is the state at one edge of the measured window.
type edge struct {
	next       []uint32 // each stream's next counter, by streamID
	cpu, self  time.Duration
	rtcp       rtcpSnapshot
	at         time.Time
	behind     int64
	rcvbufErrs int64
}

func (p mediaPhase) edge(ctx context.Context, pubs [][2]*publisher, counts *rtcpCounts, at time.Time) (e edge, err error) {
	var marks []<-chan [2]uint32
	for _, pp := range pubs {
		for _, pub := range pp {
			marks = append(marks, pub.mark(at))
		}
	}
	for _, m := range marks {
		select {
		case next := <-m:
			e.next = append(e.next, next[0], next[1])
		case <-ctx.Done():
			return e, ctx.Err()
		}
	}
	for _, pp := range pubs {
		for _, pub := range pp {
			e.behind += pub.behind.Load()
		}
	}
	e.rtcp = counts.snapshot()
	e.at = time.Now()
	e.rcvbufErrs = udpRcvbufErrors()
	if e.cpu, err = procCPU(p.pid); err != nil {
		return e, err
	}
	e.self, err = procCPU(os.Getpid())
	return e, err
}

// udpRcvbufErrors returns the machine's count of UDP datagrams dropped
// because a socket's receive buffer was full, or -1 if unknown.
func udpRcvbufErrors() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return -1
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					return -1
				}
				return v
			}
		}
	}
	return -1
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// serverJoin joins consults on a Bedside server at base (http:// or
// https://) as a browser does: the physician and the patient each open
// /ws/call/{visit} with their session cookie, the physician admits the
// patient from the waiting room, and both publish and subscribe.
func serverJoin(base string, creds consultCreds, api *webrtc.API) joinFunc {
	wsBase := "ws" + strings.TrimPrefix(strings.TrimSuffix(base, "/"), "http")
	return func(ctx context.Context, i int, pubs [2]*publisher, recv *receiver) (func(), error) {
		cc := creds.Consults[i]
		url := fmt.Sprintf("%s/ws/call/%d", wsBase, cc.Visit)
		dial := func(token string, pub *publisher) (*sigclient.Client, error) {
			return sigclient.Dial(ctx, url, sigclient.Options{API: api, Tracks: pub.tracks(),
				Header: http.Header{"Cookie": {"bedside_session=" + token}}})
		}
		phys, err := dial(cc.Physician, pubs[0])
		if err != nil {
			return nil, err
		}
		var clients []*sigclient.Client
		leave := func() {
			for _, c := range clients {
				_ = c.Close()
			}
		}
		clients = append(clients, phys)
		if w, err := phys.Await(ctx, signaling.TypeWelcome); err != nil || w.State != signaling.StateAdmitted {
			leave()
			return nil, fmt.Errorf("physician welcome %+v: %v", w, err)
		}
		pat, err := dial(cc.Patient, pubs[1])
		if err != nil {
			leave()
			return nil, err
		}
		clients = append(clients, pat)
		w, err := pat.Await(ctx, signaling.TypeWelcome)
		if err != nil {
			leave()
			return nil, fmt.Errorf("patient: %w", err)
		}
		if w.State != signaling.StateAdmitted {
			if err := admit(ctx, phys, w.Participant); err != nil {
				leave()
				return nil, err
			}
			if _, err := pat.Await(ctx, signaling.TypeAdmitted); err != nil {
				leave()
				return nil, fmt.Errorf("patient: %w", err)
			}
		}
		for k, c := range clients {
			go func() {
				for {
					tr, err := c.NextTrack(context.Background())
					if err != nil {
						return
					}
					recv.start(tr)
				}
			}()
			go func() {
				for {
					select {
					case <-c.KeyframeRequests():
						pubs[k].wantKey.Store(true)
					case <-c.Done():
						return
					}
				}
			}()
			go func() { // the rest of the conversation: errors only
				for {
					m, err := c.Next(context.Background())
					if err != nil {
						return
					}
					if m.Type == signaling.TypeError {
						recv.fail(fmt.Errorf("consult %d: server: %s", i, m.Error))
					}
				}
			}()
		}
		return leave, nil
	}
}

// admit waits for participant in phys's lobby and admits them.
func admit(ctx context.Context, phys *sigclient.Client, participant string) error {
	for {
		m, err := phys.Await(ctx, signaling.TypeLobby)
		if err != nil {
			return fmt.Errorf("physician: %w", err)
		}
		if m.Waiting == nil {
			continue
		}
		for _, w := range *m.Waiting {
			if w.Participant == participant {
				return phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: participant})
			}
		}
	}
}

// forwarderJoin joins consults on the bare forwarder at base: each
// participant offers a publish connection with its tracks and a receive-only
// subscribe connection that the forwarder answers with the other's tracks.
func forwarderJoin(base string, api *webrtc.API) joinFunc {
	return func(ctx context.Context, i int, pubs [2]*publisher, recv *receiver) (func(), error) {
		var pcs []*webrtc.PeerConnection
		leave := func() {
			for _, pc := range pcs {
				_ = pc.Close()
			}
		}
		for side, pub := range pubs {
			pc, err := api.NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				leave()
				return nil, err
			}
			pcs = append(pcs, pc)
			for _, tr := range pub.tracks() {
				s, err := pc.AddTrack(tr)
				if err != nil {
					leave()
					return nil, err
				}
				go func() {
					for {
						pkts, _, err := s.ReadRTCP()
						if err != nil {
							return
						}
						for _, p := range pkts {
							switch p.(type) {
							case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
								pub.wantKey.Store(true)
							}
						}
					}
				}()
			}
			if err := offerTo(ctx, fmt.Sprintf("%s/publish/%d/%d", base, i, side), pc); err != nil {
				leave()
				return nil, fmt.Errorf("publish: %w", err)
			}
			sub, err := api.NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				leave()
				return nil, err
			}
			pcs = append(pcs, sub)
			for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
				if _, err := sub.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
					leave()
					return nil, err
				}
			}
			sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { recv.start(tr) })
			if err := offerTo(ctx, fmt.Sprintf("%s/subscribe/%d/%d", base, i, side), sub); err != nil {
				leave()
				return nil, fmt.Errorf("subscribe: %w", err)
			}
		}
		return leave, nil
	}
}

// startForwarder runs this program's forwarder mode as a child process, so
// that its CPU and memory are its own.
func startForwarder(ctx context.Context) (url string, cmd *exec.Cmd, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd = exec.CommandContext(ctx, exe, "forwarder", "--addr", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start forwarder: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "forwarder listening on ")
	if err != nil || !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", nil, fmt.Errorf("start forwarder: it said %q (%v)", line, err)
	}
	return "http://" + addr, cmd, nil
}

// mediaConfig is a media run.
type mediaConfig struct {
	serverURL    string
	serverPID    int
	creds        consultCreds
	consults     int
	warmup       time.Duration
	duration     time.Duration
	forwarderURL string // "" skips the bare forwarder
	forwarderPID int
	rounds       int
}

// measureMedia runs, c.rounds times, the bare forwarder's phase (if any)
// then the server's, with the same clients and load: on a shared machine,
// rounds show how much of a difference is the machine's.
func measureMedia(ctx context.Context, c mediaConfig, log io.Writer) ([]mediaResult, error) {
	var out []mediaResult
	phase := func(round int, name string, pid int, join func(api *webrtc.API) joinFunc) error {
		// Each phase builds its own client stack, so its counts are its own.
		p := mediaPhase{name: name, pid: pid, consults: c.consults, warmup: c.warmup, duration: c.duration, mkJoin: join, log: log}
		r, err := p.run(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r.round = round
		out = append(out, r)
		return nil
	}
	for round := range max(c.rounds, 1) {
		if c.forwarderURL != "" {
			// The last round's connections are closed, not left bound to
			// the tracks.
			if err := resetForwarder(ctx, c.forwarderURL); err != nil {
				return out, err
			}
			if err := phase(round+1, phaseBare, c.forwarderPID, func(api *webrtc.API) joinFunc { return forwarderJoin(c.forwarderURL, api) }); err != nil {
				return out, err
			}
		}
		if err := phase(round+1, phaseServer, c.serverPID, func(api *webrtc.API) joinFunc { return serverJoin(c.serverURL, c.creds, api) }); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Phase names.
const (
	phaseBare   = "bare forwarder"
	phaseServer = "bedside"
)

func runMedia(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("media run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serverURL := fs.String("url", "http://127.0.0.1:8080", "the server's base URL")
	credsPath := fs.String("creds", "", "tokens written by loadtest media provision")
	pid := fs.Int("pid", 0, "the server's process id, for its CPU and memory (required)")
	n := fs.Int("consults", 0, "consults to run at once (default: all provisioned)")
	dur := fs.Duration("duration", 20*time.Second, "the measured window of each phase")
	warm := fs.Duration("warmup", 3*time.Second, "how long media flows before the window opens")
	rounds := fs.Int("rounds", 1, "how many times to measure both, alternating")
	withFwd := fs.Bool("forwarder", true, "measure the bare forwarder first, as the floor")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 {
		return errors.New("media run: --pid (the server's process id) is required")
	}
	c := mediaConfig{serverURL: *serverURL, serverPID: *pid, duration: *dur, warmup: *warm, rounds: *rounds}
	var err error
	if c.creds, err = readConsultCreds(*credsPath); err != nil {
		return fmt.Errorf("media run: %w", err)
	}
	c.consults = *n
	if c.consults <= 0 || c.consults > len(c.creds.Consults) {
		c.consults = len(c.creds.Consults)
	}
	if *withFwd {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		u, cmd, err := startForwarder(fctx)
		if err != nil {
			return fmt.Errorf("media run: %w", err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		c.forwarderURL, c.forwarderPID = u, cmd.Process.Pid
	}
	res, err := measureMedia(ctx, c, stderr)
	mediaReport(stdout, c, res)
	return err
}
