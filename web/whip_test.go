package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/store"
)

// apiToken stores a live API token for a user and returns it.
func (f *fixture) apiToken(t *testing.T, userID int64) string {
	t.Helper()
	tok, hash := auth.NewToken()
	if _, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: userID,
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// streamRequest sends a WHIP or WHEP request and returns the response with
// its body read.
func (f *fixture) streamRequest(t *testing.T, method, path, token, contentType, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// whipClient is a standard WHIP or WHEP client: one peer connection
// negotiated by one POST, without trickle.
type whipClient struct {
	pc       *webrtc.PeerConnection
	location string
}

// negotiate offers pc's transceivers to path and applies the answer. It
// fails the test unless the server answers 201 with SDP and a Location.
func (f *fixture) negotiate(t *testing.T, path, token string, pc *webrtc.PeerConnection) *whipClient {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	resp, answer := f.streamRequest(t, http.MethodPost, path, token, "application/sdp", pc.LocalDescription().SDP)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, answer)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		t.Fatalf("POST %s: Content-Type %q, want application/sdp", path, ct)
	}
	loc := resp.Header.Get("Location")
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `/[0-9a-f]{32}$`).MatchString(loc) {
		t.Fatalf("POST %s: Location %q, want %s/<session>", path, loc, path)
	}
	if !strings.Contains(answer, "a=candidate:") {
		t.Fatalf("POST %s: the answer lists no candidates (WHIP does not trickle here):\n%s", path, answer)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	return &whipClient{pc: pc, location: loc}
}

// newClientPC is a Pion peer connection on loopback, closed with the test.
func newClientPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	api, err := sigclient.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// publishWHIP publishes numbered VP8 frames (every 30th a keyframe) by
// WHIP into the visit until the test ends, as an exam camera would.
func (f *fixture) publishWHIP(t *testing.T, visit int64, token string) *whipClient {
	t.Helper()
	pc := newClientPC(t)
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "otoscope", "camera")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	c := f.negotiate(t, fmt.Sprintf("/whip/%d", visit), token, pc)
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-t.Context().Done():
				return
			case <-tick.C:
			}
			if pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
				return
			}
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true},
				Payload: sigclient.VP8Payload(n, 'f', n%30 == 0, 700)})
		}
	}()
	return c
}

// readFrames reads n packets of the exam camera's video from tr and checks
// that the first is a keyframe and none is missing or altered.
func readFrames(t *testing.T, who string, tr *webrtc.TrackRemote, n int) {
	t.Helper()
	var prev uint32
	for i := range n {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			t.Fatalf("%s: read: %v", who, err)
		}
		got, _, key, err := sigclient.ParseVP8Payload(pkt.Payload)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if i == 0 && !key {
			t.Fatalf("%s: the first frame %d is not a keyframe", who, got)
		}
		if i > 0 && got != prev+1 {
			t.Fatalf("%s: frame %d after %d: lost or reordered", who, got, prev)
		}
		prev = got
	}
}

// TestWHIPPublishesIntoTheCallAndWHEPPlaysItBack: an exam camera published
// by WHIP reaches the physician in the call (as a named extra participant)
// and a WHEP viewer, frame by frame; DELETE ends each session for good.
func TestWHIPPublishesIntoTheCallAndWHEPPlaysItBack(t *testing.T) {
	f := newFixture(t)
	doctor := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	if w := await(t, doctor, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("physician welcome state %q", w.State)
	}
	docToken := f.apiToken(t, f.doc.ID)
	camera := f.publishWHIP(t, f.visit.ID, docToken)

	// The call is offered the camera as its own participant, by name.
	var cameraID string
	for cameraID == "" {
		m := await(t, doctor, signaling.TypeSubscribeOffer)
		for _, tr := range m.Tracks {
			if tr.Name == signaling.ExamCameraName && tr.Kind == "video" && strings.HasPrefix(tr.Participant, "whip-") {
				cameraID = tr.Participant
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	tr, err := doctor.NextTrack(ctx)
	if err != nil {
		t.Fatalf("the physician received no track: %v", err)
	}
	if tr.StreamID() != cameraID {
		t.Fatalf("the physician's track belongs to %q, want the camera %q", tr.StreamID(), cameraID)
	}
	readFrames(t, "physician", tr, 100)

	// A WHEP viewer (the patient's token, once admitted to the call)
	// plays the same camera back.
	patient := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.joinClient(t, f.visit)))
	await(t, patient, signaling.TypeWelcome)
	if err := doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: fmt.Sprintf("u%d", f.pat.ID)}); err != nil {
		t.Fatal(err)
	}
	await(t, patient, signaling.TypeAdmitted)
	patToken := f.apiToken(t, f.pat.ID)
	viewer := newClientPC(t)
	if _, err := viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	tracks := make(chan *webrtc.TrackRemote, 1)
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { tracks <- tr })
	watch := f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), patToken, viewer)
	select {
	case tr := <-tracks:
		readFrames(t, "WHEP viewer", tr, 100)
	case <-ctx.Done():
		t.Fatal("the WHEP viewer received no track")
	}

	// Only whoever opened a session may end it, and only by its own URL.
	for _, c := range []struct{ path, token string }{
		{camera.location, patToken},                                         // someone else's session
		{strings.Replace(camera.location, "/whip/", "/whep/", 1), docToken}, // the wrong kind
		{fmt.Sprintf("/whip/%d/%032x", f.visit.ID, 7), docToken},            // a made-up one
	} {
		if resp, body := f.streamRequest(t, http.MethodDelete, c.path, c.token, "", ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("DELETE %s: %d %s, want 404", c.path, resp.StatusCode, body)
		}
	}
	if resp, body := f.streamRequest(t, http.MethodPatch, camera.location, docToken, "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PATCH (trickle): %d %s, want 405", resp.StatusCode, body)
	}

	// DELETE ends the camera: the call hears it left and is re-offered
	// without its track; the camera's own connection ends too.
	if resp, body := f.streamRequest(t, http.MethodDelete, camera.location, docToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s", camera.location, resp.StatusCode, body)
	}
	if m := await(t, doctor, signaling.TypePeerLeft); m.Participant != cameraID {
		t.Fatalf("peer-left for %q, want %q", m.Participant, cameraID)
	}
	if m := await(t, doctor, signaling.TypeSubscribeOffer); len(m.Tracks) != 0 {
		t.Fatalf("after DELETE the call is still offered %d tracks", len(m.Tracks))
	}
	waitEnded(t, "the WHIP client", camera.pc)
	if resp, _ := f.streamRequest(t, http.MethodDelete, camera.location, docToken, "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a second DELETE: %d, want 404", resp.StatusCode)
	}
	if resp, body := f.streamRequest(t, http.MethodDelete, watch.location, patToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s", watch.location, resp.StatusCode, body)
	}
	waitEnded(t, "the WHEP client", viewer)
}

// waitEnded waits until the server's end of pc's session shows on pc.
func waitEnded(t *testing.T, who string, pc *webrtc.PeerConnection) {
	t.Helper()
	ended := make(chan struct{})
	var once bool
	check := func(s webrtc.PeerConnectionState) {
		if !once && (s == webrtc.PeerConnectionStateDisconnected || s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed) {
			once = true
			close(ended)
		}
	}
	states := make(chan webrtc.PeerConnectionState, 8)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { states <- s })
	states <- pc.ConnectionState()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-states:
			check(s)
		case <-ended:
			return
		case <-deadline:
			t.Fatalf("%s is still %s after the session was deleted", who, pc.ConnectionState())
		}
	}
}

// TestWHIPRefusesBadRequests: wrong media type, bad SDP, a session cookie
// instead of a token, a cancelled visit and a full visit each get their
// own clear answer, and a full visit still lets the physician in.
func TestWHIPRefusesBadRequests(t *testing.T) {
	var hub *signaling.Hub
	f := newFixtureWith(t, func(d *Deps) {
		hub = d.Calls.(*signaling.Hub)
		hub.SetLimits(signaling.Limits{PerVisit: 3}, nil)
	})
	tok := f.apiToken(t, f.doc.ID)
	path := fmt.Sprintf("/whip/%d", f.visit.ID)
	offer := func() string {
		pc := newClientPC(t)
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
		o, err := pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		return o.SDP
	}()
	for _, c := range []struct {
		name, path, token, ctype, body string
		want                           int
		says                           string
	}{
		{"form body", path, tok, "application/x-www-form-urlencoded", "a=1", http.StatusUnsupportedMediaType, "application/sdp"},
		{"no content type", path, tok, "", offer, http.StatusUnsupportedMediaType, "application/sdp"},
		{"not SDP", path, tok, "application/sdp", "hello", http.StatusBadRequest, "not valid SDP"},
		{"no media", path, tok, "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", http.StatusBadRequest, "no audio or video"},
		{"H.264 without packetization mode 1", path, tok, "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=0;profile-level-id=42e01f\r\n", http.StatusBadRequest, "packetization-mode=1"},
		{"VP9 video with Opus", path, tok, "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\nm=video 9 UDP/TLS/RTP/SAVPF 98\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:98 VP9/90000\r\n", http.StatusBadRequest, "VP8, or H.264"},
		{"G.722 only", path, tok, "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 9\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:9 G722/8000\r\n", http.StatusBadRequest, "Opus audio"},
		{"Opus and a G.722-only audio section", path, tok, "application/sdp", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\nm=audio 9 UDP/TLS/RTP/SAVPF 9\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:9 G722/8000\r\n", http.StatusBadRequest, "Opus audio"},
		{"too large", path, tok, "application/sdp", offer + strings.Repeat("a=x\r\n", maxOffer/5), http.StatusRequestEntityTooLarge, "larger than"},
		{"no token", path, "", "application/sdp", offer, http.StatusUnauthorized, "API token"},
		{"unknown visit", "/whip/999999", tok, "application/sdp", offer, http.StatusNotFound, "no such visit"},
	} {
		resp, body := f.streamRequest(t, http.MethodPost, c.path, c.token, c.ctype, c.body)
		if resp.StatusCode != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, resp.StatusCode, body, c.want, c.says)
		}
	}
	if n := len(hub.Streams(f.visit.ID)); n != 0 {
		t.Fatalf("refused requests left %d streams open", n)
	}

	// A signed-in physician's browser session is not a bearer token.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(offer))
	req.Header.Set("Content-Type", "application/sdp")
	for k, v := range f.cookieHeader(f.signIn(t, "doc@example.org")) {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a session cookie: %d, want 401", resp.StatusCode)
	}

	// The visit holds three: a camera takes the one place not kept for the
	// physician and the patient, a second camera is refused with a retry
	// hint, and the physician still gets in.
	camera := f.publishWHIP(t, f.visit.ID, tok)
	pc := newClientPC(t)
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	if _, err := pc.AddTrack(video); err != nil {
		t.Fatal(err)
	}
	o, _ := pc.CreateOffer(nil)
	resp2, body := f.streamRequest(t, http.MethodPost, path, tok, "application/sdp", o.SDP)
	if resp2.StatusCode != http.StatusServiceUnavailable || resp2.Header.Get("Retry-After") == "" || !strings.Contains(body, "full") {
		t.Errorf("a second camera in a full visit: %d %q (Retry-After %q), want 503 saying full", resp2.StatusCode, body, resp2.Header.Get("Retry-After"))
	}
	doctor := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	if w := await(t, doctor, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Errorf("the physician joining a visit whose free place a camera took: %+v, want admitted", w)
	}
	doctor.Close()
	// Ending the camera gives its place back.
	if resp, body := f.streamRequest(t, http.MethodDelete, camera.location, tok, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s", camera.location, resp.StatusCode, body)
	}
	f.publishWHIP(t, f.visit.ID, tok)

	// A visit moved to next week takes no camera now.
	start := f.visit.Start.Add(7 * 24 * time.Hour)
	if _, err := f.st.RescheduleAppointment(t.Context(), f.visit.ID, start, start.Add(30*time.Minute), store.Change{At: time.Now(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if resp, body := f.streamRequest(t, http.MethodPost, path, tok, "application/sdp", o.SDP); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "30 minutes before") {
		t.Errorf("a visit next week: %d %q, want 403 naming the window", resp.StatusCode, body)
	}

	// A cancelled visit takes no camera.
	if _, err := f.st.SetAppointmentStatus(t.Context(), f.visit.ID, scheduling.StatusCancelled, store.Change{}); err != nil {
		t.Fatal(err)
	}
	if resp, body := f.streamRequest(t, http.MethodPost, path, tok, "application/sdp", o.SDP); resp.StatusCode != http.StatusGone {
		t.Errorf("a cancelled visit: %d %q, want 410", resp.StatusCode, body)
	}
}

// TestWHIPRefusesADeactivatedAccount: an API token issued alongside a
// deactivation (so not revoked by it) opens neither WHIP nor WHEP, as it
// opens no FHIR: every guard refuses a deactivated account.
func TestWHIPRefusesADeactivatedAccount(t *testing.T) {
	f := newFixture(t)
	if _, err := f.st.DeactivateUser(t.Context(), f.pat.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	tok := f.apiToken(t, f.pat.ID)
	for _, kind := range []string{"whip", "whep"} {
		resp, body := f.streamRequest(t, http.MethodPost, fmt.Sprintf("/%s/%d", kind, f.visit.ID), tok, "application/sdp", vp8Offer(t))
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "deactivated") {
			t.Errorf("%s with a deactivated patient's token: %d %.120q, want 401 saying deactivated", kind, resp.StatusCode, body)
		}
	}
}

// vp8Offer is a WHIP publisher's offer (one sendonly VP8 track).
func vp8Offer(t *testing.T) string {
	t.Helper()
	pc := newClientPC(t)
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(video, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}

// TestWHIPStreamEndsWhenTokenRevoked: an open WHIP or WHEP session is
// re-checked as sockets are: revoking its token, deactivating its account,
// cancelling the visit or moving it out of the streaming window ends it
// within the re-check interval; the call hears the camera left, and the
// camera's own connection ends. A stream whose access still holds stays.
func TestWHIPStreamEndsWhenTokenRevoked(t *testing.T) {
	for _, c := range []struct {
		name string
		// take takes access away from the camera (whose API token has
		// credential id cred) or from the whole visit.
		take func(t *testing.T, f *fixture, cred int64)
		// inCall: the physician's call survives the change, so hears the
		// camera leave.
		inCall bool
	}{
		{"token revoked", func(t *testing.T, f *fixture, cred int64) {
			if err := f.st.RevokeCredential(t.Context(), cred, time.Now()); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"account deactivated", func(t *testing.T, f *fixture, _ int64) {
			if _, err := f.st.DeactivateUser(t.Context(), f.doc.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"visit cancelled", func(t *testing.T, f *fixture, _ int64) {
			if _, err := f.st.SetAppointmentStatus(t.Context(), f.visit.ID, scheduling.StatusCancelled, store.Change{At: time.Now(), Reason: "test"}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"visit moved to next week", func(t *testing.T, f *fixture, _ int64) {
			start := f.visit.Start.Add(7 * 24 * time.Hour)
			if _, err := f.st.RescheduleAppointment(t.Context(), f.visit.ID, start, start.Add(30*time.Minute), store.Change{At: time.Now(), Reason: "test"}); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hub *signaling.Hub
			f := newFixtureWith(t, func(d *Deps) {
				hub = d.Calls.(*signaling.Hub)
				d.Recheck = 50 * time.Millisecond
			})
			doctor := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
			await(t, doctor, signaling.TypeWelcome)
			tok, cred := f.apiTokenID(t, f.doc.ID)
			camera := f.publishWHIP(t, f.visit.ID, tok)
			var cameraID string
			for cameraID == "" {
				for _, tr := range await(t, doctor, signaling.TypeSubscribeOffer).Tracks {
					if tr.Name == signaling.ExamCameraName {
						cameraID = tr.Participant
					}
				}
			}
			c.take(t, f, cred)
			if c.inCall {
				if m := await(t, doctor, signaling.TypePeerLeft); m.Participant != cameraID {
					t.Errorf("peer-left for %q, want the camera %q", m.Participant, cameraID)
				}
			}
			waitEnded(t, "the WHIP camera", camera.pc)
			deadline := time.Now().Add(10 * time.Second)
			for len(hub.Streams(f.visit.ID)) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d streams still open", len(hub.Streams(f.visit.ID)))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestWHEPViewerEndsAloneWhenItsTokenIsRevoked: each stream is checked on
// its own token: revoking a viewer's ends that viewer, not the camera.
func TestWHEPViewerEndsAloneWhenItsTokenIsRevoked(t *testing.T) {
	var hub *signaling.Hub
	f := newFixtureWith(t, func(d *Deps) {
		hub = d.Calls.(*signaling.Hub)
		d.Recheck = 50 * time.Millisecond
	})
	doctor := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, doctor, signaling.TypeWelcome)
	camera := f.publishWHIP(t, f.visit.ID, f.apiToken(t, f.doc.ID))
	for published := false; !published; { // the camera's track has reached the room
		published = len(await(t, doctor, signaling.TypeSubscribeOffer).Tracks) > 0
	}
	tok, cred := f.apiTokenID(t, f.doc.ID)
	viewer := newClientPC(t)
	if _, err := viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), tok, viewer)
	// Revoked before it connects, the viewer could not tell its session
	// ended: nothing reaches a peer still checking its candidates.
	waitConnected(t, "the WHEP viewer", viewer)
	if err := f.st.RevokeCredential(t.Context(), cred, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitEnded(t, "the WHEP viewer", viewer)
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := hub.Streams(f.visit.ID)
		if len(all) == 1 && all[0].Kind == signaling.StreamPublish {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams %+v, want the camera alone", all)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := camera.pc.ConnectionState(); s != webrtc.PeerConnectionStateConnected {
		t.Errorf("the camera is %s after the viewer's token was revoked", s)
	}
}

// apiTokenID is apiToken that also returns the credential's id.
func (f *fixture) apiTokenID(t *testing.T, userID int64) (string, int64) {
	t.Helper()
	tok, hash := auth.NewToken()
	c, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: userID,
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok, c.ID
}

// TestWHEPViewerIsAnnouncedToTheCall: nobody watches a visit unseen. A
// WHEP viewer is listed, by whose token opened it, to everyone admitted
// to the call, to a participant admitted later too, and its end is told
// likewise; a patient may not watch before the physician has let them
// into the call (403, audited).
func TestWHEPViewerIsAnnouncedToTheCall(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.Audit = &audit.Recorder{Store: d.Store, Log: d.Log} })
	doctor := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, doctor, signaling.TypeWelcome)
	f.publishWHIP(t, f.visit.ID, f.apiToken(t, f.doc.ID))
	for published := false; !published; {
		published = len(await(t, doctor, signaling.TypeSubscribeOffer).Tracks) > 0
	}
	// viewers waits for c's viewers message listing exactly names.
	viewers := func(who string, c *sigclient.Client, names ...string) {
		t.Helper()
		for {
			m := await(t, c, signaling.TypeViewers)
			var got []string
			for _, v := range *m.Viewers {
				if !strings.HasPrefix(v.Participant, "whep-") {
					t.Fatalf("%s: viewer id %q", who, v.Participant)
				}
				got = append(got, v.Name)
			}
			if slices.Equal(got, names) {
				return
			}
		}
	}
	watch := func(token string) (*http.Response, string) {
		return f.streamRequest(t, http.MethodPost, fmt.Sprintf("/whep/%d", f.visit.ID), token, "application/sdp", recvOffer(t, vp8Codec))
	}

	// The patient waits in the lobby: no watching yet.
	patient := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.joinClient(t, f.visit)))
	await(t, patient, signaling.TypeWelcome)
	patToken := f.apiToken(t, f.pat.ID)
	if resp, body := watch(patToken); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "let you into the call") {
		t.Fatalf("the waiting patient's viewer: %d %.80q, want 403", resp.StatusCode, body)
	}
	if events, _, _ := f.st.AuditEvents(t.Context(), store.AuditQuery{ActorID: f.pat.ID}); !slices.ContainsFunc(events, func(e store.AuditEvent) bool {
		return e.Outcome == audit.OutcomeDenied && e.Resource == fmt.Sprintf("Appointment/%d/media", f.visit.ID)
	}) {
		t.Error("the refused viewer is not in the audit trail")
	}

	// The physician's own viewer is told to the physician at once, and
	// to the patient once admitted.
	docView := f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), f.apiToken(t, f.doc.ID), recvPC(t))
	viewers("physician", doctor, "Viewer (doc@example.org)")
	if err := doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: fmt.Sprintf("u%d", f.pat.ID)}); err != nil {
		t.Fatal(err)
	}
	await(t, patient, signaling.TypeAdmitted)
	viewers("patient, just admitted", patient, "Viewer (doc@example.org)")

	// Admitted, the patient may watch; both hear of it, and of the end.
	f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), patToken, recvPC(t))
	viewers("physician", doctor, "Viewer (doc@example.org)", "Viewer (pat@example.org)")
	if resp, body := f.streamRequest(t, http.MethodDelete, docView.location, f.apiToken(t, f.doc.ID), "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s: %d %q", docView.location, resp.StatusCode, body)
	}
	viewers("patient", patient, "Viewer (pat@example.org)")
}

// recvPC is a client peer connection that receives one video track.
func recvPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	pc := newClientPC(t)
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestPatientWHEPEndsWhenPatientLeavesCall: a patient watches the visit only
// while admitted to the call. Once the patient leaves, their WHEP viewer is
// ended by the re-check; the physician's camera stays.
func TestPatientWHEPEndsWhenPatientLeavesCall(t *testing.T) {
	var hub *signaling.Hub
	f := newFixtureWith(t, func(d *Deps) {
		hub = d.Calls.(*signaling.Hub)
		d.Recheck = 50 * time.Millisecond
	})
	doctor := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, doctor, signaling.TypeWelcome)
	f.publishWHIP(t, f.visit.ID, f.apiToken(t, f.doc.ID))
	patient := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.joinClient(t, f.visit)))
	await(t, patient, signaling.TypeWelcome)
	doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: fmt.Sprintf("u%d", f.pat.ID)})
	await(t, patient, signaling.TypeAdmitted)
	f.negotiate(t, fmt.Sprintf("/whep/%d", f.visit.ID), f.apiToken(t, f.pat.ID), recvPC(t))
	viewerOpen := func() bool {
		for _, st := range hub.Streams(f.visit.ID) {
			if st.Kind == signaling.StreamView {
				return true
			}
		}
		return false
	}
	if !viewerOpen() {
		t.Fatal("the admitted patient's WHEP viewer did not open")
	}
	patient.Send(signaling.Message{Type: signaling.TypeLeave})
	await(t, doctor, signaling.TypePeerLeft)
	deadline := time.Now().Add(10 * time.Second)
	for viewerOpen() {
		if time.Now().After(deadline) {
			t.Fatalf("the patient's WHEP viewer is still open after the patient left the call: %+v", hub.Streams(f.visit.ID))
		}
		time.Sleep(10 * time.Millisecond)
	}
	all := hub.Streams(f.visit.ID)
	if len(all) != 1 || all[0].Kind != signaling.StreamPublish {
		t.Errorf("streams %+v, want the physician's camera alone", all)
	}
}
