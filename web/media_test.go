package web

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
)

// callClient is a Go participant speaking the call protocol with two Pion
// peer connections, as a browser does.
type callClient struct {
	t   *testing.T
	api *webrtc.API
	ws  *websocket.Conn
	wmu sync.Mutex

	msgs   chan signaling.Message // everything but candidates and offers
	tracks chan *webrtc.TrackRemote
	plis   chan struct{}

	mu       sync.Mutex
	pub, sub *webrtc.PeerConnection
	pending  map[string][]webrtc.ICECandidateInit
	local    []*webrtc.TrackLocalStaticRTP
}

func newCallClient(t *testing.T, url string, h http.Header, local ...*webrtc.TrackLocalStaticRTP) *callClient {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial call: %v (%d)", err, status)
	}
	c := &callClient{t: t, ws: ws, local: local,
		api:  webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)),
		msgs: make(chan signaling.Message, 64), tracks: make(chan *webrtc.TrackRemote, 8), plis: make(chan struct{}, 64),
		pending: map[string][]webrtc.ICECandidateInit{}}
	t.Cleanup(c.close)
	go c.read()
	return c
}

func (c *callClient) close() {
	c.ws.Close()
	c.mu.Lock()
	pub, sub := c.pub, c.sub
	c.mu.Unlock()
	for _, pc := range []*webrtc.PeerConnection{pub, sub} {
		if pc != nil {
			pc.Close()
		}
	}
}

func (c *callClient) send(m signaling.Message) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.WriteJSON(m)
}

func (c *callClient) read() {
	for {
		var m signaling.Message
		if err := c.ws.ReadJSON(&m); err != nil {
			close(c.msgs)
			return
		}
		switch m.Type {
		case signaling.TypeWelcome:
			if m.State == signaling.StateAdmitted {
				c.publish()
			}
		case signaling.TypeAdmitted:
			c.publish()
		case signaling.TypePublishAnswer:
			c.setRemote("publish", webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP})
		case signaling.TypeSubscribeOffer:
			c.answerSubscribe(m.SDP)
		case signaling.TypeCandidate:
			c.addCandidate(m.Target, *m.Candidate)
			continue
		}
		c.msgs <- m
	}
}

func (c *callClient) newPC(target string) *webrtc.PeerConnection {
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		c.t.Error(err)
		return nil
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			init := cand.ToJSON()
			c.send(signaling.Message{Type: signaling.TypeCandidate, Target: target, Candidate: &init})
		}
	})
	return pc
}

func (c *callClient) publish() {
	if len(c.local) == 0 {
		return
	}
	pc := c.newPC("publish")
	for _, tr := range c.local {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			c.t.Error(err)
			return
		}
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					if _, ok := p.(*rtcp.PictureLossIndication); ok {
						select {
						case c.plis <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	c.mu.Lock()
	c.pub = pc
	c.mu.Unlock()
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		c.t.Error(err)
		return
	}
	c.send(signaling.Message{Type: signaling.TypePublishOffer, SDP: pc.LocalDescription().SDP})
}

func (c *callClient) answerSubscribe(sdp string) {
	c.mu.Lock()
	if c.sub == nil {
		c.sub = c.newPC("subscribe")
		c.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { c.tracks <- tr })
	}
	pc := c.sub
	c.mu.Unlock()
	c.setRemote("subscribe", webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		c.t.Error(err)
		return
	}
	c.send(signaling.Message{Type: signaling.TypeSubscribeAnswer, SDP: pc.LocalDescription().SDP})
}

func (c *callClient) pc(target string) *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	if target == "publish" {
		return c.pub
	}
	return c.sub
}

func (c *callClient) setRemote(target string, d webrtc.SessionDescription) {
	pc := c.pc(target)
	if err := pc.SetRemoteDescription(d); err != nil {
		c.t.Errorf("%s remote description: %v", target, err)
		return
	}
	c.mu.Lock()
	pending := c.pending[target]
	delete(c.pending, target)
	c.mu.Unlock()
	for _, cand := range pending {
		_ = pc.AddICECandidate(cand)
	}
}

func (c *callClient) addCandidate(target string, cand webrtc.ICECandidateInit) {
	pc := c.pc(target)
	if pc == nil || pc.RemoteDescription() == nil {
		c.mu.Lock()
		c.pending[target] = append(c.pending[target], cand)
		c.mu.Unlock()
		return
	}
	_ = pc.AddICECandidate(cand)
}

// await returns the next message of the given type.
func (c *callClient) await(typ string) signaling.Message {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("connection closed while waiting for %s", typ)
			}
			if m.Type == typ {
				return m
			}
		case <-timeout:
			c.t.Fatalf("no %s within 10s", typ)
		}
	}
}

// payload is the bytes of packet n of a stream: its counter, then a pattern.
func payload(n uint32, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, n)
	for i := 4; i < size; i++ {
		b[i] = byte(n) ^ byte(i)
	}
	return b
}

func TestCallForwardsMediaThroughTheSFU(t *testing.T) {
	f := newFixture(t)
	url := f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID))
	doctor := newCallClient(t, url, f.cookieHeader(f.signIn(t, "doc@example.org")))
	if w := doctor.await(signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome state %q, want admitted", w.State)
	}

	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "patient")
	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "patient")
	patient := newCallClient(t, url, f.cookieHeader(f.joinClient(t, f.visit)), video, audio)
	if w := patient.await(signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("patient welcome state %q, want waiting", w.State)
	}
	wantID := fmt.Sprintf("u%d", f.pat.ID)
	for {
		l := doctor.await(signaling.TypeLobby)
		if l.Waiting != nil && len(*l.Waiting) == 1 && (*l.Waiting)[0].Participant == wantID {
			break
		}
	}
	doctor.send(signaling.Message{Type: signaling.TypeAdmit, Participant: wantID})
	patient.await(signaling.TypeAdmitted)

	// The patient streams numbered packets until the test ends.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true}, Payload: payload(n, 900)})
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 240}, Payload: payload(n, 80)})
		}
	}()

	got := map[string]*webrtc.TrackRemote{}
	for len(got) < 2 {
		select {
		case tr := <-doctor.tracks:
			got[tr.Kind().String()] = tr
		case <-time.After(15 * time.Second):
			t.Fatalf("physician received %d of 2 tracks", len(got))
		}
	}
	if mt := got["video"].Codec().MimeType; mt != webrtc.MimeTypeVP8 {
		t.Fatalf("video codec %s, want VP8", mt)
	}
	if mt := got["audio"].Codec().MimeType; mt != webrtc.MimeTypeOpus {
		t.Fatalf("audio codec %s, want Opus", mt)
	}
	for kind, size := range map[string]int{"video": 900, "audio": 80} {
		tr := got[kind]
		var prev uint32
		for i := 0; i < 150; i++ {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				t.Fatalf("%s read: %v", kind, err)
			}
			n := binary.BigEndian.Uint32(pkt.Payload)
			if i > 0 && n != prev+1 {
				t.Fatalf("%s packet %d carries counter %d after %d: lost or reordered", kind, i, n, prev)
			}
			if string(pkt.Payload) != string(payload(n, size)) {
				t.Fatalf("%s packet %d payload altered", kind, n)
			}
			prev = n
		}
	}
	// The SFU asked the publisher for a keyframe when the physician subscribed.
	select {
	case <-patient.plis:
	case <-time.After(5 * time.Second):
		t.Fatal("the publisher got no keyframe request")
	}

	// When the patient leaves, the physician hears of it and is re-offered
	// a subscription without the patient's tracks.
	patient.send(signaling.Message{Type: signaling.TypeLeave})
	if m := doctor.await(signaling.TypePeerLeft); m.Participant != wantID {
		t.Fatalf("peer-left for %q, want %q", m.Participant, wantID)
	}
	if m := doctor.await(signaling.TypeSubscribeOffer); len(m.Tracks) != 0 {
		t.Fatalf("after the patient left, the offer still carries %d tracks", len(m.Tracks))
	}
}

func TestCallBadMessagesGetErrors(t *testing.T) {
	f := newFixture(t)
	c := newCallClient(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	c.await(signaling.TypeWelcome)
	c.wmu.Lock()
	_ = c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":`))
	c.wmu.Unlock()
	if m := c.await(signaling.TypeError); m.Error == "" {
		t.Fatal("malformed JSON: empty error")
	}
	c.send(signaling.Message{Type: signaling.TypePublishOffer, SDP: "v=0 this is not SDP"})
	if m := c.await(signaling.TypeError); m.Error == "" {
		t.Fatal("bad SDP: empty error")
	}
	c.send(signaling.Message{Type: "dance"})
	m := c.await(signaling.TypeError)
	b, _ := json.Marshal(m)
	if len(m.Error) == 0 {
		t.Fatalf("unknown type: %s", b)
	}
	// The connection still answers: admitting someone not waiting is refused.
	c.send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u999"})
	if m := c.await(signaling.TypeError); m.Error == "" {
		t.Fatal("admitting nobody: empty error")
	}
}
