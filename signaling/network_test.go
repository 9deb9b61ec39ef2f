package signaling_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/wsconn"
)

// Addresses on the virtual network (TEST-NET-1).
const (
	serverIP = "192.0.2.1"
	pubIP    = "192.0.2.2"
)

// testNet is a virtual network shared by the SFU and its clients: one
// router, per-address random loss, and optional rate-capped links.
type testNet struct {
	router *vnet.Router
	mu     sync.Mutex
	lossTo map[string]float64 // chance a packet to this address is lost
	lossOf map[string]float64 // chance a packet from this address is lost
	// routed holds the RTP packets the router passed on (before any
	// downlink's token bucket, which may drop them).
	routed map[routedRTP]bool
}

// routedRTP is an RTP packet by its destination address, SSRC and
// sequence number, which SRTP leaves readable.
type routedRTP struct {
	dst  string
	ssrc uint32
	seq  uint16
}

// noteRTP records what the router passes on of an RTP packet; RTCP, STUN
// and DTLS are told apart by their first bytes (RFC 7983, RFC 5761).
func (n *testNet) noteRTP(dst string, b []byte) {
	if len(b) < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
		return
	}
	k := routedRTP{dst: dst, seq: binary.BigEndian.Uint16(b[2:]), ssrc: binary.BigEndian.Uint32(b[8:])}
	n.mu.Lock()
	n.routed[k] = true
	n.mu.Unlock()
}

// wasRouted reports whether the router passed on the RTP packet seq of
// ssrc to dst.
func (n *testNet) wasRouted(dst string, ssrc uint32, seq uint16) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.routed[routedRTP{dst, ssrc, seq}]
}

func newTestNet(t *testing.T, delay, jitter time.Duration) *testNet {
	t.Helper()
	r, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "192.0.2.0/24", MinDelay: delay, MaxJitter: jitter, QueueSize: 10000, LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNet{router: r, lossTo: map[string]float64{}, lossOf: map[string]float64{}, routed: map[routedRTP]bool{}}
	r.AddChunkFilter(func(c vnet.Chunk) bool {
		src, _, _ := net.SplitHostPort(c.SourceAddr().String())
		dst, _, _ := net.SplitHostPort(c.DestinationAddr().String())
		n.mu.Lock()
		p := max(n.lossTo[dst], n.lossOf[src])
		n.mu.Unlock()
		if p != 0 && rand.Float64() < p {
			return false
		}
		n.noteRTP(dst, c.UserData())
		return true
	})
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	return n
}

// setLoss sets the chance that packets to (and, with both, from) ip are
// lost.
func (n *testNet) setLoss(ip string, p float64, both bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lossTo[ip] = p
	if both {
		n.lossOf[ip] = p
	}
}

// host adds a machine at ip. With capped set, what reaches it passes a
// token bucket (its downlink), returned for changing the rate.
func (n *testNet) host(t *testing.T, ip string, capped bool) (*vnet.Net, *vnet.TBFQueue) {
	t.Helper()
	vn, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
	if err != nil {
		t.Fatal(err)
	}
	var nic vnet.NIC = vn
	var tbf *vnet.TBFQueue
	if capped {
		// Unlimited until capped; a 60 KB queue holds about 1.5 s at
		// 300 kbit/s, so a capped link shows delay before loss.
		tbf = vnet.NewTBFQueue(1_000_000_000, 64*1024, 60*1024)
		if nic, err = vnet.NewQueue(vn, tbf); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.router.AddNet(nic); err != nil {
		t.Fatal(err)
	}
	return vn, tbf
}

// clientAPI is a Pion API for a client on vn.
func clientAPI(t *testing.T, vn *vnet.Net) *webrtc.API {
	t.Helper()
	api, err := sigclient.NewAPIOn(vn)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// vcall is an SFU on a virtual network with a physician who publishes.
type vcall struct {
	net *testNet
	s   *testServer
	pub *sigclient.Client
}

// newVCall starts the SFU and a physician publishing opts' tracks.
func newVCall(t *testing.T, n *testNet, opts sigclient.Options) *vcall {
	t.Helper()
	sn, _ := n.host(t, serverIP, false)
	s := newTestServerOn(t, wsconn.Options{}, media.Config{Net: sn})
	pn, _ := n.host(t, pubIP, false)
	opts.API = clientAPI(t, pn)
	pub := s.dialWith(t, "doc", "Dr Ada", signaling.RolePhysician, appt, opts)
	await(t, pub, signaling.TypePublishAnswer)
	return &vcall{net: n, s: s, pub: pub}
}

// join admits a patient at ip (with a capped downlink if capped).
func (c *vcall) join(t *testing.T, id, ip string, capped bool) (*sigclient.Client, *vnet.TBFQueue) {
	t.Helper()
	return c.joinWith(t, id, ip, capped, func(vn *vnet.Net) *webrtc.API { return clientAPI(t, vn) })
}

// joinWith is join with the patient's client API built by api on its host.
func (c *vcall) joinWith(t *testing.T, id, ip string, capped bool, api func(*vnet.Net) *webrtc.API) (*sigclient.Client, *vnet.TBFQueue) {
	t.Helper()
	vn, tbf := c.net.host(t, ip, capped)
	cl := c.s.dialWith(t, id, "Patient "+id, signaling.RolePatient, appt, sigclient.Options{API: api(vn)})
	await(t, cl, signaling.TypeWelcome)
	if err := c.pub.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: id}); err != nil {
		t.Fatal(err)
	}
	await(t, cl, signaling.TypeAdmitted)
	return cl, tbf
}

// arrival is one packet as a subscriber's application got it.
type arrival struct {
	n     uint32
	layer byte
	key   bool
	seq   uint16
	at    time.Time
}

// recorder keeps what a subscriber receives on each track, by kind.
type recorder struct {
	mu   sync.Mutex
	got  map[string][]arrival
	ssrc map[string]uint32 // of each kind's track
	stop chan struct{}
}

// record reads both tracks of c until the test ends or stop is closed.
func record(t *testing.T, c *sigclient.Client) *recorder {
	t.Helper()
	r := &recorder{got: map[string][]arrival{}, ssrc: map[string]uint32{}, stop: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for range 2 {
		tr, err := c.NextTrack(ctx)
		if err != nil {
			t.Fatalf("subscriber got no track: %v (client error %v)", err, c.Err())
		}
		go r.read(tr)
	}
	return r
}

func (r *recorder) read(tr *webrtc.TrackRemote) {
	kind := tr.Kind().String()
	r.mu.Lock()
	if r.ssrc == nil {
		r.ssrc = map[string]uint32{}
	}
	r.ssrc[kind] = uint32(tr.SSRC())
	r.mu.Unlock()
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		select {
		case <-r.stop:
			return // the application stopped reading
		default:
		}
		a := arrival{seq: pkt.SequenceNumber, at: time.Now()}
		if kind == "video" {
			if a.n, a.layer, a.key, err = sigclient.ParseVP8Payload(pkt.Payload); err != nil {
				continue
			}
		} else {
			a.n = sigclient.PayloadNumber(pkt.Payload)
		}
		r.mu.Lock()
		r.got[kind] = append(r.got[kind], a)
		r.mu.Unlock()
	}
}

// ssrcOf is the SSRC of the track of kind.
func (r *recorder) ssrcOf(kind string) uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ssrc[kind]
}

func (r *recorder) snapshot(kind string) []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[kind])
}

// awaitPackets waits until the recorder has n packets of kind.
func (r *recorder) awaitPackets(t *testing.T, kind string, n int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(r.snapshot(kind)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d %s packets received, want %d", len(r.snapshot(kind)), kind, n)
		}
		time.Sleep(20 * time.Millisecond) // polling a counter, not standing in for an event
	}
}

// stream is a publisher's numbered VP8 (one packet per frame) and Opus.
type stream struct {
	video    map[byte]*webrtc.TrackLocalStaticRTP // by layer: 'q', 'h', 'f'; one 'f' without simulcast
	audio    *webrtc.TrackLocalStaticRTP
	mu       sync.Mutex
	sentAt   map[uint32]time.Time // video counter -> send time
	lastSent map[string]uint32
	requests []time.Time // keyframe requests the publisher got
	// pad is how many padding-only packets (a browser's bandwidth probes)
	// follow each video packet; set before run.
	pad int
}

// requestsBetween counts the keyframe requests received from..to.
func (st *stream) requestsBetween(from, to time.Time) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, at := range st.requests {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

func newStream(t *testing.T, layers string) *stream {
	t.Helper()
	st := &stream{video: map[byte]*webrtc.TrackLocalStaticRTP{}, sentAt: map[uint32]time.Time{}, lastSent: map[string]uint32{}}
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	for _, l := range []byte(layers) {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if len(layers) > 1 {
			opts = append(opts, webrtc.WithRTPStreamID(string(l)))
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(vp8, "video", "doc", opts...)
		if err != nil {
			t.Fatal(err)
		}
		st.video[l] = tr
	}
	var err error
	if st.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "doc"); err != nil {
		t.Fatal(err)
	}
	return st
}

// options publishes the stream: its first video layer as the track, the
// others as simulcast encodings.
func (st *stream) options(layers string) sigclient.Options {
	o := sigclient.Options{Tracks: []webrtc.TrackLocal{st.video[layers[0]], st.audio}}
	for _, l := range []byte(layers[1:]) {
		if o.Encodings == nil {
			o.Encodings = map[string][]webrtc.TrackLocal{}
		}
		o.Encodings["video"] = append(o.Encodings["video"], st.video[l])
	}
	return o
}

// layerRate is how a test layer is sent: packets per second and size.
type layerRate struct{ pps, size int }

// run sends the stream until stop: video layers at their rates, audio at
// 50 packets a second; a layer sends a keyframe when the SFU asks for one
// (and every 3 s). Simulcast packets carry the mid and rid extensions.
func (st *stream) run(t *testing.T, pub *sigclient.Client, rates map[byte]layerRate, stop <-chan struct{}) {
	t.Helper()
	var midID, ridID uint8
	mid := ""
	if len(st.video) > 1 {
		for _, tr := range pub.Publisher().GetTransceivers() {
			// The camera's transceiver (a screen share may be another).
			if tr.Kind() != webrtc.RTPCodecTypeVideo || tr.Sender() == nil || tr.Sender().Track() == nil || tr.Sender().Track().ID() != "video" {
				continue
			}
			mid = tr.Mid()
			for _, e := range tr.Sender().GetParameters().HeaderExtensions {
				switch e.URI {
				case sdp.SDESMidURI:
					midID = uint8(e.ID)
				case sdp.SDESRTPStreamIDURI:
					ridID = uint8(e.ID)
				}
			}
		}
		if midID == 0 || ridID == 0 || mid == "" {
			t.Fatal("publish connection did not negotiate the mid and rid extensions")
		}
	}
	wantKey := map[byte]bool{}
	var mu sync.Mutex
	go func() {
		for {
			select {
			case <-stop:
				return
			case id := <-pub.KeyframeRequests():
				l := byte('f')
				if i := strings.IndexByte(id, '/'); i >= 0 && i+1 < len(id) {
					l = id[i+1]
				}
				mu.Lock()
				wantKey[l] = true
				mu.Unlock()
				st.mu.Lock()
				st.requests = append(st.requests, time.Now())
				st.mu.Unlock()
			}
		}
	}()
	for l, tr := range st.video {
		r := rates[l]
		go func() {
			tick := time.NewTicker(time.Second / time.Duration(r.pps))
			defer tick.Stop()
			seq := uint16(rand.Uint32())
			for i := uint32(0); ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				mu.Lock()
				key := wantKey[l] || i%uint32(3*r.pps) == 0
				wantKey[l] = false
				mu.Unlock()
				// Counters of different layers never meet.
				n := uint32(l)<<24 | i
				p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: i * 3000, Marker: true}, Payload: sigclient.VP8Payload(n, l, key, r.size)}
				seq++
				if ridID != 0 {
					_ = p.Header.SetExtension(midID, []byte(mid))
					_ = p.Header.SetExtension(ridID, []byte(string(l)))
				}
				st.mu.Lock()
				st.sentAt[n] = time.Now()
				st.lastSent[string(l)] = n
				st.mu.Unlock()
				_ = tr.WriteRTP(p)
				for range st.pad {
					_ = tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PaddingSize: 200, SequenceNumber: seq, Timestamp: i * 3000}})
					seq++
				}
			}
		}()
	}
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			st.mu.Lock()
			st.lastSent["audio"] = n
			st.mu.Unlock()
			_ = st.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 960}, Payload: sigclient.NumberedPayload(n, 100)})
		}
	}()
}

func (st *stream) sentTime(n uint32) time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sentAt[n]
}

func (st *stream) last(what string) uint32 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.lastSent[what]
}

// seqLoss measures the residual loss of what the SFU sent a subscriber:
// over the packets of got whose counters lie in from..to, the RTP sequence
// numbers between the lowest and highest received that never arrived, even
// retransmitted. (The SFU may also choose not to send packets, pausing a
// video that does not fit; it then leaves no hole in the sequence.) It
// fails if one sequence number carried two different counters.
func seqLoss(t *testing.T, got []arrival, from, to uint32) (holes, span int) {
	t.Helper()
	seen := map[int64]uint32{}
	var ext int64
	var prev uint16
	first := true
	for _, a := range got {
		if a.n < from || a.n > to {
			continue
		}
		if first {
			ext, first = int64(a.seq), false
		} else {
			ext += int64(int16(a.seq - prev))
		}
		prev = a.seq
		if n, ok := seen[ext]; ok && n != a.n {
			t.Fatalf("sequence number %d carried counters %d and %d", a.seq, n, a.n)
		}
		seen[ext] = a.n
	}
	if len(seen) == 0 {
		return 0, 0
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for e := range seen {
		lo, hi = min(lo, e), max(hi, e)
	}
	span = int(hi - lo + 1)
	return span - len(seen), span
}

// missing counts the counters from..to (inclusive) that never arrived.
func missing(got []arrival, from, to uint32) int {
	seen := map[uint32]bool{}
	for _, a := range got {
		seen[a.n] = true
	}
	m := 0
	for n := from; n <= to; n++ {
		if !seen[n] {
			m++
		}
	}
	return m
}

func TestResidualLossAfterNACK(t *testing.T) {
	tests := []struct {
		name          string
		loss          float64
		both          bool
		delay, jitter time.Duration
	}{
		{"5% loss on the subscriber's downlink", 0.05, false, 0, 0},
		{"2% loss both ways, 50 ms delay with jitter", 0.02, true, 25 * time.Millisecond, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTestNet(t, tt.delay, tt.jitter)
			st := newStream(t, "f")
			c := newVCall(t, n, st.options("f"))
			stop := make(chan struct{})
			defer close(stop)
			sub, _ := c.join(t, "pat", "192.0.2.10", false)
			// The stretch measures at least 2,000 video packets the SFU sent
			// (1,000 under the race detector), so one lost is above 0.1%.
			// The SFU may pause a video it estimates the link cannot carry,
			// so the stretch lasts until that many were sent, or a minute.
			rate, want := layerRate{pps: 200, size: 300}, 2000
			if raceEnabled {
				rate, want = layerRate{pps: 50, size: 300}, 1000
			}
			st.run(t, c.pub, map[byte]layerRate{'f': rate}, stop)
			rec := record(t, sub)
			rec.awaitPackets(t, "video", 20)
			// Lossy from now on.
			n.setLoss("192.0.2.10", tt.loss, false)
			if tt.both {
				n.setLoss(pubIP, tt.loss, true)
				n.setLoss("192.0.2.10", tt.loss, true)
			}
			from := st.last("f") + 1
			for end := time.Now().Add(time.Minute); time.Now().Before(end); {
				time.Sleep(time.Second) // the measured stretch, checked each second
				if _, span := seqLoss(t, rec.snapshot("video"), from, st.last("f")); span >= want {
					break
				}
			}
			to := st.last("f")
			n.setLoss("192.0.2.10", 0, true)
			n.setLoss(pubIP, 0, true)
			// Late retransmissions still count: wait for a packet sent after to.
			after := to + 50
			deadline := time.Now().Add(timeout)
			for missing(rec.snapshot("video"), after, after) > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond) // polling the recorder
			}
			got := rec.snapshot("video")
			holes, span := seqLoss(t, got, from, to)
			lost, total := missing(got, from, to), int(to-from+1)
			t.Logf("of %d packets the SFU sent in the stretch, %d never arrived (%.3f%%); of %d the publisher sent, %d did not reach the application",
				span, holes, 100*float64(holes)/float64(max(span, 1)), total, lost)
			if span < 300 {
				t.Fatalf("only %d video packets sent in the stretch: too few to measure", span)
			}
			if float64(holes) >= 0.001*float64(span) {
				t.Fatalf("residual loss %d of %d, want below 0.1%%", holes, span)
			}
		})
	}
}

// routedTo reports, for a sequence number of r's track of kind, whether
// the network carried it toward ip.
func (r *recorder) routedTo(n *testNet, ip, kind string) func(seq uint16) bool {
	ssrc := r.ssrcOf(kind)
	return func(seq uint16) bool { return n.wasRouted(ip, ssrc, seq) }
}
