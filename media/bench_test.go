package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// benchAPI is a client stack with Pion's defaults, on loopback.
func benchAPI(b testing.TB) *webrtc.API {
	b.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		b.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		b.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// connect negotiates offerer with answerer directly (no trickle: both wait
// for their candidates).
func connect(b *testing.B, offerer, answerer *webrtc.PeerConnection) {
	b.Helper()
	o, err := offerer.CreateOffer(nil)
	if err != nil {
		b.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(o); err != nil {
		b.Fatal(err)
	}
	<-g
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		b.Fatal(err)
	}
	a, err := answerer.CreateAnswer(nil)
	if err != nil {
		b.Fatal(err)
	}
	g = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(a); err != nil {
		b.Fatal(err)
	}
	<-g
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		b.Fatal(err)
	}
}

// clientSignaler answers the SFU's offers with a client connection; one
// that only publishes leaves the subscribe offers unanswered.
type clientSignaler struct {
	tb          testing.TB
	client      *webrtc.PeerConnection
	p           chan *Participant
	answer      chan string
	publishOnly bool
}

func (s *clientSignaler) PublishAnswer(sdp string) { s.answer <- sdp }
func (s *clientSignaler) SubscribeOffer(sdp string, _ []TrackInfo) {
	if s.publishOnly {
		return
	}
	go func() {
		p := <-s.p
		s.p <- p
		// An offer still in hand when the test ends meets a closed client
		// or a participant that has left: not a failure.
		if err := s.client.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
			if s.client.ConnectionState() != webrtc.PeerConnectionStateClosed {
				s.tb.Error(err)
			}
			return
		}
		a, _ := s.client.CreateAnswer(nil)
		g := webrtc.GatheringCompletePromise(s.client)
		_ = s.client.SetLocalDescription(a)
		<-g
		if err := p.AnswerSubscribe(s.client.LocalDescription().SDP); err != nil && !errors.Is(err, ErrClosed) {
			s.tb.Error(err)
		}
	}()
}
func (s *clientSignaler) Candidate(string, webrtc.ICECandidateInit) {}

// joinClients joins two client connections to visit 1 of s: pub publishes
// the tracks it has, and sub receives them. Both leave when the test ends.
func joinClients(tb testing.TB, s *SFU, pub, sub *webrtc.PeerConnection) {
	tb.Helper()
	joinSubscriber(tb, s, "sub", "Subscriber", sub)
	joinPublisher(tb, s, "pub", "Publisher", pub)
}

// joinSubscriber joins the client connection sub to visit 1 of s as id,
// to receive what is published there; it leaves when the test ends.
func joinSubscriber(tb testing.TB, s *SFU, id, name string, sub *webrtc.PeerConnection) *Participant {
	tb.Helper()
	ss := &clientSignaler{tb: tb, client: sub, p: make(chan *Participant, 1), answer: make(chan string, 1)}
	sp, err := s.Join(1, id, name, ss)
	if err != nil {
		tb.Fatal(err)
	}
	ss.p <- sp
	tb.Cleanup(sp.Close)
	return sp
}

// joinPublisher joins the client connection pub to visit 1 of s as id and
// publishes the tracks it has (it receives nothing); it leaves when the
// test ends.
func joinPublisher(tb testing.TB, s *SFU, id, name string, pub *webrtc.PeerConnection) *Participant {
	tb.Helper()
	ps := &clientSignaler{tb: tb, client: pub, answer: make(chan string, 1), publishOnly: true}
	pp, err := s.Join(1, id, name, ps)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pp.Close)
	o, err := pub.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	g := webrtc.GatheringCompletePromise(pub)
	if err := pub.SetLocalDescription(o); err != nil {
		tb.Fatal(err)
	}
	<-g
	if err := pp.Publish(pub.LocalDescription().SDP); err != nil {
		tb.Fatal(err)
	}
	if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: <-ps.answer}); err != nil {
		tb.Fatal(err)
	}
	return pp
}

// BenchmarkForward measures one packet's trip from a publisher through a
// forwarder to a subscriber, all Pion peers on loopback in this process:
// direct (no forwarder: the clients' own cost), bare (a minimal Pion
// forwarder copying each packet to a TrackLocalStaticRTP) and sfu (this
// package). cpu-ns/pkt is the whole process's CPU time per packet; the
// forwarder's own cost is a variant's figure minus direct's.
func BenchmarkForward(b *testing.B) {
	for _, variant := range []string{"direct", "bare", "sfu"} {
		b.Run(variant, func(b *testing.B) { benchForward(b, variant) })
	}
}

func benchForward(b *testing.B, variant string) {
	api := benchAPI(b)
	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	src, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "pub")
	if _, err := pub.AddTrack(src); err != nil {
		b.Fatal(err)
	}
	tracks := make(chan *webrtc.TrackRemote, 1)
	sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })

	switch variant {
	case "direct":
		if _, err := sub.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			b.Fatal(err)
		}
		connect(b, pub, sub)
	case "bare":
		in, _ := api.NewPeerConnection(webrtc.Configuration{})
		out, _ := api.NewPeerConnection(webrtc.Configuration{})
		defer in.Close()
		defer out.Close()
		fwd, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "fwd")
		sender, err := out.AddTrack(fwd)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
		in.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				_, _ = fwd.Write(buf[:n])
			}
		})
		connect(b, pub, in)
		connect(b, out, sub)
	case "sfu":
		s, err := New(Config{AllowLoopback: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		// Tens of thousands of packets a second on one stream are far
		// beyond any estimate: measure forwarding, not congestion control
		// (whose interceptors still run on every packet).
		s.ignoreBWE = true
		joinClients(b, s, pub, sub)
	}

	// The publisher sends VP8 frames of one 1,100-byte packet, a keyframe
	// every 30, keeping at most 64 beyond the last one the subscriber read
	// so that nothing overflows. Each packet ends with its number, which
	// tells the publisher how far the subscriber has read: a packet lost
	// on the way (a busy machine drops UDP) then holds nothing up, where
	// counting reads would leave its place in the window taken for good
	// (and, once 64 were lost, every packet waiting for a timeout).
	// Until the subscriber has its first packet, packets go out every 2 ms
	// (those sent before the connections are up are lost).
	const inFlight = 64
	var readUpTo atomic.Uint32 // the number of the last packet read, plus one
	progress := make(chan struct{}, 1)
	var flowing atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		body := make([]byte, 1070)
		var given uint32 // packets given up on, as if read
		for i := uint32(0); ; i++ {
			if !flowing.Load() {
				select {
				case <-time.After(2 * time.Millisecond):
				case <-stop:
					return
				}
			}
			for flowing.Load() && i-max(readUpTo.Load(), given) >= inFlight {
				select {
				case <-progress:
				case <-time.After(50 * time.Millisecond):
					// Nothing read for a while (the machine is busy, or
					// the SFU paused the video): send rather than wait
					// forever.
					given = i - inFlight + 1
				case <-stop:
					return
				}
			}
			p := vp8Packet(uint16(i), i*3000, uint16(i), uint8(i), i%30 == 0, 'x')
			var pkt rtp.Packet
			_ = pkt.Unmarshal(p)
			binary.BigEndian.PutUint32(body[len(body)-4:], i)
			pkt.Payload = append(pkt.Payload, body...)
			_ = src.WriteRTP(&pkt)
		}
	}()
	var tr *webrtc.TrackRemote
	select {
	case tr = <-tracks:
	case <-time.After(20 * time.Second):
		b.Fatal("the subscriber got no track")
	}
	buf := make([]byte, 1500)
	read := func() {
		n, _, err := tr.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		if n >= 16 && buf[0]&0x20 == 0 { // a packet with no RTP padding ends with its number
			if i := binary.BigEndian.Uint32(buf[n-4:n]) + 1; i > readUpTo.Load() {
				readUpTo.Store(i) // only this goroutine stores
			}
		}
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	read()
	flowing.Store(true)
	for range 200 { // warm up: caches, estimates, buffers
		read()
	}
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	for range b.N {
		read()
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(r1.Utime.Nano()-r0.Utime.Nano()) + time.Duration(r1.Stime.Nano()-r0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
}

// discardWriter is a TrackLocalWriter that drops what it is given.
type discardWriter struct{}

func (discardWriter) WriteRTP(*rtp.Header, []byte) (int, error) { return 0, nil }
func (discardWriter) Write(b []byte) (int, error)               { return len(b), nil }

// BenchmarkHandle measures the publisher's read-loop work for one packet:
// parse, cache, and rewrite and queue for each subscriber (the writes
// happen on the subscribers' writer goroutines and are discarded).
func BenchmarkHandle(b *testing.B) {
	for _, subs := range []int{1, 5} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			s, err := New(Config{AllowLoopback: true}, nil)
			if err != nil {
				b.Fatal(err)
			}
			p, err := s.Join(1, "pub", "Publisher", &clientSignaler{tb: b})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			src := newPublishedTrack(p, "video", webrtc.RTPCodecTypeVideo, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000})
			l := src.addLayer(0, "", nil)
			live := &atomic.Bool{}
			live.Store(true)
			for range subs {
				q := newSendQueue()
				defer q.close()
				d := newDownTrack(src, q, live)
				if _, err := d.Bind(&bindCtx{w: discardWriter{}}); err != nil {
					b.Fatal(err)
				}
				src.addDown(d)
			}
			pkts := make([][]byte, 256)
			for i := range pkts {
				var pkt rtp.Packet
				_ = pkt.Unmarshal(vp8Packet(uint16(i), uint32(i)*3000, uint16(i), uint8(i), i == 0, 'x'))
				pkt.Payload = append(pkt.Payload, make([]byte, 1070)...)
				pkts[i], _ = pkt.Marshal()
			}
			var h rtp.Header
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				pkt := pkts[i%len(pkts)]
				// Sequence numbers keep rising across laps.
				binary.BigEndian.PutUint16(pkt[2:4], uint16(i))
				src.handle(l, pkt, &h, now)
			}
		})
	}
}
