package signaling_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/wsconn"
)

// The fuzz targets below send their input to a real Hub.Serve over a real
// WebSocket, so that what they test is the server's own path: wsconn's read
// limit, the text/binary check, the JSON decoding of Message and the
// dispatch and validation of client.handle, down to the SFU. Each input
// gets a fresh appointment: a physician (admitted on connect, in the media
// room) and a waiting patient. Seeds are in testdata/fuzz/<target>.

// maxFrame is the largest frame the server reads (wsconn's default, and
// docs/protocol.md's "Maximum message size 64 KiB").
const maxFrame = 64 << 10

// fuzzWait bounds every wait for the server.
const fuzzWait = 20 * time.Second

// rig is a hub behind a test upgrade handler that takes the Peer from the
// query string, as newTestServer does, but is built from a testing.F.
type rig struct {
	hub  *signaling.Hub
	srv  *httptest.Server
	appt atomic.Int64
	good string // a well-formed publish offer made by Pion

	mu     sync.Mutex
	served map[string]chan error // by appointment/participant
}

func newRig(f *testing.F) *rig {
	f.Helper()
	log := slog.New(slog.DiscardHandler)
	sfu, err := media.New(media.Config{AllowLoopback: true}, log)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(sfu.Close)
	r := &rig{hub: signaling.NewHub(sfu, log), served: make(map[string]chan error)}
	// A client's close frame can be lost when the server is writing as the
	// client goes; the rig checks that the hub lets go at once, so it keeps
	// nobody for a resume (resume_test.go covers that).
	r.hub.SetResumeGrace(0)
	up := &websocket.Upgrader{} // no Origin (a Go client) passes its check
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		appt, err := strconv.ParseInt(q.Get("appointment"), 10, 64)
		if err != nil {
			http.Error(w, "bad appointment", http.StatusBadRequest)
			return
		}
		ws, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		p := signaling.Peer{ID: q.Get("id"), Name: q.Get("name"), Role: q.Get("role"), Appointment: appt}
		err = r.hub.Serve(req.Context(), wsconn.New(ws, wsconn.Options{}), p)
		r.servedChan(appt, p.ID) <- err
	}))
	f.Cleanup(r.srv.Close)
	r.good = goodOffer(f)
	return r
}

func (r *rig) servedChan(appt int64, id string) chan error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := fmt.Sprint(appt, "/", id)
	c := r.served[k]
	if c == nil {
		c = make(chan error, 1)
		r.served[k] = c
	}
	return c
}

// awaitServed waits for the Serve call of a participant to return.
func (r *rig) awaitServed(t *testing.T, appt int64, id string) error {
	t.Helper()
	c := r.servedChan(appt, id)
	defer func() {
		r.mu.Lock()
		delete(r.served, fmt.Sprint(appt, "/", id))
		r.mu.Unlock()
	}()
	select {
	case err := <-c:
		return err
	case <-time.After(fuzzWait):
		t.Fatalf("Serve for %d/%s did not return", appt, id)
		return nil
	}
}

// goodOffer is a publish offer such as a client sends: one audio and one
// video track, made by Pion.
func goodOffer(f *testing.F) string {
	f.Helper()
	api, err := sigclient.NewAPI(true)
	if err != nil {
		f.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		f.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			f.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		f.Fatal(err)
	}
	return offer.SDP
}

// peer is the test side of one participant's WebSocket.
type peer struct {
	id, role string
	ws       *websocket.Conn
}

// dial connects a participant of appointment appt.
func (r *rig) dial(t *testing.T, appt int64, id, role string) *peer {
	t.Helper()
	q := url.Values{"id": {id}, "name": {id}, "role": {role}, "appointment": {strconv.FormatInt(appt, 10)}}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(r.srv.URL, "http")+"/?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &peer{id: id, role: role, ws: ws}
}

// next reads the peer's next message; closed is the close code if the
// server closed the connection instead (-1 for another read error).
func (p *peer) next(t *testing.T) (m signaling.Message, raw []byte, closed int) {
	t.Helper()
	_ = p.ws.SetReadDeadline(time.Now().Add(fuzzWait))
	kind, raw, err := p.ws.ReadMessage()
	if err != nil {
		if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
			return m, nil, ce.Code
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: no message from the server in %v", p.id, fuzzWait)
		}
		return m, nil, -1
	}
	if kind != websocket.TextMessage {
		t.Fatalf("%s: server sent a frame of kind %d", p.id, kind)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: server sent %q, not a Message: %v", p.id, raw, err)
	}
	if !serverTypes[m.Type] {
		t.Fatalf("%s: server sent type %q: %s", p.id, m.Type, raw)
	}
	return m, raw, 0
}

// expect reads the peer's next message, which must be of type typ.
func (p *peer) expect(t *testing.T, typ string) signaling.Message {
	t.Helper()
	m, raw, closed := p.next(t)
	if closed != 0 || m.Type != typ {
		t.Fatalf("%s: got %s (closed %d), want %s", p.id, raw, closed, typ)
	}
	return m
}

// expectLobby reads the physician's next message, a lobby listing ids.
func (p *peer) expectLobby(t *testing.T, ids ...string) {
	t.Helper()
	m := p.expect(t, signaling.TypeLobby)
	if m.Waiting == nil || len(*m.Waiting) != len(ids) {
		t.Fatalf("%s: lobby %+v, want %v", p.id, m.Waiting, ids)
	}
	for i, w := range *m.Waiting {
		if w.Participant != ids[i] {
			t.Fatalf("%s: lobby %+v, want %v", p.id, *m.Waiting, ids)
		}
	}
}

// leave closes the peer's side as a browser leaving does.
func (p *peer) leave() {
	_ = p.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
	_ = p.ws.Close()
}

var serverTypes = map[string]bool{
	signaling.TypeWelcome: true, signaling.TypeLobby: true, signaling.TypeAdmitted: true,
	signaling.TypePublishAnswer: true, signaling.TypeSubscribeOffer: true, signaling.TypeCandidate: true,
	signaling.TypePeerLeft: true, signaling.TypeError: true,
}

// outcome is how the server answered one frame.
type outcome struct {
	errors  []string            // error replies, in order
	others  []signaling.Message // other replies (lobby, publish-answer, ...)
	closed  int                 // the close code if the server closed the connection
	refused bool                // at least one error reply
}

func (o outcome) String() string {
	b, _ := json.Marshal(o.others)
	return fmt.Sprintf("errors %q, others %s, closed %d", o.errors, b, o.closed)
}

// send writes frame to the server, then a marker frame that the server
// refuses as an unknown type, and collects the replies that come before
// the marker's: the server handles a connection's frames in order and
// answers through one queue, so those are its whole synchronous answer to
// frame. Server candidates are dropped (they trickle at any time).
func (p *peer) send(t *testing.T, kind int, frame []byte, nonce int64) outcome {
	t.Helper()
	marker := fmt.Sprintf("fuzz-marker-%d-%d", nonce, time.Now().UnixNano())
	var o outcome
	_ = p.ws.SetWriteDeadline(time.Now().Add(fuzzWait))
	if err := p.ws.WriteMessage(kind, frame); err == nil {
		_ = p.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"`+marker+`"}`))
	}
	want := fmt.Sprintf("unknown message type %q", marker)
	for {
		m, _, closed := p.next(t)
		if closed != 0 {
			o.closed = closed
			return o
		}
		switch {
		case m.Type == signaling.TypeError && m.Error == want:
			o.refused = len(o.errors) > 0
			return o
		case m.Type == signaling.TypeError:
			o.errors = append(o.errors, m.Error)
		case m.Type == signaling.TypeCandidate:
		default:
			o.others = append(o.others, m)
		}
	}
}

// visit is one appointment's physician and waiting patient, connected.
type visit struct {
	appt      int64
	phys, pat *peer
}

func (r *rig) start(t *testing.T) *visit {
	t.Helper()
	v := &visit{appt: r.appt.Add(1)}
	v.phys = r.dial(t, v.appt, "doc", signaling.RolePhysician)
	if w := v.phys.expect(t, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome %+v", w)
	}
	v.phys.expectLobby(t)
	v.pat = r.dial(t, v.appt, "pat", signaling.RolePatient)
	if w := v.pat.expect(t, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("patient welcome %+v", w)
	}
	v.phys.expectLobby(t, "pat")
	return v
}

// end closes both connections and waits until the hub has let go of them.
func (r *rig) end(t *testing.T, v *visit) {
	t.Helper()
	for _, p := range []*peer{v.phys, v.pat} {
		p.leave()
		if err := r.awaitServed(t, v.appt, p.id); err != nil && !errors.Is(err, signaling.ErrReplaced) && !strings.Contains(err.Error(), "call connection") {
			t.Errorf("Serve for %s: %v", p.id, err)
		}
	}
	if w, c := r.hub.Waiting(v.appt), r.hub.InCall(v.appt); len(w)+len(c) != 0 {
		t.Fatalf("after both left, waiting %v and in call %v", w, c)
	}
}

// clientTypes are the types a client may send (docs/protocol.md).
var clientTypes = map[string]bool{
	signaling.TypeAdmit: true, signaling.TypePublishOffer: true, signaling.TypeSubscribeAnswer: true,
	signaling.TypeCandidate: true, signaling.TypeLeave: true, signaling.TypeTile: true,
	signaling.TypeICERestart: true,
}

// FuzzDecodeMessage sends one frame, text or binary, to the physician's or
// the waiting patient's connection. The server must not panic or hang; it
// must answer a refused frame with exactly one error and keep the
// connection open; close only after leave (1000) or a frame over 64 KiB
// (1009); and accept only messages of a client type whose required fields
// are there, from a participant allowed to send them. A message that
// decodes must read the same after being encoded and decoded again.
func FuzzDecodeMessage(f *testing.F) {
	r := newRig(f)
	offer, _ := json.Marshal(signaling.Message{Type: signaling.TypePublishOffer, SDP: r.good})
	f.Add(offer, true, false)
	f.Add(offer, false, false)
	big := []byte(`{"type":"admit","participant":"` + strings.Repeat("x", maxFrame) + `"}`)
	f.Add(big, true, false)
	f.Add(big[:maxFrame], true, false)
	f.Fuzz(func(t *testing.T, frame []byte, toPhysician, binary bool) {
		v := r.start(t)
		defer r.end(t, v)
		from, kind := v.pat, websocket.TextMessage
		if toPhysician {
			from = v.phys
		}
		if binary {
			kind = websocket.BinaryMessage
		}
		o := from.send(t, kind, frame, v.appt)

		if len(frame) > maxFrame {
			if o.closed != websocket.CloseMessageTooBig || len(o.errors)+len(o.others) != 0 {
				t.Fatalf("frame of %d bytes: %v, want close %d and nothing else", len(frame), o, websocket.CloseMessageTooBig)
			}
			return
		}
		var m signaling.Message
		decErr := json.Unmarshal(frame, &m)
		if decErr == nil {
			roundTrip(t, m)
		}
		if o.closed != 0 {
			if binary || decErr != nil || m.Type != signaling.TypeLeave || o.closed != websocket.CloseNormalClosure || o.refused {
				t.Fatalf("%q closed the connection: %v", frame, o)
			}
			return
		}
		if decErr == nil && m.Type == signaling.TypeLeave && !binary {
			t.Fatalf("leave did not close the connection: %v", o)
		}
		if o.refused {
			if len(o.errors) != 1 || o.errors[0] == "" {
				t.Fatalf("%q refused with %v, want one error with a text", frame, o)
			}
			return
		}
		// Accepted: it must have been a well-formed client message.
		if binary || decErr != nil {
			t.Fatalf("accepted %q (binary %v, decoding: %v): %v", frame, binary, decErr, o)
		}
		if !clientTypes[m.Type] {
			t.Fatalf("accepted type %q: %v", m.Type, o)
		}
		checkAccepted(t, r, v, from, m, o)
	})
}

// checkAccepted checks what the server did with a message it accepted.
func checkAccepted(t *testing.T, r *rig, v *visit, from *peer, m signaling.Message, o outcome) {
	t.Helper()
	switch m.Type {
	case signaling.TypeAdmit:
		if from.role != signaling.RolePhysician || (m.Participant != "pat" && m.Participant != "doc") {
			t.Fatalf("%s admitted %q: %v", from.id, m.Participant, o)
		}
		if m.Participant == "pat" {
			v.pat.expect(t, signaling.TypeAdmitted)
			if len(o.others) != 1 || o.others[0].Type != signaling.TypeLobby || o.others[0].Waiting == nil || len(*o.others[0].Waiting) != 0 {
				t.Fatalf("physician after admitting: %v, want an empty lobby", o)
			}
		}
		if in := peerIDs(r.hub.InCall(v.appt)); in != "doc" && in != "doc,pat" {
			t.Fatalf("in call after admit: %s", in)
		}
	case signaling.TypePublishOffer:
		if from.role != signaling.RolePhysician || m.SDP == "" {
			t.Fatalf("%s's publish offer %q accepted: %v", from.id, m.SDP, o)
		}
		checkAnswer(t, m.SDP, o)
	case signaling.TypeSubscribeAnswer:
		t.Fatalf("%s's subscribe answer accepted with no offer outstanding: %v", from.id, o)
	case signaling.TypeICERestart:
		// Nothing to restart before a subscribe offer: accepted, no reply.
		if from.role != signaling.RolePhysician {
			t.Fatalf("%s's ice-restart accepted before admission: %v", from.id, o)
		}
	case signaling.TypeTile:
		t.Fatalf("%s's tile for %q accepted with no track received: %v", from.id, m.Track, o)
	case signaling.TypeCandidate:
		if m.Candidate == nil {
			break // the end of the client's gathering
		}
		if from.role != signaling.RolePhysician || (m.Target != signaling.TargetPublish && m.Target != signaling.TargetSubscribe) {
			t.Fatalf("%s's candidate for %q accepted: %v", from.id, m.Target, o)
		}
	}
	if (m.Type == signaling.TypeAdmit && m.Participant == "doc" || m.Type != signaling.TypeAdmit && m.Type != signaling.TypePublishOffer) && len(o.others) != 0 {
		t.Fatalf("%s answered with %v", m.Type, o)
	}
}

// checkAnswer checks the server's answer to an offer it accepted: one
// publish-answer whose SDP parses and answers each media section.
func checkAnswer(t *testing.T, offer string, o outcome) {
	t.Helper()
	if len(o.others) != 1 || o.others[0].Type != signaling.TypePublishAnswer {
		t.Fatalf("accepted offer answered with %v, want one publish-answer", o)
	}
	off, err := (&webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}).Unmarshal()
	if err != nil {
		t.Fatalf("accepted an offer that does not parse: %v", err)
	}
	ans, err := (&webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: o.others[0].SDP}).Unmarshal()
	if err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, o.others[0].SDP)
	}
	if len(ans.MediaDescriptions) != len(off.MediaDescriptions) {
		t.Fatalf("answer has %d media sections, the offer %d", len(ans.MediaDescriptions), len(off.MediaDescriptions))
	}
}

// roundTrip checks that m reads the same after being written out again.
func roundTrip(t *testing.T, m signaling.Message) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encode %+v: %v", m, err)
	}
	var again signaling.Message
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatalf("%s does not decode: %v", b, err)
	}
	if !reflect.DeepEqual(again, m) {
		t.Fatalf("round trip changed the message:\n%#v\n%#v\nvia %s", m, again, b)
	}
}

// FuzzSDP sends the physician's publish-offer with arbitrary SDP: the text
// goes to the server's own SDP path (media.Participant.Publish, Pion's
// SetRemoteDescription). The server must not panic or hang; it must either
// answer with a publish-answer that parses and has the offer's media
// sections, or refuse with one "publish-offer refused" error; and after a
// refusal a well-formed offer must still be answered (on a fresh publish
// connection if the error said the old one was reset).
func FuzzSDP(f *testing.F) {
	r := newRig(f)
	f.Add(r.good)
	f.Fuzz(func(t *testing.T, sdp string) {
		v := r.start(t)
		defer r.end(t, v)
		frame, err := json.Marshal(signaling.Message{Type: signaling.TypePublishOffer, SDP: sdp})
		if err != nil {
			t.Fatal(err)
		}
		o := v.phys.send(t, websocket.TextMessage, frame, v.appt)
		if len(frame) > maxFrame {
			if o.closed != websocket.CloseMessageTooBig {
				t.Fatalf("frame of %d bytes: %v, want close %d", len(frame), o, websocket.CloseMessageTooBig)
			}
			return
		}
		if o.closed != 0 {
			t.Fatalf("the offer closed the connection: %v", o)
		}
		if !o.refused {
			checkAnswer(t, sdp, o)
			return
		}
		if len(o.errors) != 1 || !strings.HasPrefix(o.errors[0], "publish-offer refused: ") || len(o.others) != 0 {
			t.Fatalf("refused with %v, want one publish-offer refused error", o)
		}
		// A client that is refused offers again: on a new connection if
		// the error says the old one was reset, else on the same one.
		good, _ := json.Marshal(signaling.Message{Type: signaling.TypePublishOffer, SDP: r.good})
		again := v.phys.send(t, websocket.TextMessage, good, v.appt)
		if stuckAfterAnswerFailure(o, again) {
			// Known defect, see stuckAfterAnswerFailure: the client
			// recovers with one more offer, on a new connection.
			again = v.phys.send(t, websocket.TextMessage, good, v.appt)
		}
		if again.refused || again.closed != 0 {
			t.Fatalf("after %q was refused with %v, a good offer got %v", trim(sdp), o, again)
		}
		checkAnswer(t, r.good, again)
	})
}

// stuckAfterAnswerFailure reports the one way a refused offer is known to
// break the next one. Pion can accept an offer (SetRemoteDescription
// succeeds) that it then cannot answer (CreateAnswer fails, e.g. two media
// sections with the same mid). media.Participant.Publish then refuses it
// with "publish answer: ..." but keeps the publish connection, which stays
// in have-remote-offer; the client's next offer is refused in turn, this
// time saying the connection was reset, and only the one after is
// answered. Remove this allowance once Publish drops the connection (or
// rolls back) when the answer fails.
func stuckAfterAnswerFailure(first, next outcome) bool {
	return len(first.errors) == 1 && strings.HasPrefix(first.errors[0], "publish-offer refused: publish answer: ") &&
		len(next.errors) == 1 && strings.Contains(next.errors[0], "the publish connection was reset") &&
		strings.Contains(next.errors[0], "have-remote-offer->SetRemote(offer)")
}

// trim shortens s for a failure message.
func trim(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
