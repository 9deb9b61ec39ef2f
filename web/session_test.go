package web

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/signaling"
)

// testClock is a settable clock for the server.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func clockFixture(t *testing.T) (*fixture, *testClock) {
	clk := &testClock{t: time.Now()}
	f := newFixtureWith(t, func(d *Deps) { d.Now = clk.now })
	return f, clk
}

// tryLogin posts the sign-in form from a fresh client.
func tryLogin(t *testing.T, f *fixture, email, password string) (*http.Client, *http.Response) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return c, resp
}

func TestSignInThrottled(t *testing.T) {
	f, clk := clockFixture(t)
	for i := range 5 {
		if _, resp := tryLogin(t, f, "doc@example.org", "wrong guess"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	// Blocked now, even with the right password, which is not even checked.
	_, resp := tryLogin(t, f, "doc@example.org", testPassword)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "900" {
		t.Fatalf("after 5 failures: %d Retry-After %q, want 429 900", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another account from the same address is not blocked by this one.
	if _, resp := tryLogin(t, f, "sched@example.org", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another account: %d", resp.StatusCode)
	}
	// After the window, the right password works and clears the count.
	clk.add(15*time.Minute + time.Second)
	if _, resp := tryLogin(t, f, "doc@example.org", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the window: %d", resp.StatusCode)
	}
	if n, _ := f.st.LoginFailures(t.Context(), accountKey("doc@example.org"), clk.now().Add(-time.Hour)); n != 0 {
		t.Errorf("failures after a good sign-in: %d", n)
	}
	// Unknown accounts count too, so guessing which accounts exist is throttled the same.
	for range 5 {
		tryLogin(t, f, "nobody@example.org", "x")
	}
	if _, resp := tryLogin(t, f, "nobody@example.org", "x"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("unknown account after 5 failures: %d, want 429", resp.StatusCode)
	}
}

func TestSignInThrottledPerAddress(t *testing.T) {
	f, _ := clockFixture(t)
	for i := range 30 { // one failure at each of 30 accounts
		tryLogin(t, f, "user"+strings.Repeat("x", i)+"@example.org", "wrong")
	}
	if _, resp := tryLogin(t, f, "doc@example.org", testPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after 30 failures from one address: %d, want 429", resp.StatusCode)
	}
}

func TestIdleAndAbsoluteTimeouts(t *testing.T) {
	f, clk := clockFixture(t)
	c := f.signIn(t, "sched@example.org")
	open := func() int {
		t.Helper()
		resp, err := c.Get(f.srv.URL + "/patients")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Used every 20 minutes, it lives on past the idle timeout...
	for range 5 {
		clk.add(20 * time.Minute)
		if st := open(); st != http.StatusOK {
			t.Fatalf("active session refused: %d", st)
		}
	}
	// ...but not when left alone for 30 minutes.
	clk.add(idleTimeout)
	if st := open(); st != http.StatusSeeOther {
		t.Fatalf("idle session: %d, want a redirect to sign in", st)
	}
	// And never past its absolute lifetime, however busy.
	c = f.signIn(t, "sched@example.org")
	for elapsed := time.Duration(0); elapsed < sessionTTL-20*time.Minute; elapsed += 20 * time.Minute {
		clk.add(20 * time.Minute)
		if st := open(); st != http.StatusOK {
			t.Fatalf("busy session refused after %s: %d", elapsed, st)
		}
	}
	clk.add(20 * time.Minute)
	if st := open(); st != http.StatusSeeOther {
		t.Fatalf("session past %s: %d, want a redirect to sign in", sessionTTL, st)
	}
}

func TestSignOutEverywhere(t *testing.T) {
	f, _ := clockFixture(t)
	laptop := f.signIn(t, "doc@example.org")
	phone := f.signIn(t, "doc@example.org")
	other := f.signIn(t, "sched@example.org")
	resp, err := phone.PostForm(f.srv.URL+"/logout/everywhere", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out everywhere: %d", resp.StatusCode)
	}
	for name, c := range map[string]*http.Client{"laptop": laptop, "phone": phone} {
		resp, _ := c.Get(f.srv.URL + "/today")
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("%s still signed in: %d", name, resp.StatusCode)
		}
	}
	resp, _ = other.Get(f.srv.URL + "/patients")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("another user was signed out too: %d", resp.StatusCode)
	}
}

// idleFixture is a fixture on a test clock, with a server sharing its
// store, call hub and clock whose socket re-checks the test runs itself,
// one per step of the clock.
func idleFixture(t *testing.T) (*fixture, *testClock, *server) {
	clk := &testClock{t: time.Now()}
	var deps Deps
	f := newFixtureWith(t, func(d *Deps) { d.Now = clk.now; deps = *d })
	return f, clk, &server{Deps: deps}
}

// stepsUntilEnded moves the clock on by step and runs check, up to n
// times, and returns after how many steps check failed (0: never).
func stepsUntilEnded(clk *testClock, step time.Duration, n int, check func() error) int {
	for i := 1; i <= n; i++ {
		clk.add(step)
		if err := check(); err != nil {
			return i
		}
	}
	return 0
}

// TestRecheckIsNotActivity: the re-checks of a physician's open sockets
// (a vitals socket, and any re-check rebuilt from a socket's request) do
// not keep their session alive: a page left open ends after 30 minutes
// without a request, as a closed one does.
func TestRecheckIsNotActivity(t *testing.T) {
	f, clk, s := idleFixture(t)
	ctx := t.Context()
	still := s.stillInVisit(httptestRequest(f, f.signIn(t, "doc@example.org")), f.visit.ID, true)
	if got := stepsUntilEnded(clk, 2*time.Minute, 30, func() error { return still(ctx) }); got != 15 {
		t.Errorf("a vitals socket's re-checks every 2 minutes: session ended after %d steps, want 15 (30 minutes)", got)
	}
	p, _ := s.socketRequest(httptestRequest(f, f.signIn(t, "doc@example.org")))
	if got := stepsUntilEnded(clk, 2*time.Minute, 30, func() error { _, err := s.lookupSession(p.request()); return err }); got != 15 {
		t.Errorf("a socket's rebuilt request every 2 minutes: session ended after %d steps, want 15", got)
	}
	// A request is activity: one every 20 minutes keeps the session.
	c := f.signIn(t, "doc@example.org")
	for range 6 {
		clk.add(20 * time.Minute)
		resp, err := c.Get(f.srv.URL + "/today")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a page every 20 minutes: %d, want 200", resp.StatusCode)
		}
	}
}

// httptestRequest is a request carrying the session cookie of c.
func httptestRequest(f *fixture, c *http.Client) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/", nil)
	r.Header = f.cookieHeader(c)
	r.RemoteAddr = "127.0.0.1:1"
	return r
}

// TestCallIsActivity: a physician's call socket keeps the session alive
// while somebody else is in the call, so nobody is signed out mid-call,
// but not while the physician's page waits with nobody admitted; a
// patient's visit session is kept by its call socket in the waiting room
// too.
func TestCallIsActivity(t *testing.T) {
	f, clk, s := idleFixture(t)
	ctx := t.Context()
	callURL := f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID))
	patient := f.joinClient(t, f.visit)
	doc := f.signIn(t, "doc@example.org")
	await(t, dialCall(t, callURL, f.cookieHeader(doc)), signaling.TypeWelcome)
	pc := dialCall(t, callURL, f.cookieHeader(patient))
	if w := await(t, pc, signaling.TypeWelcome); w.State != signaling.StateWaiting {
		t.Fatalf("patient welcome %q, want waiting", w.State)
	}
	docCheck := s.stillInCall(httptestRequest(f, doc), f.visit.ID)
	patCheck := s.stillInCall(httptestRequest(f, patient), f.visit.ID)
	// Nobody admitted: the physician's page idles out; the patient waiting
	// for the visit does not.
	if got := stepsUntilEnded(clk, 2*time.Minute, 30, func() error {
		if err := patCheck(ctx); err != nil {
			t.Fatalf("the patient waiting: %v", err)
		}
		return docCheck(ctx)
	}); got != 15 {
		t.Errorf("the physician's call page with nobody admitted: session ended after %d steps, want 15", got)
	}
	// Signed in again and talking to the patient: an hour without a click.
	doc = f.signIn(t, "doc@example.org")
	dc := dialCall(t, callURL, f.cookieHeader(doc))
	await(t, dc, signaling.TypeWelcome)
	dc.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: fmt.Sprintf("u%d", f.pat.ID)})
	await(t, pc, signaling.TypeAdmitted)
	docCheck = s.stillInCall(httptestRequest(f, doc), f.visit.ID)
	vitals := s.stillInVisit(httptestRequest(f, doc), f.visit.ID, true)
	if got := stepsUntilEnded(clk, 2*time.Minute, 30, func() error {
		if err := patCheck(ctx); err != nil {
			return err
		}
		if err := docCheck(ctx); err != nil {
			return err
		}
		return vitals(ctx)
	}); got != 0 {
		t.Errorf("in a call for an hour: a session ended after %d steps, want none", got)
	}
}
