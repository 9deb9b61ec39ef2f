package media

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"
)

// wireSizes records the sizes of the UDP datagrams a virtual router
// carries from one address to another: RTP by sequence number, RTCP by
// the type and length of the first packet of the compound (SRTP and SRTCP
// leave those readable).
type wireSizes struct {
	mu   sync.Mutex
	rtp  map[uint16]int
	rtcp map[[2]int]int
}

func (w *wireSizes) note(b []byte) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if b[1] >= 192 && b[1] <= 223 {
		w.rtcp[[2]int{int(b[1]), int(binary.BigEndian.Uint16(b[2:]))}] = len(b)
		return
	}
	w.rtp[binary.BigEndian.Uint16(b[2:])] = len(b)
}

func (w *wireSizes) ofRTP(seq uint16) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rtp[seq]
}

func (w *wireSizes) ofRTCP(first rtcp.Packet) int {
	b, err := first.Marshal()
	if err != nil {
		panic(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rtcp[[2]int{int(b[1]), int(binary.BigEndian.Uint16(b[2:]))}]
}

// TestLargestDatagramIsForwardedIntact: an RTP packet in the largest
// datagram that reaches the SFU (maxDatagram, what Pion's ICE layer reads)
// is forwarded to the subscriber intact, and so is its retransmission,
// asked for in an RTCP compound packet of the same size. A browser keeps
// to about 1,200 bytes, but other senders do not: a Pion client's TWCC
// feedback covers every packet of 100 ms in one packet (3 KB at 25,000
// packets a second), and an exam camera may be set up with a larger
// packet size. With Pion's default 1,500-byte receive buffer all of these
// were dropped on arrival, logged only as "mux: failed to read from
// packetio.Buffer short buffer".
func TestLargestDatagramIsForwardedIntact(t *testing.T) {
	router, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "192.0.2.0/24", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	nets := map[string]*vnet.Net{}
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := router.AddNet(n); err != nil {
			t.Fatal(err)
		}
		nets[ip] = n
	}
	fromPub := &wireSizes{rtp: map[uint16]int{}, rtcp: map[[2]int]int{}}
	fromSub := &wireSizes{rtp: map[uint16]int{}, rtcp: map[[2]int]int{}}
	router.AddChunkFilter(func(c vnet.Chunk) bool {
		src, dst := c.SourceAddr().(*net.UDPAddr), c.DestinationAddr().(*net.UDPAddr)
		if c.Network() != "udp" || dst.IP.String() != "192.0.2.1" {
			return true
		}
		switch src.IP.String() {
		case "192.0.2.2":
			fromPub.note(c.UserData())
		case "192.0.2.3":
			fromSub.note(c.UserData())
		}
		return true
	})
	if err := router.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = router.Stop() })

	s, err := New(Config{Net: nets["192.0.2.1"]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	// The clients run no interceptors, so that their packets carry no
	// header extensions and their only RTCP is what the test writes; they
	// read datagrams as large as the SFU's, and take a retransmission of a
	// packet they already have (SRTP would drop it as a replay).
	client := func(ip string) *webrtc.PeerConnection {
		m := &webrtc.MediaEngine{}
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBNACK}}},
			PayloadType:        ptVP8,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			t.Fatal(err)
		}
		se := webrtc.SettingEngine{}
		se.SetNet(nets[ip])
		se.SetReceiveMTU(maxDatagram)
		se.DisableSRTPReplayProtection(true)
		pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{})).NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		return pc
	}
	pub, sub := client("192.0.2.2"), client("192.0.2.3")
	src, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.AddTrack(src); err != nil {
		t.Fatal(err)
	}
	got := make(chan *rtp.Packet, 256)
	tracks := make(chan *webrtc.TrackRemote, 1)
	sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		tracks <- tr
		buf := make([]byte, 2*maxDatagram)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			var p rtp.Packet
			if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err == nil {
				select {
				case got <- &p:
				default:
				}
			}
		}
	})
	joinClients(t, s, pub, sub)

	// Small keyframes until the subscriber has one (those sent before the
	// connections are up are lost).
	seq := uint16(0)
	send := func(p *rtp.Packet) {
		t.Helper()
		if err := src.WriteRTP(p); err != nil {
			t.Fatal(err)
		}
	}
	var small rtp.Packet
	var first *rtp.Packet
	for deadline := time.Now().Add(20 * time.Second); first == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the subscriber got no packet")
		}
		seq++
		if err := small.Unmarshal(vp8Packet(seq, uint32(seq)*3000, seq, uint8(seq), true, 's')); err != nil {
			t.Fatal(err)
		}
		send(&small)
		select {
		case first = <-got:
		case <-time.After(20 * time.Millisecond):
		}
	}
	track := <-tracks

	// The big packet fills the largest datagram, given what SRTP adds to
	// a packet on this connection.
	overhead := fromPub.ofRTP(seq) - small.MarshalSize()
	if overhead <= 0 {
		t.Fatalf("packet %d went out in %d bytes", seq, fromPub.ofRTP(seq))
	}
	var big rtp.Packet
	seq++
	if err := big.Unmarshal(vp8Packet(seq, uint32(seq)*3000, seq, uint8(seq), false, 'b')); err != nil {
		t.Fatal(err)
	}
	for i := len(big.Payload); len(big.Payload) < maxDatagram-overhead-big.Header.MarshalSize(); i++ {
		big.Payload = append(big.Payload, byte(i))
	}
	send(&big)
	received := func(what string) *rtp.Packet {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case p := <-got:
				if len(p.Payload) > len(small.Payload) {
					return p
				}
			case <-timeout:
				t.Fatalf("%s never reached the subscriber", what)
				return nil
			}
		}
	}
	p := received("the packet in the largest datagram")
	if n := fromPub.ofRTP(seq); n != maxDatagram {
		t.Fatalf("the packet arrived in a datagram of %d bytes, want %d", n, maxDatagram)
	}
	if !bytes.Equal(p.Payload, big.Payload) {
		t.Fatalf("the packet's payload arrived as %d bytes, not the %d sent", len(p.Payload), len(big.Payload))
	}

	// The subscriber asks for it again, at the end of an RTCP compound
	// that fills the largest datagram.
	rr := &rtcp.ReceiverReport{SSRC: 7}
	if err := sub.WriteRTCP([]rtcp.Packet{rr}); err != nil {
		t.Fatal(err)
	}
	var rtcpOverhead int
	for deadline := time.Now().Add(5 * time.Second); rtcpOverhead == 0; time.Sleep(10 * time.Millisecond) { // polling the router's record
		if time.Now().After(deadline) {
			t.Fatal("the receiver report never went out")
		}
		if n := fromSub.ofRTCP(rr); n > 0 {
			rtcpOverhead = n - rr.MarshalSize()
		}
	}
	nack := &rtcp.TransportLayerNack{SenderSSRC: 7, MediaSSRC: uint32(track.SSRC()), Nacks: []rtcp.NackPair{{PacketID: p.SequenceNumber}}}
	filler := &rtcp.ApplicationDefined{SSRC: 7, Name: "fill"}
	room := (maxDatagram - rtcpOverhead) &^ 3 // RTCP comes in 32-bit words
	filler.Data = make([]byte, room-rr.MarshalSize()-nack.MarshalSize()-filler.MarshalSize())
	compound := []rtcp.Packet{filler, rr, nack}
	if err := sub.WriteRTCP(compound); err != nil {
		t.Fatal(err)
	}
	re := received("the retransmission asked for in the largest RTCP datagram")
	if n := fromSub.ofRTCP(filler); n <= maxDatagram-4 || n > maxDatagram {
		t.Fatalf("the RTCP compound went out in %d bytes, want the largest that fits %d", n, maxDatagram)
	}
	if re.SequenceNumber != p.SequenceNumber || !bytes.Equal(re.Payload, big.Payload) {
		t.Fatalf("the retransmission came as packet %d of %d bytes, want %d of %d", re.SequenceNumber, len(re.Payload), p.SequenceNumber, len(big.Payload))
	}
}

// rtcpFeed is an rtcpSource that returns its packets, then fails.
type rtcpFeed struct{ pkts [][]byte }

func (f *rtcpFeed) Read(b []byte) (int, interceptor.Attributes, error) {
	if len(f.pkts) == 0 {
		return 0, nil, io.EOF
	}
	n := copy(b, f.pkts[0])
	f.pkts = f.pkts[1:]
	return n, nil, nil
}

// TestRTCPIsReadIntoOneBuffer: reading RTCP takes one buffer of
// maxDatagram bytes for good, not one per packet as the sender's ReadRTCP
// does (8 KB for each feedback packet, ten a second on every track); a
// packet that does not parse is skipped, and the next is read.
func TestRTCPIsReadIntoOneBuffer(t *testing.T) {
	pli, err := (&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	f := &rtcpFeed{pkts: [][]byte{{0x80, 200, 0xff, 0xff}}} // its length runs past its end
	for range n {
		f.pkts = append(f.pkts, pli)
	}
	got := 0
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	readRTCP(f, func(pkts []rtcp.Packet) { got += len(pkts) })
	runtime.ReadMemStats(&after)
	if got != n {
		t.Fatalf("%d packets handled, want %d", got, n)
	}
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per >= maxDatagram/2 {
		t.Fatalf("%d bytes allocated for each packet read", per)
	}
}
