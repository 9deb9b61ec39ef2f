package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
)

// joinClient opens a fresh join link for appointment a and returns a client
// holding the resulting visit session.
func (f *fixture) joinClient(t *testing.T, a scheduling.Appointment) *http.Client {
	t.Helper()
	tok, h := auth.NewToken()
	if _, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialJoin, TokenHash: h,
		UserID: a.PatientID, AppointmentID: a.ID, CreatedAt: time.Now(), ExpiresAt: a.End.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(f.srv.URL + "/join/" + tok)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := fmt.Sprintf("/visit/%d", a.ID); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("join link: %d %q, want 303 %s", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	return c
}

func TestCallSocketOnlyForParticipants(t *testing.T) {
	f := newFixture(t)
	start := f.visit.End.Add(time.Hour)
	otherVisit, err := f.st.BookAppointment(t.Context(), scheduling.Appointment{PhysicianID: f.doc2.ID, PatientID: f.other.ID,
		Start: start, End: start.Add(30 * time.Minute), Status: scheduling.StatusBooked, CreatedAt: time.Now().UTC()}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	callURL := f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID))
	dial := func(c *http.Client, extra http.Header) int {
		h := http.Header{}
		if c != nil {
			h = f.cookieHeader(c)
		}
		for k, v := range extra {
			h[k] = v
		}
		ws, resp, err := websocket.DefaultDialer.Dial(callURL, h)
		if err == nil {
			ws.Close()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	cases := []struct {
		name   string
		client *http.Client
		header http.Header
		want   int
	}{
		{"anonymous", nil, nil, http.StatusUnauthorized},
		{"another appointment's patient", f.joinClient(t, otherVisit), nil, http.StatusForbidden},
		{"another physician", f.signIn(t, "doc2@example.org"), nil, http.StatusForbidden},
		{"scheduler", f.signIn(t, "sched@example.org"), nil, http.StatusForbidden},
		{"the physician from another site", f.signIn(t, "doc@example.org"), http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"the physician", f.signIn(t, "doc@example.org"), nil, http.StatusSwitchingProtocols},
		{"the patient", f.joinClient(t, f.visit), nil, http.StatusSwitchingProtocols},
	}
	for _, c := range cases {
		if got := dial(c.client, c.header); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
}

func TestJoinLinkRevokedAndExpired(t *testing.T) {
	f := newFixture(t)
	tok, h := auth.NewToken()
	cred, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialJoin, TokenHash: h,
		UserID: f.pat.ID, AppointmentID: f.visit.ID, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.RevokeCredential(t.Context(), cred.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	expTok, h2 := auth.NewToken()
	if _, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialJoin, TokenHash: h2,
		UserID: f.pat.ID, AppointmentID: f.visit.ID, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		tok  string
		want int
	}{"revoked": {tok, http.StatusGone}, "expired": {expTok, http.StatusGone}, "unknown": {"nope", http.StatusNotFound}} {
		resp, err := http.Get(f.srv.URL + "/join/" + c.tok)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want || len(resp.Cookies()) != 0 {
			t.Errorf("%s link: %d with %d cookies, want %d and no session", name, resp.StatusCode, len(resp.Cookies()), c.want)
		}
	}
}

// TestCallRateClosesAFloodingClient: the call socket carries CallRate, so
// a client sending beyond it is told so and closed with 1008.
func TestCallRateClosesAFloodingClient(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.CallRate = MessageRate{PerSecond: 1e-9, Burst: 3} })
	ws, _, err := websocket.DefaultDialer.Dial(f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.joinClient(t, f.visit)))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for range 4 {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"leave-not"}`)); err != nil {
			t.Fatal(err)
		}
	}
	var sawTooMany bool
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m signaling.Message
		if err := ws.ReadJSON(&m); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("connection ended with %v, want close 1008", err)
			}
			break
		}
		sawTooMany = sawTooMany || (m.Type == signaling.TypeError && strings.Contains(m.Error, "too many messages"))
	}
	if !sawTooMany {
		t.Fatal("no 'too many messages' error before the close")
	}
}

// TestCallResumeChecksTheSession resumes a patient's dropped call socket
// through the web layer: the resume needs the same session cookie as any
// connection, and a token is worth nothing to another participant.
func TestCallResumeChecksTheSession(t *testing.T) {
	f := newFixture(t)
	callURL := f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID))
	patient := f.joinClient(t, f.visit)
	read := func(ws *websocket.Conn) signaling.Message {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
		var m signaling.Message
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	ws, _, err := websocket.DefaultDialer.Dial(callURL, f.cookieHeader(patient))
	if err != nil {
		t.Fatal(err)
	}
	w := read(ws)
	if w.Type != signaling.TypeWelcome || w.Resume == "" || w.Seq != 1 {
		t.Fatalf("first message %+v, want a numbered welcome with a resume token", w)
	}
	ws.UnderlyingConn().Close() // the network drops: no close frame
	resumeURL := callURL + "?resume=" + w.Resume + "&last=1"

	// Without the session cookie the token opens nothing.
	if _, resp, err := websocket.DefaultDialer.Dial(resumeURL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("resume without a session: %v, want 401", err)
	}
	// The physician holding the patient's token is not the patient.
	doc, _, err := websocket.DefaultDialer.Dial(resumeURL, f.cookieHeader(f.signIn(t, "doc@example.org")))
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Close()
	if m := read(doc); m.Type != signaling.TypeResumeFailed {
		t.Fatalf("the physician resuming the patient's session got %+v, want resume-failed", m)
	}
	if m := read(doc); m.Type != signaling.TypeWelcome || m.Participant == w.Participant {
		t.Fatalf("then %+v, want the physician's own welcome", m)
	}
	// The patient, with the cookie, gets the session back.
	again, _, err := websocket.DefaultDialer.Dial(resumeURL, f.cookieHeader(patient))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if m := read(again); m.Type != signaling.TypeResumed || m.Resume == "" || m.Resume == w.Resume {
		t.Fatalf("resume got %+v, want resumed with a new token", m)
	}
}

// TestPatientReopensJoinLinkInSameBrowser: a patient admitted to the call
// who opens their join link again in the same browser (closed the tab,
// tapped the link in the message again) gets a new session, yet is the
// same browser to the call: admitted again at once, not sent back to the
// waiting room. The same link in another browser still waits.
func TestPatientReopensJoinLinkInSameBrowser(t *testing.T) {
	f := newFixture(t)
	doctor := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, doctor, signaling.TypeWelcome)
	tok, h := auth.NewToken()
	if _, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialJoin, TokenHash: h,
		UserID: f.visit.PatientID, AppointmentID: f.visit.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	open := func(b *http.Client) string {
		t.Helper()
		resp, err := b.Get(f.srv.URL + "/join/" + tok)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("join link: %d, want 303", resp.StatusCode)
		}
		u, _ := url.Parse(f.srv.URL)
		for _, ck := range b.Jar.Cookies(u) {
			if ck.Name == sessionCookie {
				return ck.Value
			}
		}
		t.Fatal("the join link set no session")
		return ""
	}
	callURL := f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID))
	b := noRedirect()
	first := open(b)
	p1 := dialCall(t, callURL, f.cookieHeader(b))
	await(t, p1, signaling.TypeWelcome)
	doctor.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: fmt.Sprintf("u%d", f.pat.ID)})
	await(t, p1, signaling.TypeAdmitted)

	if again := open(b); again == first {
		t.Fatal("reopening the join link kept the session; want a new one (rotation)")
	}
	p2 := dialCall(t, callURL, f.cookieHeader(b))
	if w := await(t, p2, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
		t.Fatalf("the same browser reopening its join link: welcome %q, want admitted", w.State)
	}

	other := noRedirect()
	open(other)
	p3 := dialCall(t, callURL, f.cookieHeader(other))
	if w := await(t, p3, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Errorf("another browser with the same join link: welcome %q, want waiting", w.State)
	}
}
