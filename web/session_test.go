package web

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
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
