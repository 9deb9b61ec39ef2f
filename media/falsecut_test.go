package media

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// pacedPublisher is a Pion client in visit 1 publishing one VP8 track at
// the rate the test sets (one 1,000-byte frame per packet, a keyframe
// every half second or when asked) and one Opus track (a 100-byte packet
// every 20 ms).
type pacedPublisher struct {
	videoRate atomic.Int64 // bits per second
}

func publishPaced(t *testing.T, s *SFU, id string, videoRate int) *pacedPublisher {
	t.Helper()
	pc, err := benchAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", id)
	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", id)
	var key atomic.Bool
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						key.Store(true)
					}
				}
			}
		}()
	}
	joinPublisher(t, s, id, "Name of "+id, pc)
	pp := &pacedPublisher{}
	pp.videoRate.Store(int64(videoRate))
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		// Pacing a media source, not waiting for anything.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		const size = 1000
		body := make([]byte, size)
		var seq, aseq uint16
		var pic uint16
		var credit float64
		last, lastKey, lastAudio := time.Now(), time.Time{}, time.Time{}
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				credit = min(credit+float64(pp.videoRate.Load())*now.Sub(last).Seconds(), 4*size*8)
				last = now
				for credit >= size*8 {
					credit -= size * 8
					k := key.Swap(false) || now.Sub(lastKey) >= 500*time.Millisecond
					if k {
						lastKey = now
					}
					seq++
					pic = (pic + 1) & 0x7fff
					var pkt rtp.Packet
					_ = pkt.Unmarshal(vp8Packet(seq, uint32(now.UnixMilli()*90), pic, uint8(pic), k, 'v'))
					pkt.Payload = append(pkt.Payload, body[:size-len(pkt.Payload)]...)
					_ = video.WriteRTP(&pkt)
				}
				if now.Sub(lastAudio) >= 20*time.Millisecond {
					lastAudio = now
					aseq++
					_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: aseq, Timestamp: uint32(now.UnixMilli() * 48)}, Payload: body[:100]})
				}
			}
		}
	}()
	return pp
}

// laggingViewer is a Pion client in visit 1 that receives everything
// published there. The clock its TWCC feedback takes arrival times from
// can be made to lag, as a starved machine's does when it reads its
// packets late and then goes through the backlog at once: every packet
// arrives, in order, and only the arrival times swing.
type laggingViewer struct {
	p *Participant

	mu        sync.Mutex
	got       map[string]int // packets read, by publisher and kind
	from      time.Time      // the lag starts growing
	rise      time.Duration  // for this long, by 300 ms a second
	readsLate atomic.Bool    // the lag is not back to zero yet
}

// lagRise and lagFall are how fast the lag grows and then shrinks: under 1
// (a second a second) the clock never goes back.
const lagRise, lagFall = 0.3, 0.5

func viewLagging(t *testing.T, s *SFU) *laggingViewer {
	t.Helper()
	v := &laggingViewer{got: map[string]int{}}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(m, ir, webrtc.WithTWCCOptions(twcc.SendNow(v.now))); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		name := tr.StreamID() + " " + tr.Kind().String()
		buf := make([]byte, 1500)
		for {
			if _, _, err := tr.Read(buf); err != nil {
				return
			}
			v.mu.Lock()
			v.got[name]++
			v.mu.Unlock()
		}
	})
	v.p = joinSubscriber(t, s, "viewer", "Viewer", pc)
	return v
}

// now is the clock of the viewer's TWCC feedback: real time, plus the lag.
func (v *laggingViewer) now() time.Time {
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.from.IsZero() || now.Before(v.from) {
		return now
	}
	d := now.Sub(v.from)
	peak := time.Duration(float64(v.rise) * lagRise)
	var lag time.Duration
	if d <= v.rise {
		lag = time.Duration(float64(d) * lagRise)
	} else {
		lag = peak - time.Duration(float64(d-v.rise)*lagFall)
	}
	if lag <= 0 {
		v.from = time.Time{}
		v.readsLate.Store(false)
		return now
	}
	return now.Add(lag)
}

// lag makes the feedback's arrival times lag more and more for rise, then
// catch up.
func (v *laggingViewer) lag(rise time.Duration) {
	v.mu.Lock()
	v.from, v.rise = time.Now(), rise
	v.readsLate.Store(true)
	v.mu.Unlock()
}

func (v *laggingViewer) read(name string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.got[name]
}

// downOf returns the viewer's down track of what publisher id publishes
// of kind, or nil.
func (v *laggingViewer) downOf(id string, kind webrtc.RTPCodecType) *downTrack {
	for _, d := range v.p.downTracks() {
		if d.src.owner.id == id && d.src.kind == kind {
			return d
		}
	}
	return nil
}

// publishedRate is what the SFU receives of publisher id's video, in bits
// per second.
func publishedRate(s *SFU, id string) float64 {
	for _, st := range s.TrackStats() {
		if st.Direction == DirectionUp && st.Kind == "video" && strings.HasPrefix(st.Track, id) {
			return st.Bitrate
		}
	}
	return 0
}

// TestVideoJoiningAfterAFalseCongestionIsSent: a viewer's link carried a
// megabit a second without loss (a screen share, say); the share stops,
// and the viewer's machine, starved, reads its packets late and then all
// at once, so that GCC sees the delay swing and cuts its estimate to well
// under what the link carried, with not a packet lost. A camera that
// joins then must be sent: the link lost nothing, and carried more than
// everything together needs.
func TestVideoJoiningAfterAFalseCongestionIsSent(t *testing.T) {
	s := newSFU(t)
	t.Cleanup(s.Close)
	a := publishPaced(t, s, "a", 1_000_000)
	v := viewLagging(t, s)
	bwe := v.p.alloc.bwe
	figures := func() string {
		st := bwe.(lossReporter).GetStats()
		var rr []float64
		for _, d := range v.p.downTracks() {
			rr = append(rr, float64(d.stats.fractionLost.Load())/256)
		}
		return fmt.Sprintf("estimate %d, usage %v, state %v, GCC's loss %.3f; loss in receiver reports %v", bwe.GetTargetBitrate(), st["usage"], st["state"], st["averageLoss"], rr)
	}
	poll := func(what string, within time.Duration, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(within); !done(); time.Sleep(20 * time.Millisecond) { // polling the figures
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v (%s)", what, within, figures())
			}
		}
	}
	// Three seconds of a's megabit a second read by the viewer.
	poll("the viewer reads a's video", 30*time.Second, func() bool { return v.read("a video") >= 375 })
	a.videoRate.Store(100_000)
	poll("a's video down to 100 kbit/s", 20*time.Second, func() bool { return publishedRate(s, "a") < 200_000 })
	// The delay swing: GCC cuts its estimate to 0.85 times the rate it
	// sees received, which the lag stretches.
	v.lag(2 * time.Second)
	poll("GCC cuts its estimate", 20*time.Second, func() bool { return bwe.GetTargetBitrate() < 150_000 })
	t.Logf("cut: %s", figures())
	poll("the delay swing over", 20*time.Second, func() bool { return !v.readsLate.Load() })

	publishPaced(t, s, "b", 300_000)
	poll("the viewer reads b's video", 30*time.Second, func() bool { return v.read("b video") >= 10 })
	// Five seconds of b's video, well past the second a video must stay
	// over budget before it is paused: both videos flow throughout. For
	// the test to mean anything, the estimate must stay under half of
	// what they need for long enough to pause them.
	from := v.read("b video")
	var farSince time.Time
	var farFor time.Duration
	for v.read("b video") < from+185 {
		for _, id := range []string{"a", "b"} {
			if d := v.downOf(id, webrtc.RTPCodecTypeVideo); d != nil {
				if target, _ := d.layers(); target < 0 {
					t.Fatalf("%s's video paused on a link that lost nothing: %s", id, figures())
				}
			}
		}
		need := 2*audioReserve + publishedRate(s, "a") + publishedRate(s, "b")
		switch now := time.Now(); {
		case float64(bwe.GetTargetBitrate()) >= need*pauseShare:
			farSince = time.Time{}
		case farSince.IsZero():
			farSince = now
		default:
			farFor = max(farFor, now.Sub(farSince))
		}
		time.Sleep(20 * time.Millisecond) // polling the down tracks
	}
	if farFor < pauseAfter+allocInterval {
		t.Fatalf("the estimate was under half of what the videos need for %v at most, too short to pause them: %s", farFor, figures())
	}
	t.Logf("b's video sent; the estimate was under half of what the videos need for %v: %s", farFor.Round(time.Millisecond), figures())
}
