package media

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// wait bounds every wait on a channel in these tests.
const wait = 5 * time.Second

// sent is a packet a down track wrote, copied.
type sent struct {
	hdr     rtp.Header
	payload []byte
}

// captureWriter is a TrackLocalWriter that hands each packet to a channel;
// with block set, it blocks until release is closed, like a stalled link.
type captureWriter struct {
	out     chan sent
	block   bool
	release chan struct{}
}

func newCapture(block bool) *captureWriter {
	return &captureWriter{out: make(chan sent, 4096), block: block, release: make(chan struct{})}
}

func (w *captureWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.block {
		<-w.release
	}
	w.out <- sent{hdr: *h, payload: append([]byte(nil), payload...)}
	return len(payload), nil
}

func (w *captureWriter) Write(b []byte) (int, error) { return len(b), nil }

func (w *captureWriter) next(t *testing.T) sent {
	t.Helper()
	select {
	case p := <-w.out:
		return p
	case <-time.After(wait):
		t.Fatal("no packet written")
		return sent{}
	}
}

func (w *captureWriter) none(t *testing.T) {
	t.Helper()
	select {
	case p := <-w.out:
		t.Fatalf("unexpected packet seq %d", p.hdr.SequenceNumber)
	default:
	}
}

// bindCtx is the TrackLocalContext a subscribe connection would give.
type bindCtx struct {
	rtx bool
	w   webrtc.TrackLocalWriter
}

func (c *bindCtx) CodecParameters() []webrtc.RTPCodecParameters {
	cs := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111},
	}
	if c.rtx {
		cs = append(cs, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}, PayloadType: 97})
	}
	return cs
}
func (c *bindCtx) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c *bindCtx) SSRC() webrtc.SSRC                                      { return 1111 }
func (c *bindCtx) SSRCRetransmission() webrtc.SSRC {
	if c.rtx {
		return 2222
	}
	return 0
}
func (c *bindCtx) SSRCForwardErrorCorrection() webrtc.SSRC { return 0 }
func (c *bindCtx) WriteStream() webrtc.TrackLocalWriter    { return c.w }
func (c *bindCtx) ID() string                              { return "binding" }
func (c *bindCtx) RTCPReader() interceptor.RTCPReader      { return nil }

// bound returns a down track of src, bound and live, writing to w through
// its own queue.
func bound(t *testing.T, src *publishedTrack, w webrtc.TrackLocalWriter, rtx bool) *downTrack {
	t.Helper()
	q := newSendQueue()
	t.Cleanup(q.close)
	live := &atomic.Bool{}
	live.Store(true)
	d := newDownTrack(src, q, live)
	if _, err := d.Bind(&bindCtx{rtx: rtx, w: w}); err != nil {
		t.Fatal(err)
	}
	src.addDown(d)
	return d
}

// vp8Packet is a whole RTP packet carrying one VP8 frame with a 15-bit
// picture id and a TL0PICIDX; a keyframe announces w by h.
func vp8Packet(seq uint16, ts uint32, pic uint16, tl0 uint8, key bool, body byte) []byte {
	p := []byte{0x90, 0xc0, 0x80 | byte(pic>>8), byte(pic), tl0}
	if key {
		p = append(p, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00) // 320x180
	} else {
		p = append(p, 0x11, 0x02, 0x00)
	}
	p = append(p, body, body, body)
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 5, Marker: true}, Payload: p}).Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// feeder numbers the packets of one published layer.
type feeder struct {
	t   *publishedTrack
	l   *layer
	seq uint16
	ts  uint32
	pic uint16
	tl0 uint8
	h   rtp.Header
}

func (f *feeder) send(key bool, body byte) uint16 {
	f.seq++
	f.ts += 3000
	f.pic = (f.pic + 1) & 0x7fff
	f.tl0++
	f.t.handle(f.l, vp8Packet(f.seq, f.ts, f.pic, f.tl0, key, body), &f.h, time.Now())
	return f.seq
}

func vp8Of(t *testing.T, p sent) vp8Info {
	t.Helper()
	info, ok := parseVP8(p.payload)
	if !ok {
		t.Fatalf("packet %d is not VP8", p.hdr.SequenceNumber)
	}
	return info
}

func TestDownTrackSwitchesLayersAtKeyframesWithoutHoles(t *testing.T) {
	s := newSFU(t)
	b, _ := join(t, s, 1, "b")
	src := fakeTrack(t, b, webrtc.RTPCodecTypeVideo)
	// Sequence numbers far from 0 on both layers: the subscriber's
	// numbering must continue wherever it started.
	low := &feeder{t: src, l: src.addLayer(0, "q", nil), seq: 50000, ts: 5000, pic: 10}
	high := &feeder{t: src, l: src.addLayer(1, "h", nil), seq: 40000, ts: 900000, pic: 3000, tl0: 200}
	w := newCapture(false)
	d := bound(t, src, w, false)

	low.send(false, 'a') // not decodable alone: held back
	high.send(true, 'x') // not the layer this subscriber gets
	w.none(t)
	low.send(true, 'b')
	first := w.next(t)
	if info := vp8Of(t, first); !info.keyframe || first.payload[len(first.payload)-1] != 'b' {
		t.Fatalf("first packet forwarded %+v, want the low layer's keyframe", first.hdr)
	}
	if first.hdr.SSRC != 1111 || first.hdr.PayloadType != 96 {
		t.Fatalf("ssrc %d pt %d, want the subscriber's 1111 and 96", first.hdr.SSRC, first.hdr.PayloadType)
	}
	prev := first
	check := func(p sent, body byte) {
		t.Helper()
		if p.payload[len(p.payload)-1] != body {
			t.Fatalf("packet %d carries %q, want %q", p.hdr.SequenceNumber, p.payload[len(p.payload)-1], body)
		}
		if p.hdr.SequenceNumber != prev.hdr.SequenceNumber+1 {
			t.Fatalf("sequence %d after %d: a hole or a repeat", p.hdr.SequenceNumber, prev.hdr.SequenceNumber)
		}
		if int32(p.hdr.Timestamp-prev.hdr.Timestamp) <= 0 {
			t.Fatalf("timestamp %d after %d does not advance", p.hdr.Timestamp, prev.hdr.Timestamp)
		}
		a, b := vp8Of(t, prev), vp8Of(t, p)
		if b.picID != (a.picID+1)&0x7fff || b.tl0 != a.tl0+1 {
			t.Fatalf("picture id %d/%d after %d/%d: not continuous", b.picID, b.tl0, a.picID, a.tl0)
		}
		prev = p
	}
	low.send(false, 'c')
	check(w.next(t), 'c')

	// Switching up: the low layer keeps flowing until the high layer's
	// keyframe, then only the high layer, continuing every number.
	d.setTarget(1)
	high.send(false, 'y')
	low.send(false, 'd')
	check(w.next(t), 'd')
	w.none(t)
	high.send(true, 'z')
	check(w.next(t), 'z')
	low.send(false, 'e')
	high.send(false, 'w')
	check(w.next(t), 'w')
	w.none(t)
	if tgt, cur := d.layers(); tgt != 1 || cur != 1 {
		t.Fatalf("layers target %d current %d, want 1 and 1", tgt, cur)
	}

	// Pausing sends nothing; resuming waits for a keyframe and continues.
	d.setTarget(-1)
	high.send(true, 'p')
	w.none(t)
	d.setTarget(0)
	low.send(false, 'f')
	w.none(t)
	low.send(true, 'g')
	check(w.next(t), 'g')
}

func TestNACKsAreAnsweredFromTheCache(t *testing.T) {
	for _, rtx := range []bool{true, false} {
		name := "plain"
		if rtx {
			name = "rtx"
		}
		t.Run(name, func(t *testing.T) {
			s := newSFU(t)
			b, _ := join(t, s, 1, "b")
			src := fakeTrack(t, b, webrtc.RTPCodecTypeVideo)
			f := &feeder{t: src, l: src.addLayer(0, "", nil), seq: 65530}
			w := newCapture(false)
			d := bound(t, src, w, rtx)
			var out []sent
			for i := range 10 {
				f.send(i == 0, byte('a'+i))
				out = append(out, w.next(t))
			}
			now := time.Now()
			lost := out[4]
			d.retransmit(lost.hdr.SequenceNumber, now)
			re := w.next(t)
			payload := re.payload
			if rtx {
				if re.hdr.SSRC != 2222 || re.hdr.PayloadType != 97 {
					t.Fatalf("retransmission ssrc %d pt %d, want RTX 2222 and 97", re.hdr.SSRC, re.hdr.PayloadType)
				}
				if osn := binary.BigEndian.Uint16(payload); osn != lost.hdr.SequenceNumber {
					t.Fatalf("RTX original sequence %d, want %d", osn, lost.hdr.SequenceNumber)
				}
				payload = payload[2:]
			} else if re.hdr.SSRC != 1111 || re.hdr.SequenceNumber != lost.hdr.SequenceNumber {
				t.Fatalf("retransmission ssrc %d seq %d, want 1111 and %d", re.hdr.SSRC, re.hdr.SequenceNumber, lost.hdr.SequenceNumber)
			}
			if string(payload) != string(lost.payload) || re.hdr.Timestamp != lost.hdr.Timestamp {
				t.Fatal("retransmission differs from the packet first sent")
			}
			// Asked again at once: too soon. Later: sent again, up to the limit.
			d.retransmit(lost.hdr.SequenceNumber, now.Add(time.Millisecond))
			w.none(t)
			for i := 1; i < maxResends+2; i++ {
				d.retransmit(lost.hdr.SequenceNumber, now.Add(time.Duration(i)*resendGap))
			}
			for range maxResends - 1 {
				w.next(t)
			}
			w.none(t)
			// A number never sent is not answered.
			d.retransmit(lost.hdr.SequenceNumber+100, now)
			w.none(t)
			// With a 100 ms round trip, a NACK 20 ms after a resend is one
			// sent before that resend could arrive: not answered; at 80 ms it is.
			d.stats.rtt.Store(int64(100 * time.Millisecond))
			other := out[6].hdr.SequenceNumber
			d.retransmit(other, now)
			w.next(t)
			d.retransmit(other, now.Add(20*time.Millisecond))
			w.none(t)
			d.retransmit(other, now.Add(80*time.Millisecond))
			w.next(t)
			a, _ := join(t, s, 1, "a")
			a.subMu.Lock()
			a.subs[src.id] = &subscription{f: src, dt: d}
			a.subMu.Unlock()
			// The writer counts a packet just after writing it.
			st := a.Stats()
			for deadline := time.Now().Add(wait); len(st) == 1 && st[0].Packets < 12+maxResends && time.Now().Before(deadline); st = a.Stats() {
				time.Sleep(time.Millisecond) // polling a counter
			}
			if len(st) != 1 || st[0].Track != src.id || st[0].Kind != "video" || st[0].Layer != 0 {
				t.Fatalf("stats %+v, want one video track on layer 0", st)
			}
			if st[0].Retransmits != maxResends+2 || st[0].Unanswered != 1 || st[0].Packets != 12+maxResends {
				t.Fatalf("stats %+v: want %d retransmissions, 1 unanswered NACK, %d packets", st[0], maxResends+2, 12+maxResends)
			}
		})
	}
}

func TestStalledSubscriberDelaysNobody(t *testing.T) {
	s := newSFU(t)
	b, _ := join(t, s, 1, "b")
	video := fakeTrack(t, b, webrtc.RTPCodecTypeVideo)
	audio := fakeTrack(t, b, webrtc.RTPCodecTypeAudio)
	f := &feeder{t: video, l: video.addLayer(0, "", nil)}
	al := audio.addLayer(0, "", nil)
	stalled := newCapture(true)
	defer close(stalled.release)
	healthy := newCapture(false)
	sv := bound(t, video, stalled, false)
	bound(t, video, healthy, false)
	// The stalled subscriber's audio shares its queue and is stalled too.
	bound(t, audio, stalled, false)
	var h rtp.Header
	for i := range 2000 {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.send(i%100 == 0, byte(i))
			pkt, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(i), Timestamp: uint32(i) * 960}, Payload: []byte{1, 2, 3}}).Marshal()
			audio.handle(al, pkt, &h, time.Now())
		}()
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatalf("packet %d: the publisher's read loop is blocked by a stalled subscriber", i)
		}
		if p := healthy.next(t); p.payload[len(p.payload)-1] != byte(i) {
			t.Fatalf("healthy subscriber got packet %q, want %d", p.payload[len(p.payload)-1], i)
		}
	}
	if sv.stats.dropped.Load() == 0 {
		t.Fatal("the stalled subscriber's queue dropped nothing: it is not bounded")
	}
}

// fakeBWE is a fixed bandwidth estimate and loss.
type fakeBWE struct {
	mu   sync.Mutex
	bps  int
	loss float64
}

func (f *fakeBWE) GetTargetBitrate() int { f.mu.Lock(); defer f.mu.Unlock(); return f.bps }
func (f *fakeBWE) GetStats() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]any{"averageLoss": f.loss}
}
func (f *fakeBWE) set(bps int, loss float64) { f.mu.Lock(); f.bps, f.loss = bps, loss; f.mu.Unlock() }

// subscriberAndTracks joins two participants to a visit and returns the
// first, and a video and an audio track the second publishes, for the
// allocator tests.
func subscriberAndTracks(t *testing.T) (a *Participant, video, audio *publishedTrack) {
	t.Helper()
	s := newSFU(t)
	a, _ = join(t, s, 1, "a")
	b, _ := join(t, s, 1, "b")
	return a, fakeTrack(t, b, webrtc.RTPCodecTypeVideo), fakeTrack(t, b, webrtc.RTPCodecTypeAudio)
}

// subscribe gives subscriber a down tracks of video and audio, as the
// allocator finds them.
func subscribe(a *Participant, video, audio *publishedTrack) (vd, ad *downTrack) {
	vd, ad = newDownTrack(video, a.queue, &a.subLive), newDownTrack(audio, a.queue, &a.subLive)
	a.subMu.Lock()
	a.subs[video.id] = &subscription{f: video, dt: vd}
	a.subs[audio.id] = &subscription{f: audio, dt: ad}
	a.subMu.Unlock()
	return vd, ad
}

// steady makes l look active at bps.
func steady(l *layer, now time.Time, bps float64, w, h uint32) {
	l.lastAt.Store(now.UnixNano())
	l.rateAt, l.bps = now, bps
	l.width.Store(w)
	l.height.Store(h)
}

func TestAllocatorFitsLayersToBandwidthAndTile(t *testing.T) {
	a, video, audio := subscriberAndTracks(t)
	now := time.Now()
	q, h, f, o := video.addLayer(0, "q", nil), video.addLayer(1, "h", nil), video.addLayer(2, "f", nil), audio.addLayer(0, "", nil)
	rates := func(at time.Time) {
		steady(q, at, 100_000, 320, 180)
		steady(h, at, 300_000, 640, 360)
		steady(f, at, 1_000_000, 1280, 720)
		steady(o, at, 40_000, 0, 0)
	}
	vd, ad := subscribe(a, video, audio)
	bwe := &fakeBWE{}
	al := &allocator{p: a, bwe: bwe}

	// The low layer and audio's reserve need 164 kbit/s.
	steps := []struct {
		name  string
		bps   int
		loss  float64 // in the subscriber's receiver reports
		gcc   float64 // GCC's own loss figure
		tileW int
		tileH int
		after time.Duration
		want  int
	}{
		{"plenty", 3_000_000, 0, 0, 0, 0, 0, 2},
		{"the high layer no longer fits", 900_000, 0, 0, 0, 0, 0, 1},
		{"only the low layer fits", 300_000, 0, 0, 0, 0, 0, 0},
		{"not even the low layer: degrade first", 60_000, 0, 0, 0, 0, 0, 0},
		{"still not after a while, far under: pause", 60_000, 0, 0, 0, 0, pauseAfter + time.Millisecond, -1},
		{"room again: resume low", 250_000, 0, 0, 0, 0, 0, 0},
		{"a little under, losing nothing: keep the low layer", 120_000, 0, 0, 0, 0, 0, 0},
		{"a little under for long, losing nothing: still kept", 120_000, 0, 0, 0, 0, 2 * pauseAfter, 0},
		{"a little under for long, and GCC alone counts a fifth lost: kept", 120_000, 0, 0.2, 0, 0, pauseAfter, 0},
		{"a little under for long and losing packets: pause", 120_000, 0.2, 0, 0, 0, pauseAfter, -1},
		{"room again", 250_000, 0, 0, 0, 0, 0, 0},
		{"upgrades need headroom", 1_150_000, 0, 0, 0, 0, 0, 1},
		{"with headroom", 1_400_000, 0, 0, 0, 0, 0, 2},
		{"a small tile needs only the low layer", 3_000_000, 0, 0, 300, 170, 0, 0},
		{"a mid tile", 3_000_000, 0, 0, 600, 350, 0, 1},
		{"a hidden tile pauses", 3_000_000, 0, 0, 0, 0, 0, -1},
	}
	at := now
	for _, st := range steps {
		bwe.set(st.bps, st.gcc)
		vd.stats.fractionLost.Store(uint32(st.loss * 256))
		if st.name == "a hidden tile pauses" {
			vd.setTile(0, 0)
		} else if st.tileW > 0 {
			vd.setTile(st.tileW, st.tileH)
		}
		at = at.Add(st.after)
		rates(at)
		al.allocate(at)
		if got, _ := vd.layers(); got != st.want {
			t.Fatalf("%s: layer %d, want %d", st.name, got, st.want)
		}
		if got, _ := ad.layers(); got != 0 {
			t.Fatalf("%s: the audio track's target changed to %d", st.name, got)
		}
	}
}

func TestParseVP8(t *testing.T) {
	key := vp8Packet(1, 0, 0x1234, 7, true, 'k')[12:]
	inter := vp8Packet(1, 0, 0x1234, 7, false, 'i')[12:]
	tests := []struct {
		name    string
		p       []byte
		ok, key bool
		pic     uint16
		w, h    uint16
	}{
		{"keyframe with picture id and size", key, true, true, 0x1234, 320, 180},
		{"inter frame", inter, true, false, 0x1234, 0, 0},
		{"no extension", []byte{0x10, 0x00, 0x00, 0x00}, true, true, 0, 0, 0},
		{"not the first partition", []byte{0x00, 0x00}, true, false, 0, 0, 0},
		{"7-bit picture id", []byte{0x90, 0x80, 0x05, 0x01}, true, false, 5, 0, 0},
		{"empty", nil, false, false, 0, 0, 0},
		{"extension cut", []byte{0x90}, false, false, 0, 0, 0},
		{"picture id cut", []byte{0x90, 0x80, 0x80}, false, false, 0, 0, 0},
		{"no frame data", []byte{0x90, 0x80, 0x05}, false, false, 0, 0, 0},
	}
	for _, tt := range tests {
		info, ok := parseVP8(tt.p)
		if ok != tt.ok || info.keyframe != tt.key || (ok && info.picIDOff >= 0 && info.picID != tt.pic) || info.width != tt.w || info.height != tt.h {
			t.Errorf("%s: %+v ok=%v", tt.name, info, ok)
		}
	}
}

// FuzzParseVP8 feeds arbitrary payloads to the VP8 descriptor parser: it
// must not panic, and rewriting a picture id it found must read back.
func FuzzParseVP8(f *testing.F) {
	f.Add(vp8Packet(1, 0, 0x1234, 7, true, 'k')[12:])
	f.Add(vp8Packet(1, 0, 5, 7, false, 'i')[12:])
	f.Fuzz(func(t *testing.T, p []byte) {
		info, ok := parseVP8(p)
		if !ok || info.picIDOff < 0 {
			return
		}
		c := append([]byte(nil), p...)
		want := (info.picID + 77) & info.picMask()
		info.rewrite(c, want, info.tl0+1)
		again, ok := parseVP8(c)
		if !ok || again.picID != want || again.keyframe != info.keyframe {
			t.Fatalf("rewritten picture id reads %d (ok %v), want %d", again.picID, ok, want)
		}
	})
}

// gccBWE is an estimate with GCC's statistics, whose delay measurement
// changes on every read, as a live estimator's does.
type gccBWE struct {
	mu           sync.Mutex
	bps          int
	usage, state string
	n            float64
}

func (g *gccBWE) GetTargetBitrate() int { g.mu.Lock(); defer g.mu.Unlock(); return g.bps }
func (g *gccBWE) GetStats() map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n++
	return map[string]any{"averageLoss": 0.0, "usage": g.usage, "state": g.state, "delayMeasurement": g.n}
}
func (g *gccBWE) set(bps int, usage, state string) {
	g.mu.Lock()
	g.bps, g.usage, g.state = bps, usage, state
	g.mu.Unlock()
}

// gccAllocation is a subscriber of a video (its low layer 300 kbit/s)
// and an audio track (40 kbit/s), allocated against a scripted GCC.
type gccAllocation struct {
	q, o   *layer
	vd, ad *downTrack
	bwe    *gccBWE
	al     *allocator
	at     time.Time
}

func newGCCAllocation(t *testing.T) *gccAllocation {
	a, video, audio := subscriberAndTracks(t)
	g := &gccAllocation{q: video.addLayer(0, "q", nil), o: audio.addLayer(0, "", nil), bwe: &gccBWE{}, at: time.Now()}
	g.vd, g.ad = subscribe(a, video, audio)
	g.al = &allocator{p: a, bwe: g.bwe}
	return g
}

// allocate gives GCC's figures, lets after pass with both tracks steady,
// allocates, and returns the video's target layer.
func (g *gccAllocation) allocate(bps int, usage, state string, after time.Duration) int {
	g.bwe.set(bps, usage, state)
	g.at = g.at.Add(after)
	steady(g.q, g.at, 300_000, 320, 180)
	steady(g.o, g.at, 40_000, 0, 0)
	g.al.allocate(g.at)
	target, _ := g.vd.layers()
	return target
}

func TestAllocatorResumesOnlyWhatTheLinkWasSeenToCarry(t *testing.T) {
	g := newGCCAllocation(t)
	step := func(name string, bps int, usage, state string, after time.Duration, sentBytes uint64, want int) {
		t.Helper()
		g.ad.stats.bytes.Add(sentBytes)
		if got := g.allocate(bps, usage, state, after); got != want {
			t.Fatalf("%s: layer %d, want %d", name, got, want)
		}
	}
	// The low layer and audio's reserve need 364 kbit/s.
	step("plenty, never congested", 3_000_000, "normal", "increase", 0, 0, 0)
	step("congested", 100_000, "overuse", "decrease", 0, 0, 0)
	step("congested for long: pause", 100_000, "overuse", "decrease", pauseAfter+time.Millisecond, 0, -1)
	// GCC raises its estimate on a quiet link: that proves nothing.
	step("the estimate rises, audio alone flows", 3_000_000, "normal", "increase", time.Second, 5_000, -1)
	step("still audio alone", 3_000_000, "normal", "increase", time.Second, 5_000, -1)
	// What a probe's padding would carry: about 400 kbit/s. One second of
	// it could be a token bucket's burst; two in a row are the link's.
	step("the link carries enough for a second", 3_000_000, "normal", "increase", time.Second, 50_000, -1)
	step("and for another", 3_000_000, "normal", "increase", time.Second, 50_000, 0)
}

func TestAllocatorKeepsVideoOnALinkThatCarriedItWithoutLoss(t *testing.T) {
	g := newGCCAllocation(t)
	step := func(name string, bps int, usage, state string, after time.Duration, sentBytes uint64, lost uint32, want int) {
		t.Helper()
		g.vd.stats.bytes.Add(sentBytes)
		g.vd.stats.fractionLost.Store(lost)
		if got := g.allocate(bps, usage, state, after); got != want {
			t.Fatalf("%s: layer %d, want %d (clean rate %.0f)", name, got, want, g.al.probe.clean)
		}
		if got, _ := g.ad.layers(); got != 0 {
			t.Fatalf("%s: the audio track's target changed to %d", name, got)
		}
	}
	// The low layer and audio's reserve need 364 kbit/s, what is sent of
	// them 340.
	step("plenty", 3_000_000, "normal", "increase", 0, 0, 0, 0)
	for i := range 3 {
		step(fmt.Sprintf("the link carries 1.2 Mbit/s, second %d", i+1), 3_000_000, "normal", "increase", time.Second, 150_000, 0, 0)
	}
	// A delay swing with nothing lost: GCC cuts to 0.85 times the rate it
	// sees received, far under what the video needs, and climbs slowly.
	step("a delay-based cut", 100_000, "overuse", "decrease", time.Second, 40_000, 0, 0)
	step("far under for long, nothing lost: the link carried more", 110_000, "normal", "increase", pauseAfter+time.Millisecond, 40_000, 0, 0)
	step("still", 120_000, "normal", "increase", time.Second, 40_000, 0, 0)
	// Loss in a receiver report, under the 10% that pauses by itself:
	// what the link carried before proves nothing now, and the estimate,
	// far under for long, pauses the video.
	step("the subscriber reports 5% loss: pause", 120_000, "overuse", "decrease", time.Second, 40_000, 13, -1)
}

func TestAllocatorPausesOnLossWhateverTheLinkCarried(t *testing.T) {
	a, video, audio := subscriberAndTracks(t)
	q, o := video.addLayer(0, "q", nil), audio.addLayer(0, "", nil)
	vd, _ := subscribe(a, video, audio)
	bwe := &fakeBWE{}
	al := &allocator{p: a, bwe: bwe}
	at := time.Now()
	al.probe.clean = 10_000_000     // as if the link had carried 10 Mbit/s
	bwe.set(200_000, 0)             // over budget, but not under half of the need
	vd.stats.fractionLost.Store(51) // the subscriber reports a fifth lost
	steady(q, at, 300_000, 320, 180)
	steady(o, at, 40_000, 0, 0)
	al.allocate(at)
	at = at.Add(pauseAfter + time.Millisecond)
	steady(q, at, 300_000, 320, 180)
	steady(o, at, 40_000, 0, 0)
	al.allocate(at)
	if got, _ := vd.layers(); got != -1 {
		t.Fatalf("a link losing 20%% kept its video on layer %d", got)
	}
}
