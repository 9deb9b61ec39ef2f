package signaling_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
)

// simulcastRates are the test layers: about 100, 250 and 900 kbit/s; under
// the race detector, which slows every peer, about 35, 70 and 190 kbit/s.
// capRate is the cap that leaves no room for f.
var simulcastRates, capRate = func() (map[byte]layerRate, int) {
	if raceEnabled {
		return map[byte]layerRate{'q': {15, 300}, 'h': {15, 600}, 'f': {30, 800}}, 180_000
	}
	return map[byte]layerRate{'q': {30, 400}, 'h': {30, 1000}, 'f': {90, 1200}}, 450_000
}()

// awaitLayer waits until the subscriber's latest video packets come from
// one of layers, and returns when that happened.
func awaitLayer(t *testing.T, rec *recorder, layers string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		got := rec.snapshot("video")
		if n := len(got); n >= 10 && slices.IndexFunc(got[n-10:], func(a arrival) bool { return !containsByte(layers, a.layer) }) < 0 {
			return got[n-10].at
		}
		time.Sleep(100 * time.Millisecond) // polling the recorder
	}
	got := rec.snapshot("video")
	t.Fatalf("no run of layer %q within %v; last layer %q of %d packets", layers, within, got[len(got)-1].layer, len(got))
	return time.Time{}
}

func containsByte(s string, b byte) bool {
	for i := range len(s) {
		if s[i] == b {
			return true
		}
	}
	return false
}

// checkSwitches checks the subscriber's stream in sequence order: every
// change of layer lands on a keyframe, and the SFU skipped no sequence
// number where the layer changes. A number the subscriber did not get is
// a skip only if the SFU never sent it (routed says whether the network
// carried it toward the subscriber): a capped link drops packets, the
// last of a layer among them, and a retransmission may be dropped too.
func checkSwitches(t *testing.T, got []arrival, routed func(seq uint16) bool) {
	t.Helper()
	type pkt struct {
		ext int64
		a   arrival
	}
	var ps []pkt
	ext, prev := int64(got[0].seq), got[0].seq
	seen := map[int64]bool{}
	for _, a := range got {
		ext += int64(int16(a.seq - prev))
		prev = a.seq
		if !seen[ext] {
			seen[ext] = true
			ps = append(ps, pkt{ext, a})
		}
	}
	slices.SortFunc(ps, func(x, y pkt) int { return int(x.ext - y.ext) })
	switches := 0
	for i := 1; i < len(ps); i++ {
		p, a := ps[i-1], ps[i]
		if a.a.layer == p.a.layer {
			continue
		}
		switches++
		if !a.a.key {
			t.Fatalf("switch from layer %q to %q at sequence %d is not a keyframe", p.a.layer, a.a.layer, a.a.seq)
		}
		for ext := p.ext + 1; ext < a.ext; ext++ {
			if !routed(uint16(ext)) {
				t.Fatalf("switch to layer %q at sequence %d leaves a hole after %d: %d was never sent", a.a.layer, a.a.seq, p.a.seq, uint16(ext))
			}
		}
		if a.ext != p.ext+1 {
			t.Logf("switch to layer %q at sequence %d: %d to %d were sent but lost on the link", a.a.layer, a.a.seq, p.a.seq+1, a.a.seq-1)
		}
	}
	if switches < 2 {
		t.Fatalf("%d layer switches seen, want at least 2 (down and up)", switches)
	}
}

func TestSimulcastFollowsTheBandwidthCap(t *testing.T) {
	n := newTestNet(t, 0, 0)
	st := newStream(t, "qhf")
	c := newVCall(t, n, st.options("qhf"))
	stop := make(chan struct{})
	defer close(stop)
	st.run(t, c.pub, simulcastRates, stop)
	sub, tbf := c.join(t, "pat", "192.0.2.10", true)
	rec := record(t, sub)

	awaitLayer(t, rec, "f", timeout)
	tbf.SetRate(capRate)
	capped := time.Now()
	at := awaitLayer(t, rec, "qh", 20*time.Second)
	t.Logf("lower layer %v after the cap", at.Sub(capped).Round(time.Millisecond))
	tbf.SetRate(1_000_000_000)
	lifted := time.Now()
	at = awaitLayer(t, rec, "f", 60*time.Second)
	t.Logf("high layer back %v after the cap lifted", at.Sub(lifted).Round(time.Millisecond))
	checkSwitches(t, rec.snapshot("video"), rec.routedTo(n, "192.0.2.10", "video"))
}

func TestAudioKeepsFlowingWhenTheDownlinkIsCongested(t *testing.T) {
	n := newTestNet(t, 0, 0)
	st := newStream(t, "f")
	c := newVCall(t, n, st.options("f"))
	stop := make(chan struct{})
	defer close(stop)
	// 600 kbit/s of video that cannot be made smaller (200 under the race
	// detector, with the link capped to 80).
	rate, capped := layerRate{60, 1250}, 250_000
	if raceEnabled {
		rate, capped = layerRate{25, 1000}, 80_000
	}
	st.run(t, c.pub, map[byte]layerRate{'f': rate}, stop)
	sub, tbf := c.join(t, "pat", "192.0.2.10", true)
	rec := record(t, sub)
	rec.awaitPackets(t, "video", 30)
	tbf.SetRate(capped)
	time.Sleep(6 * time.Second) // the SFU adapts
	a0, v0 := st.last("audio"), st.last("f")
	time.Sleep(8 * time.Second) // the measured stretch
	a1, v1 := st.last("audio"), st.last("f")
	tbf.SetRate(1_000_000_000)
	time.Sleep(time.Second) // packets still queued on the link arrive
	var audioGot, videoGot []arrival
	for _, a := range rec.snapshot("audio") {
		if a.n >= a0 && a.n <= a1 {
			audioGot = append(audioGot, a)
		}
	}
	for _, a := range rec.snapshot("video") {
		if a.n >= v0 && a.n <= v1 {
			videoGot = append(videoGot, a)
		}
	}
	lost := missing(audioGot, a0, a1)
	np, pad := probes(c.s)
	t.Logf("audio: %d of %d lost; video: %d of %d sent arrived; %d probes, %d bytes of padding", lost, a1-a0+1, len(videoGot), v1-v0+1, np, pad)
	// The stated bound: under congestion, audio loses under 2%.
	if float64(lost) > 0.02*float64(a1-a0+1) {
		t.Fatalf("audio lost %d of %d packets under congestion, want under 2%%", lost, a1-a0+1)
	}
	if float64(len(videoGot)) > 0.5*float64(v1-v0+1) {
		t.Fatalf("video kept %d of %d packets on a link that cannot carry it", len(videoGot), v1-v0+1)
	}
}

func TestStalledSubscriberDoesNotDelayAnother(t *testing.T) {
	n := newTestNet(t, 0, 0)
	st := newStream(t, "f")
	c := newVCall(t, n, st.options("f"))
	stop := make(chan struct{})
	defer close(stop)
	rate := layerRate{100, 1000}
	if raceEnabled {
		rate = layerRate{40, 600}
	}
	st.run(t, c.pub, map[byte]layerRate{'f': rate}, stop)
	a, _ := c.join(t, "pat", "192.0.2.10", false)
	b, _ := c.join(t, "fam", "192.0.2.11", false)
	ra, rb := record(t, a), record(t, b)
	ra.awaitPackets(t, "video", 30)
	rb.awaitPackets(t, "video", 30)

	delays := func(from, to uint32) (ds []time.Duration, lost int) {
		got := ra.snapshot("video")
		for _, x := range got {
			if x.n >= from && x.n <= to {
				ds = append(ds, x.at.Sub(st.sentTime(x.n)))
			}
		}
		slices.Sort(ds)
		lost, _ = seqLoss(t, got, from, to)
		return ds, lost
	}
	measure := func() (p50, p95 time.Duration, lost int) {
		from := st.last("f") + 1
		time.Sleep(4 * time.Second) // the measured stretch
		to := st.last("f")
		time.Sleep(500 * time.Millisecond)
		ds, lost := delays(from, to)
		if len(ds) == 0 {
			t.Fatal("the healthy subscriber received nothing")
		}
		return ds[len(ds)/2], ds[len(ds)*95/100], lost
	}
	b50, b95, _ := measure()
	// b's link now drops everything and its application stops reading.
	n.setLoss("192.0.2.11", 1, false)
	close(rb.stop)
	s50, s95, lost := measure()
	t.Logf("healthy subscriber's delay p50/p95: %v/%v alone, %v/%v beside a stalled one; %d lost", b50, b95, s50, s95, lost)
	// A forwarder that waited for the stalled subscriber would add seconds
	// or stop altogether; the bound leaves room for a busy machine's noise.
	if s95 > 4*b95+50*time.Millisecond {
		t.Fatalf("a stalled subscriber raised another's p95 delay from %v to %v", b95, s95)
	}
	if lost > 4 {
		t.Fatalf("the healthy subscriber lost %d packets beside a stalled one", lost)
	}
}

func TestLateJoinersStartOnAKeyframeAndRequestsAreThrottled(t *testing.T) {
	n := newTestNet(t, 0, 0)
	st := newStream(t, "f")
	c := newVCall(t, n, st.options("f"))
	stop := make(chan struct{})
	defer close(stop)
	// Keyframes come only when asked for (and every 3 s).
	rate := layerRate{60, 800}
	if raceEnabled {
		rate = layerRate{30, 600}
	}
	st.run(t, c.pub, map[byte]layerRate{'f': rate}, stop)
	first, _ := c.join(t, "pat", "192.0.2.10", false)
	record(t, first).awaitPackets(t, "video", 30)

	ids := []string{"fam", "int", "doc2", "guest"}
	recs := make([]*recorder, len(ids))
	subs := make([]*webrtc.PeerConnection, len(ids))
	for i, id := range ids {
		cl, _ := c.join(t, id, fmt.Sprintf("192.0.2.%d", 20+i), false)
		recs[i] = record(t, cl)
		subs[i] = cl.Subscriber()
	}
	for i, r := range recs {
		r.awaitPackets(t, "video", 5)
		if a := r.snapshot("video")[0]; !a.key {
			t.Fatalf("late joiner %s: first video packet %d is not a keyframe", ids[i], a.n)
		}
	}

	// Everyone asks for keyframes 20 times a second for 3 s; the
	// publisher hears at most about two a second.
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < 3*time.Second {
		<-tick.C
		for _, pc := range subs {
			for _, tr := range pc.GetTransceivers() {
				if tr.Receiver() == nil || tr.Kind() != webrtc.RTPCodecTypeVideo {
					continue
				}
				for _, track := range tr.Receiver().Tracks() {
					_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(track.SSRC())}})
				}
			}
		}
	}
	end := time.Now()
	time.Sleep(500 * time.Millisecond) // requests still on their way
	got := st.requestsBetween(start, end.Add(500*time.Millisecond))
	limit := int(end.Sub(start)/(500*time.Millisecond)) + 2
	t.Logf("%d subscribers asked %d times each; the publisher got %d keyframe requests", len(subs), int(end.Sub(start)/(50*time.Millisecond)), got)
	if got > limit {
		t.Fatalf("the publisher got %d keyframe requests in %v, want at most %d", got, end.Sub(start), limit)
	}
	if got < 2 {
		t.Fatalf("the publisher got %d keyframe requests: subscribers' requests are not forwarded", got)
	}
}

// awaitPaused waits until the SFU has paused the subscriber's video (its
// down video track on no layer) and the subscriber has then had no video
// for a second, what the capped link still held having arrived; it
// returns the number of video packets the subscriber had then. A second
// without video alone is not enough: on a starved machine the link's
// packets can stall that long while the video still flows.
func awaitPaused(t *testing.T, s *testServer, rec *recorder, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		got := rec.snapshot("video")
		if n := len(got); n > 0 && time.Since(got[n-1].at) > time.Second && downVideoPaused(s) {
			return n
		}
		time.Sleep(100 * time.Millisecond) // polling the recorder
	}
	t.Fatalf("video still flowing %v after the cap (SFU paused: %v)", within, downVideoPaused(s))
	return 0
}

// downVideoPaused reports whether the SFU sends its one subscriber's video
// on no layer.
func downVideoPaused(s *testServer) bool {
	paused := false
	for _, st := range s.sfu.TrackStats() {
		if st.Direction == media.DirectionDown && st.Kind == "video" {
			if st.Layer != -1 {
				return false
			}
			paused = true
		}
	}
	return paused
}

// The bounds of TestPausedVideoResumesWhenTheCapLifts. The pause comes
// once the capped link's queue (6 s of video at the cap) has drained. The
// return is bounded by probing and GCC: a probe that does not win its step
// puts the next off by 2 s, doubling up to 16 s, and GCC raises its
// estimate by at most about 8% a second, and decreases it to 0.85 times
// the rate received on a delay spike, even on a free link. The climb from
// the resumed layer to the top one is bounded from the resume, so that a
// slow return within its own bound does not eat the climb's: from q's
// 165 kbit/s to the 1.11 Mbit/s f needs, GCC takes ln(1.11/0.165)/ln(1.08)
// = 25 s; each probe a decrease cuts short costs its gap and the 2 s of
// climbing the decrease undid, and three cut in a row (gaps of 2, 4 and
// 8 s) cost 20 s: 45 s. On a normal build (CI runs this test on one,
// .ci/run), quiet or loaded, the video paused 11 to 17 s after the cap
// and came back 5 to 21 s after it lifted, and the top layer came 0 to
// 36 s after the return, 25 s where no probe was cut short on the way
// from q (44 s once, before a probe went on through GCC capping its
// estimate at 1.5 times the rate received; docs/benchmarks.md, "The
// paused video's return under load"). Once in 14 loaded runs the return
// missed: GCC's figures froze as each of three probes started, and the
// gap grew to 16 s. The race detector slows Pion several times
// over: on a machine loaded to 20 on two cores the pause took 63 s and the
// return 40, so there the bounds are wide and hold only that video comes
// back at all (without probing it never does).
var pauseWithin, resumeWithin, climbWithin = func() (pause, resume, climb time.Duration) {
	if raceEnabled {
		return 120 * time.Second, 90 * time.Second, 0 // the top layer is not awaited
	}
	return 30 * time.Second, 30 * time.Second, 45 * time.Second
}()

func TestPausedVideoResumesWhenTheCapLifts(t *testing.T) {
	n := newTestNet(t, 0, 0)
	st := newStream(t, "qhf")
	c := newVCall(t, n, st.options("qhf"))
	stop := make(chan struct{})
	defer close(stop)
	st.run(t, c.pub, simulcastRates, stop)
	sub, tbf := c.join(t, "pat", "192.0.2.10", true)
	rec := record(t, sub)
	awaitLayer(t, rec, "f", timeout)

	// A cap that carries audio but not even the lowest layer.
	pauseCap := 80_000
	tbf.SetRate(pauseCap)
	capped := time.Now()
	before := awaitPaused(t, c.s, rec, pauseWithin)
	t.Logf("video paused %v after the cap", time.Since(capped).Round(time.Millisecond))
	tbf.SetRate(1_000_000_000)
	lifted := time.Now()
	deadline := lifted.Add(resumeWithin)
	for len(rec.snapshot("video")) < before+10 {
		if time.Now().After(deadline) {
			t.Fatalf("paused video did not resume within %v of the cap lifting", resumeWithin)
		}
		time.Sleep(100 * time.Millisecond) // polling the recorder
	}
	got := rec.snapshot("video")
	t.Logf("video resumed %v after the cap lifted, on layer %q", got[before].at.Sub(lifted).Round(time.Millisecond), got[before].layer)
	if !got[before].key {
		t.Fatalf("resumed video starts with packet %d, not a keyframe", got[before].n)
	}
	if raceEnabled {
		// The climb to the top layer is GCC's, about 8% a second, and is
		// held to its bound on a normal build (.ci/run). Under the race
		// detector it took another 13 to 35 s, a tenth of the package's
		// run, and proved nothing the resume has not.
		checkSwitches(t, rec.snapshot("video"), rec.routedTo(n, "192.0.2.10", "video"))
		return
	}
	resumed := got[before].at
	at := awaitLayer(t, rec, "f", climbWithin-time.Since(resumed))
	t.Logf("high layer back %v after the cap lifted, %v after the video resumed", at.Sub(lifted).Round(time.Millisecond), at.Sub(resumed).Round(time.Millisecond))
	checkSwitches(t, rec.snapshot("video"), rec.routedTo(n, "192.0.2.10", "video"))
}

// probes sums what the SFU's down tracks report of bandwidth probing: the
// probes run and the padding bytes they sent.
func probes(s *testServer) (n, padding uint64) {
	for _, st := range s.sfu.TrackStats() {
		if st.Direction == media.DirectionDown {
			n += st.Probes
			padding += st.PaddingBytes
		}
	}
	return n, padding
}

func TestProbingStopsWhileTheCapHolds(t *testing.T) {
	n := newTestNet(t, 0, 0)
	st := newStream(t, "f")
	c := newVCall(t, n, st.options("f"))
	stop := make(chan struct{})
	defer close(stop)
	// Video that cannot be made smaller, on a link that carries audio and
	// a little more, but never the video (as in the audio test above).
	rate, capped := layerRate{60, 1250}, 250_000
	if raceEnabled {
		rate, capped = layerRate{25, 1000}, 80_000
	}
	st.run(t, c.pub, map[byte]layerRate{'f': rate}, stop)
	sub, tbf := c.join(t, "pat", "192.0.2.10", true)
	rec := record(t, sub)
	rec.awaitPackets(t, "video", 30)
	tbf.SetRate(capped)
	awaitPaused(t, c.s, rec, 30*time.Second)
	// The backlog the video left on the link drains first; the estimator
	// then sees a quiet link and the SFU probes it.
	deadline := time.Now().Add(60 * time.Second)
	for p, _ := probes(c.s); p == 0; p, _ = probes(c.s) {
		if time.Now().After(deadline) {
			t.Fatal("the SFU never probed the link while video was paused")
		}
		time.Sleep(100 * time.Millisecond) // polling a counter
	}
	p0, b0 := probes(c.s)
	a0, v0 := st.last("audio"), st.last("f")
	window := 30 * time.Second
	time.Sleep(window) // the measured stretch, capped throughout
	p1, b1 := probes(c.s)
	a1, v1 := st.last("audio"), st.last("f")
	time.Sleep(time.Second) // packets still queued on the link arrive
	lost := missing(rec.snapshot("audio"), a0, a1)
	videoGot := 0
	for _, a := range rec.snapshot("video") {
		if a.n >= v0 && a.n <= v1 {
			videoGot++
		}
	}
	padRate := float64(b1-b0) * 8 / window.Seconds()
	t.Logf("over %v capped at %d bit/s: %d probes, %.0f bit/s of padding on average; audio %d of %d lost; video %d of %d arrived",
		window, capped, p1-p0, padRate, lost, a1-a0+1, videoGot, v1-v0+1)
	if b1 == b0 {
		t.Fatal("no probe padding was sent during the measured stretch")
	}
	if lost > 0 {
		t.Fatalf("audio lost %d of %d packets while the SFU probed a capped link", lost, a1-a0+1)
	}
	// Failed probes back off from 2 s, doubling: 30 s hold at most four
	// (gaps of 2+4+8+16 s, runs between).
	if p1-p0 > 4 {
		t.Fatalf("%d probes in %v on a link that stayed capped", p1-p0, window)
	}
	// Probes fill at most the headroom the estimate sees and stop when it
	// is used up or stops rising: on average they take well under what
	// the link has left after audio (50 packets a second of about 130
	// bytes). (A token bucket's burst lets the estimate, and so a probe,
	// run over the rate for a while.)
	if room := float64(capped) - 50*130*8; padRate > room*2/3 {
		t.Fatalf("probing sent %.0f bit/s of padding on average; the link had %.0f left after audio", padRate, room)
	}
	if float64(videoGot) > 0.05*float64(v1-v0+1) {
		t.Fatalf("video resumed (%d of %d packets) on a link that cannot carry it", videoGot, v1-v0+1)
	}
}
