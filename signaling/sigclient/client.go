package sigclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/wsconn"
)

// ErrClosed reports that the signaling connection has closed and no
// message is left to read.
var ErrClosed = errors.New("sigclient: connection closed")

// Options configure a Client. The zero value subscribes only.
type Options struct {
	// Header is sent with the upgrade request (a session cookie, say).
	Header http.Header
	// Tracks are published, on one publish connection, once admitted.
	Tracks []webrtc.TrackLocal
	// Encodings are further simulcast encodings of tracks in Tracks, by
	// track id (RTPSender.AddEncoding); such a track must have a rid.
	Encodings map[string][]webrtc.TrackLocal
	// Screen is the id of the track in Tracks that shares a screen; the
	// publish offer names its transceiver's mid so others see it as one.
	Screen string
	// API builds the peer connections; nil means NewAPI(true).
	API *webrtc.API
	// Dialer opens the WebSocket; nil means websocket.DefaultDialer.
	Dialer *websocket.Dialer
}

// NewAPI returns a Pion API with the default codecs and interceptors, using
// UDP over IPv4, and loopback candidates if loopback is set (a client on
// the server's machine).
func NewAPI(loopback bool) (*webrtc.API, error) {
	return newAPI(loopback, nil)
}

// NewAPIOn is NewAPI on the network n, such as a pion/transport virtual
// network shaped by a test.
func NewAPIOn(n transport.Net) (*webrtc.API, error) {
	return newAPI(false, n)
}

func newAPI(loopback bool, n transport.Net) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(loopback)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if n != nil {
		se.SetNet(n)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// link is the signaling state of one peer connection; guarded by Client.mu.
type link struct {
	target      string
	pc          *webrtc.PeerConnection
	remoteReady bool
	pending     []webrtc.ICECandidateInit // server candidates before the remote description
	sdpSent     bool
	held        []webrtc.ICECandidateInit // our candidates before our SDP went out
}

// maxResend bounds the client messages kept for resending after a resume.
const maxResend = 128

// Client is one call participant. Its methods are safe for concurrent use.
type Client struct {
	url       string
	dialer    *websocket.Dialer
	header    http.Header
	gone      chan struct{} // closed when the connection closed and no resume follows
	goneOnce  sync.Once
	api       *webrtc.API
	local     []webrtc.TrackLocal
	encodings map[string][]webrtc.TrackLocal
	screen    string // the id of the local track that shares a screen
	msgs      *queue[signaling.Message]
	tracks    *queue[*webrtc.TrackRemote]
	keyframes chan string

	mu         sync.Mutex
	pub, sub   *link
	published  bool
	err        error
	iceServers []webrtc.ICEServer // from the welcome

	// outMu guards the connection and the session's numbering.
	outMu    sync.Mutex
	conn     *wsconn.Conn
	dropping bool     // Drop closed conn on purpose; a resume follows
	token    string   // the resume token from welcome or resumed
	lastIn   uint64   // seq of the last server message received
	outSeq   uint64   // seq of the last message sent
	sent     [][]byte // the latest messages sent, the last one numbered outSeq
	dups     int      // server messages received twice
}

// Dial connects to the call signaling WebSocket at url (ws:// or wss://)
// and starts handling the protocol: publishing opts.Tracks when admitted,
// answering subscribe offers and trickling candidates. Close the client
// when done.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	api := opts.API
	if api == nil {
		var err error
		if api, err = NewAPI(true); err != nil {
			return nil, err
		}
	}
	d := opts.Dialer
	if d == nil {
		d = websocket.DefaultDialer
	}
	c := &Client{
		url: url, dialer: d, header: opts.Header, gone: make(chan struct{}),
		api: api, local: opts.Tracks, encodings: opts.Encodings, screen: opts.Screen,
		keyframes: make(chan string, 64),
		pub:       &link{target: signaling.TargetPublish},
		sub:       &link{target: signaling.TargetSubscribe},
	}
	c.msgs = newQueue[signaling.Message](c.gone, maxQueued)
	c.tracks = newQueue[*webrtc.TrackRemote](c.gone, maxQueued)
	conn, err := c.dial(ctx, url)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	go c.read(conn)
	return c, nil
}

func (c *Client) dial(ctx context.Context, url string) (*wsconn.Conn, error) {
	ws, resp, err := c.dialer.DialContext(ctx, url, c.header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", c.url, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", c.url, err)
	}
	return wsconn.New(ws, wsconn.Options{}), nil
}

// Send numbers m, keeps it for resending after a resume, and sends it to
// the server (an error means it waits for the resume).
func (c *Client) Send(m signaling.Message) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	m.Seq = c.outSeq + 1
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.Type, err)
	}
	c.outSeq++
	c.sent = append(c.sent, b)
	if len(c.sent) > maxResend {
		c.sent = c.sent[1:]
	}
	return c.conn.Send(b)
}

// SendRaw sends a text frame as is (for testing malformed input).
func (c *Client) SendRaw(data []byte) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.conn.Send(data)
}

// Next returns the next message from the server, candidates excepted (the
// client applies those itself). Messages the client acts on (welcome,
// admitted, offers and answers) are returned too, after being handled.
func (c *Client) Next(ctx context.Context) (signaling.Message, error) {
	return c.msgs.pop(ctx)
}

// Await returns the next message of type typ, dropping the others before it.
func (c *Client) Await(ctx context.Context, typ string) (signaling.Message, error) {
	for {
		m, err := c.Next(ctx)
		if err != nil {
			return m, fmt.Errorf("awaiting %s: %w", typ, err)
		}
		if m.Type == typ {
			return m, nil
		}
	}
}

// NextTrack returns the next track received on the subscribe connection.
// Read each track for as long as it is wanted, as a browser plays it: Pion
// counts a packet in the transport-cc feedback the server's congestion
// control relies on only once it is read, so packets left unread look
// lost, and the server pauses video.
func (c *Client) NextTrack(ctx context.Context) (*webrtc.TrackRemote, error) {
	return c.tracks.pop(ctx)
}

// KeyframeRequests receives the id of a published track each time the
// server asks for its keyframe (PLI or FIR); for a simulcast encoding, the
// id, a slash and the rid. Requests are dropped while 64
// are unread.
func (c *Client) KeyframeRequests() <-chan string { return c.keyframes }

// Subscriber returns the subscribe connection, nil before the first offer.
func (c *Client) Subscriber() *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sub.pc
}

// Publisher returns the publish connection, nil before admission.
func (c *Client) Publisher() *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pub.pc
}

// Err returns the first failure handling the protocol (an SDP the client
// could not apply, say), or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the signaling connection has closed, unless closed
// by Drop.
func (c *Client) Done() <-chan struct{} { return c.gone }

// Close closes the signaling connection (with a close frame, as a browser
// leaving the page does) and both peer connections.
func (c *Client) Close() error {
	c.outMu.Lock()
	conn := c.conn
	c.dropping = false
	c.outMu.Unlock()
	conn.CloseWith(websocket.CloseGoingAway, "")
	c.goneOnce.Do(func() { close(c.gone) })
	c.mu.Lock()
	pcs := []*webrtc.PeerConnection{c.pub.pc, c.sub.pc}
	c.mu.Unlock()
	var errs []error
	for _, pc := range pcs {
		if pc != nil {
			errs = append(errs, pc.Close())
		}
	}
	return errors.Join(errs...)
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// read is the one reader of the signaling connection conn.
func (c *Client) read(conn *wsconn.Conn) {
	for {
		_, data, err := conn.Read(context.Background())
		if err != nil {
			// Dropped on purpose, or already replaced by a resume (Drop's
			// close may reach this reader only after Resume has dialled):
			// the session goes on.
			c.outMu.Lock()
			dropped := c.dropping || c.conn != conn
			c.outMu.Unlock()
			if !dropped {
				c.goneOnce.Do(func() { close(c.gone) })
			}
			return
		}
		var m signaling.Message
		if err := json.Unmarshal(data, &m); err != nil {
			c.fail(fmt.Errorf("server message: %w", err))
			continue
		}
		if !c.sequence(conn, m) {
			continue
		}
		switch m.Type {
		case signaling.TypeResumeFailed:
			c.reset()
		case signaling.TypeWelcome:
			c.mu.Lock()
			c.iceServers = m.ICEServers
			c.mu.Unlock()
			if m.State == signaling.StateAdmitted {
				c.publish()
			}
		case signaling.TypeAdmitted:
			c.publish()
		case signaling.TypePublishAnswer:
			c.setRemote(c.pub, webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP})
		case signaling.TypeSubscribeOffer:
			c.answer(m.SDP)
		case signaling.TypeCandidate:
			if m.Candidate != nil {
				c.remoteCandidate(m.Target, *m.Candidate)
			}
			continue
		}
		if err := c.msgs.push(m); err != nil {
			c.overflow(err)
			return
		}
	}
}

// overflow ends a client whose caller stopped reading what it received:
// Err and Next report err (ErrSlow), and the connections close.
func (c *Client) overflow(err error) {
	c.fail(err)
	go c.Close()
}

func (c *Client) newPC(l *link) (*webrtc.PeerConnection, error) {
	c.mu.Lock()
	ice := c.iceServers
	c.mu.Unlock()
	// The servers the welcome named, as a browser uses them.
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{ICEServers: ice})
	if err != nil {
		return nil, fmt.Errorf("%s connection: %w", l.target, err)
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		c.mu.Lock()
		if !l.sdpSent {
			l.held = append(l.held, init)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		_ = c.Send(signaling.Message{Type: signaling.TypeCandidate, Target: l.target, Candidate: &init})
	})
	return pc, nil
}

// sdpSent sends the candidates held back until l's SDP went out.
func (c *Client) sdpSent(l *link) {
	c.mu.Lock()
	l.sdpSent = true
	held := l.held
	l.held = nil
	c.mu.Unlock()
	for _, init := range held {
		_ = c.Send(signaling.Message{Type: signaling.TypeCandidate, Target: l.target, Candidate: &init})
	}
}

// publish offers the local tracks on a new publish connection, once.
func (c *Client) publish() {
	c.mu.Lock()
	if c.published || len(c.local) == 0 {
		c.mu.Unlock()
		return
	}
	c.published = true
	c.mu.Unlock()
	pc, err := c.newPC(c.pub)
	if err != nil {
		c.fail(err)
		return
	}
	var screen *webrtc.RTPSender
	for _, tr := range c.local {
		sender, err := pc.AddTrack(tr)
		if tr.ID() == c.screen && c.screen != "" {
			screen = sender
		}
		if err != nil {
			c.fail(fmt.Errorf("publish %s: %w", tr.ID(), err))
			_ = pc.Close()
			return
		}
		for _, e := range c.encodings[tr.ID()] {
			if err := sender.AddEncoding(e); err != nil {
				c.fail(fmt.Errorf("publish %s encoding %s: %w", tr.ID(), e.RID(), err))
				_ = pc.Close()
				return
			}
		}
		if len(c.encodings[tr.ID()]) == 0 {
			go c.readRTCP(tr.ID(), sender)
		} else {
			for _, e := range append([]webrtc.TrackLocal{tr}, c.encodings[tr.ID()]...) {
				go c.readSimulcastRTCP(tr.ID()+"/"+e.RID(), e.RID(), sender)
			}
		}
	}
	c.mu.Lock()
	c.pub.pc = pc
	c.mu.Unlock()
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		c.fail(fmt.Errorf("publish offer: %w", err))
		return
	}
	m := signaling.Message{Type: signaling.TypePublishOffer, SDP: pc.LocalDescription().SDP}
	for _, tr := range pc.GetTransceivers() {
		if screen != nil && tr.Sender() == screen {
			m.Screen = tr.Mid()
		}
	}
	// Sent, or kept for resending after a resume.
	_ = c.Send(m)
	c.sdpSent(c.pub)
}

// readRTCP reads a publish sender's RTCP and reports keyframe requests.
func (c *Client) readRTCP(track string, sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				select {
				case c.keyframes <- track:
				default:
				}
			}
		}
	}
}

// readSimulcastRTCP reads one simulcast encoding's RTCP and reports its
// keyframe requests as track/rid.
func (c *Client) readSimulcastRTCP(name, rid string, sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadSimulcastRTCP(rid)
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				select {
				case c.keyframes <- name:
				default:
				}
			}
		}
	}
}

// answer applies a subscribe offer and answers it.
func (c *Client) answer(sdp string) {
	c.mu.Lock()
	pc := c.sub.pc
	c.mu.Unlock()
	if pc == nil {
		var err error
		if pc, err = c.newPC(c.sub); err != nil {
			c.fail(err)
			return
		}
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			if err := c.tracks.push(tr); err != nil {
				c.overflow(err)
			}
		})
		c.mu.Lock()
		c.sub.pc = pc
		c.mu.Unlock()
	}
	// The offer may restart ICE: the new generation's candidates wait
	// for the answer.
	c.holdCandidates(c.sub)
	if !c.setRemote(c.sub, webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}) {
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		c.fail(fmt.Errorf("subscribe answer: %w", err))
		return
	}
	// Sent, or kept for resending after a resume.
	_ = c.Send(signaling.Message{Type: signaling.TypeSubscribeAnswer, SDP: pc.LocalDescription().SDP})
	c.sdpSent(c.sub)
}

// setRemote applies a remote description, then the candidates that waited
// for it.
func (c *Client) setRemote(l *link, d webrtc.SessionDescription) bool {
	c.mu.Lock()
	pc := l.pc
	c.mu.Unlock()
	if pc == nil {
		c.fail(fmt.Errorf("%s %s without a connection", l.target, d.Type))
		return false
	}
	if err := pc.SetRemoteDescription(d); err != nil {
		c.fail(fmt.Errorf("%s remote description: %w", l.target, err))
		return false
	}
	c.mu.Lock()
	l.remoteReady = true
	pending := l.pending
	l.pending = nil
	c.mu.Unlock()
	for _, cand := range pending {
		_ = pc.AddICECandidate(cand)
	}
	return true
}

// remoteCandidate applies a server candidate, or holds it until its
// connection has a remote description.
func (c *Client) remoteCandidate(target string, cand webrtc.ICECandidateInit) {
	c.mu.Lock()
	var l *link
	switch target {
	case signaling.TargetPublish:
		l = c.pub
	case signaling.TargetSubscribe:
		l = c.sub
	default:
		c.mu.Unlock()
		c.fail(fmt.Errorf("candidate for unknown target %q", target))
		return
	}
	if !l.remoteReady {
		l.pending = append(l.pending, cand)
		c.mu.Unlock()
		return
	}
	pc := l.pc
	c.mu.Unlock()
	_ = pc.AddICECandidate(cand)
}
