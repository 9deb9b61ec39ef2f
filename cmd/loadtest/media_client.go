package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// The load of one direction of a consult, as a browser sends an HD camera:
// VP8 at 1.5 Mbit/s and 30 frames a second, a keyframe every 2 seconds (and
// on request) four times the size of the others, cut into packets of at
// most vp8MaxPayload bytes; Opus in 20 ms frames of 120 bytes.
const (
	videoBitrate   = 1_500_000
	videoFPS       = 30
	keyframeEvery  = 60
	keyframeFactor = 4
	vp8MaxPayload  = 1150
	audioFrame     = 20 * time.Millisecond
	audioPayload   = 120
)

// frameSizes returns the payload bytes of an inter frame and of a keyframe
// such that keyframeEvery frames, one of them a keyframe, carry the video
// bitrate.
func frameSizes() (inter, key int) {
	perPeriod := videoBitrate / 8 * keyframeEvery / videoFPS
	inter = perPeriod / (keyframeEvery - 1 + keyframeFactor)
	return inter, inter * keyframeFactor
}

// rtcpCounts counts the RTCP the load test's peer connections exchange
// with the forwarder: NACKs subscribers send (lost packets asked for),
// NACKs publishers receive, and keyframe requests (PLI, FIR) publishers
// receive.
type rtcpCounts struct {
	nacksSent, nacksReceived, keyRequests atomic.Int64
}

type rtcpSnapshot struct{ nacksSent, nacksReceived, keyRequests int64 }

func (c *rtcpCounts) snapshot() rtcpSnapshot {
	return rtcpSnapshot{c.nacksSent.Load(), c.nacksReceived.Load(), c.keyRequests.Load()}
}

// countingInterceptor feeds rtcpCounts from every connection of an API.
type countingInterceptor struct {
	interceptor.NoOp
	c *rtcpCounts
}

type countingFactory struct{ c *rtcpCounts }

func (f countingFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &countingInterceptor{c: f.c}, nil
}

func nackCount(pkts []rtcp.Packet) (nacks, keys int64) {
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.TransportLayerNack:
			for _, n := range p.Nacks {
				nacks += int64(len(n.PacketList()))
			}
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			keys++
		}
	}
	return nacks, keys
}

func (i *countingInterceptor) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, a interceptor.Attributes) (int, error) {
		n, _ := nackCount(pkts)
		i.c.nacksSent.Add(n)
		return w.Write(pkts, a)
	})
}

func (i *countingInterceptor) BindRTCPReader(r interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if a == nil {
			a = interceptor.Attributes{}
		}
		if pkts, err := a.GetRTCPPackets(b[:n]); err == nil {
			nacks, keys := nackCount(pkts)
			i.c.nacksReceived.Add(nacks)
			i.c.keyRequests.Add(keys)
		}
		return n, a, err
	})
}

// newLoadAPI is a client stack as a browser's, in Pion's terms: the default
// codecs and interceptors (NACK, reports, TWCC feedback), UDP over IPv4 on
// loopback, plus the RTCP counter.
func newLoadAPI(counts *rtcpCounts) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	// First, so that it is innermost: the RTCP the other interceptors
	// write (the NACK generator's) passes through it on the way out.
	ir.Add(countingFactory{c: counts})
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}
	sn, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetNet(bufferedNet{sn})
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// clientSocketBuffer is the kernel buffer, each way, of the clients' UDP
// sockets: the generator shares the machine with what it measures, and a
// client held up for a moment should not drop what the forwarder sent.
const clientSocketBuffer = 1 << 20

// bufferedNet is the host's network with larger UDP socket buffers.
type bufferedNet struct{ transport.Net }

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		_ = c.SetReadBuffer(clientSocketBuffer)
		_ = c.SetWriteBuffer(clientSocketBuffer)
	}
	return c, err
}

// streamID names stream kind (0 video, 1 audio) of side (0 physician, 1
// patient) of consult i.
func streamID(i, side, kind int) uint32 { return uint32(i*4 + side*2 + kind) }

// publisher sends one participant's camera and microphone.
type publisher struct {
	video, audio     *webrtc.TrackLocalStaticRTP
	videoID, audioID uint32
	wantKey          atomic.Bool
	behind           atomic.Int64 // frames sent more than a frame late
	offset           time.Duration

	// A mark asks for the counters at a point of the schedule: the
	// publisher answers once it has sent everything scheduled before it
	// and nothing after, however late a busy machine runs it.
	markMu sync.Mutex
	markAt time.Time
	markC  chan [2]uint32 // video and audio next counters; nil if none asked
}

// mark returns where the counters stand at the schedule's time at: the
// channel receives them once the publisher's sending reaches at.
func (p *publisher) mark(at time.Time) <-chan [2]uint32 {
	c := make(chan [2]uint32, 1)
	p.markMu.Lock()
	p.markAt, p.markC = at, c
	p.markMu.Unlock()
	return c
}

// reached answers a mark at or before next, the time of the next packet to
// send, with the counters so far.
func (p *publisher) reached(next time.Time, video, audio uint32) {
	p.markMu.Lock()
	defer p.markMu.Unlock()
	if p.markC != nil && !next.Before(p.markAt) {
		p.markC <- [2]uint32{video, audio}
		p.markC = nil
	}
}

func newPublisher(i, side int) (*publisher, error) {
	label := fmt.Sprintf("c%d-%d", i, side)
	v, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", label)
	if err != nil {
		return nil, err
	}
	a, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", label)
	if err != nil {
		return nil, err
	}
	// Spread the consults' frames over a frame interval, as independent
	// cameras are.
	off := time.Duration((i*2+side)*7919) * time.Microsecond % (time.Second / videoFPS)
	return &publisher{video: v, audio: a, videoID: streamID(i, side, 0), audioID: streamID(i, side, 1), offset: off}, nil
}

func (p *publisher) tracks() []webrtc.TrackLocal { return []webrtc.TrackLocal{p.video, p.audio} }

// run sends until ctx ends, on a fixed schedule: a frame that is late goes
// out at once, and counts as behind if it is a frame interval late.
func (p *publisher) run(ctx context.Context) {
	inter, key := frameSizes()
	buf := make([]byte, vp8MaxPayload)
	abuf := make([]byte, audioPayload)
	start := time.Now().Add(p.offset)
	frameDur := time.Second / videoFPS
	var frame, aframe uint32
	var vseq, aseq uint16
	var vcount, acount uint32
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		nextV := start.Add(time.Duration(frame) * frameDur)
		nextA := start.Add(time.Duration(aframe) * audioFrame)
		next := nextV
		if nextA.Before(next) {
			next = nextA
		}
		if d := time.Until(next); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		// Everything before next is sent: a mark up to here is answered
		// before anything at next goes, and each turn sends only what is
		// scheduled at next, so a late publisher catching up passes marks
		// one by one.
		p.reached(next, vcount, acount)
		now := time.Now()
		if !nextA.After(next) {
			putStamp(abuf, stamp{stream: p.audioID, counter: acount, sent: time.Now()})
			_ = p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: aseq, Timestamp: aframe * 960}, Payload: abuf})
			aseq++
			acount++
			aframe++
		}
		if !nextV.After(next) {
			if now.Sub(nextV) > frameDur {
				p.behind.Add(1)
			}
			isKey := frame%keyframeEvery == 0 || p.wantKey.Swap(false)
			size := inter
			if isKey {
				size = key
			}
			for first := true; size > 0; first = false {
				h := vp8Head(buf, uint16(frame), first, isKey)
				n := min(size, vp8MaxPayload-h)
				n = max(n, stampLen)
				size -= n
				putStamp(buf[h:], stamp{stream: p.videoID, counter: vcount, sent: time.Now()})
				_ = p.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: vseq, Timestamp: frame * 3000, Marker: size <= 0}, Payload: buf[:h+n]})
				vseq++
				vcount++
			}
			frame++
		}
	}
}

// receiver tallies what subscribers get, by stream id.
type receiver struct {
	tallies map[uint32]*streamTally // fixed before any track is read
	packets atomic.Int64
	bad     atomic.Int64
	errMu   sync.Mutex
	err     error // the first bad packet's
	wg      sync.WaitGroup
}

func newReceiver(consults int) *receiver {
	r := &receiver{tallies: map[uint32]*streamTally{}}
	for i := range consults {
		for side := range 2 {
			for kind := range 2 {
				r.tallies[streamID(i, side, kind)] = &streamTally{}
			}
		}
	}
	return r
}

func (r *receiver) fail(err error) {
	r.bad.Add(1)
	r.errMu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.errMu.Unlock()
}

// start tallies tr's packets until it ends.
func (r *receiver) start(tr *webrtc.TrackRemote) {
	r.wg.Add(1)
	go r.read(tr)
}

func (r *receiver) read(tr *webrtc.TrackRemote) {
	defer r.wg.Done()
	video := strings.EqualFold(tr.Codec().MimeType, webrtc.MimeTypeVP8)
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		body := pkt.Payload
		if video {
			if body, err = vp8Body(body); err != nil {
				r.fail(err)
				continue
			}
		}
		s, err := parseStamp(body)
		if err != nil {
			r.fail(err)
			continue
		}
		t := r.tallies[s.stream]
		if t == nil {
			r.fail(fmt.Errorf("packet of unknown stream %d", s.stream))
			continue
		}
		if err := t.take(s.counter, now.Sub(s.sent)); err != nil {
			r.fail(err)
			continue
		}
		r.packets.Add(1)
	}
}

// flowing reports how many streams have delivered a packet.
func (r *receiver) flowing() int {
	n := 0
	for _, t := range r.tallies {
		t.mu.Lock()
		if t.any {
			n++
		}
		t.mu.Unlock()
	}
	return n
}

// awaitPast waits until each stream k has delivered a packet of counter
// hi[k] or later, streams in streamID order: what it sent before has
// arrived or is lost, bar retransmissions. A stream that delivers nothing
// new for stall (video the forwarder has paused) is waited for no longer:
// what it has not delivered is lost. It returns how many streams it gave
// up on.
func (r *receiver) awaitPast(ctx context.Context, hi []uint32, stall time.Duration) (int, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := make([]uint32, len(hi))
	moved := make([]time.Time, len(hi))
	start := time.Now()
	for k := range moved {
		moved[k] = start
	}
	for {
		now := time.Now()
		waiting, stalled := 0, 0
		for k, h := range hi {
			t := r.tallies[uint32(k)]
			t.mu.Lock()
			highest := t.highest
			t.mu.Unlock()
			if highest >= h {
				continue
			}
			if highest != last[k] {
				last[k], moved[k] = highest, now
			}
			if now.Sub(moved[k]) >= stall {
				stalled++
				continue
			}
			waiting++
		}
		if waiting == 0 {
			return stalled, nil
		}
		select {
		case <-ctx.Done():
			return stalled, context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// awaitFlowing waits until every stream has delivered a packet.
func (r *receiver) awaitFlowing(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for r.flowing() < len(r.tallies) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d streams flowing: %w", r.flowing(), len(r.tallies), context.Cause(ctx))
		case <-tick.C:
		}
	}
	return nil
}
