package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

// fixture is a server on a real SQLite store with one visit: physician doc,
// patient pat, and a second patient other, each patient with a device.
type fixture struct {
	srv        *httptest.Server
	st         store.Store
	doc, other store.User
	pat        store.User
	doc2       store.User
	visit      scheduling.Appointment
	devToken   string // pat's device
	devID      int64
	otherToken string // other's device
}

const testPassword = "a-long-test-password"

func newFixture(t testing.TB) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the server's Deps adjusted by adjust.
func newFixtureWith(t testing.TB, adjust func(*Deps)) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir()+"/bedside.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sfu, err := media.New(media.Config{AllowLoopback: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sfu.Close)
	f := &fixture{st: st}
	hash, _ := auth.HashPassword(testPassword)
	mk := func(email string, role store.Role) store.User {
		u, err := st.CreateUser(ctx, store.User{Email: email, Name: email, Role: role, TimeZone: "Europe/London", PasswordHash: hash})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	f.doc = mk("doc@example.org", store.RolePhysician)
	f.doc2 = mk("doc2@example.org", store.RolePhysician)
	f.pat = mk("pat@example.org", store.RolePatient)
	f.other = mk("other@example.org", store.RolePatient)
	mk("sched@example.org", store.RoleScheduler)
	// Starts soon, so its live vitals are open (from 30 minutes before).
	start := time.Now().Add(20 * time.Minute).Truncate(time.Minute).UTC()
	f.visit, err = st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: f.doc.ID, PatientID: f.pat.ID,
		Start: start, End: start.Add(30 * time.Minute), Status: scheduling.StatusBooked, CreatedAt: time.Now().UTC()}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	newDevice := func(patient int64) (string, int64) {
		tok, h := auth.NewToken()
		c, err := st.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: h, UserID: patient, Name: "Oximeter", CreatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return tok, c.ID
	}
	f.devToken, f.devID = newDevice(f.pat.ID)
	f.otherToken, _ = newDevice(f.other.ID)
	deps := Deps{Log: log, Store: st, Bus: cluster.NewLocal(), Calls: signaling.NewHub(sfu, log), Connectivity: sfu, Secret: []byte("a test key of thirty-two bytes, or more"),
		DeviceAckInterval: 20 * time.Millisecond}
	if adjust != nil {
		adjust(&deps)
	}
	f.srv = httptest.NewServer(NewServer(deps))
	t.Cleanup(f.srv.Close)
	return f
}

// signIn returns a client holding a session of the given user.
func (f *fixture) signIn(t testing.TB, email string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"email": {email}, "password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in %s: %d", email, resp.StatusCode)
	}
	return c
}

// cookieHeader returns the session cookie of c for a WebSocket dial.
func (f *fixture) cookieHeader(c *http.Client) http.Header {
	u, _ := url.Parse(f.srv.URL)
	h := http.Header{}
	for _, ck := range c.Jar.Cookies(u) {
		h.Add("Cookie", ck.Name+"="+ck.Value)
	}
	return h
}

func (f *fixture) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(f.srv.URL, "http") + path
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'",
		"Referrer-Policy":         "no-referrer",
		"Permissions-Policy":      "camera=(self), microphone=(self), bluetooth=(self)",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := resp.Header.Get(k); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", k, got, want)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows inline code: %s", csp)
	}
	// The pages' modules (Web Bluetooth's among them) load from our origin
	// and talk to its sockets.
	for _, want := range []string{"script-src 'self'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); hsts != "" {
		t.Errorf("HSTS sent over plain HTTP: %q", hsts)
	}
}

// TestSecureSite: served over HTTPS (the public URL says so), the session
// cookie is Secure and browsers are told to keep to HTTPS.
func TestSecureSite(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.Secure = true })
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"email": {"doc@example.org"}, "password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=31536000") {
		t.Errorf("HSTS = %q", hsts)
	}
	var found bool
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			found = true
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("session cookie %+v: want Secure, HttpOnly, SameSite=Lax", c)
			}
		}
	}
	if !found {
		t.Error("no session cookie after signing in")
	}
}

func TestCrossOriginFormRefused(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader("email=doc%40example.org&password="+testPassword))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin sign-in: %d, want 403", resp.StatusCode)
	}
}

func TestSignInRotatesAndSignOutEnds(t *testing.T) {
	f := newFixture(t)
	c := f.signIn(t, "doc@example.org")
	u, _ := url.Parse(f.srv.URL)
	first := c.Jar.Cookies(u)[0].Value
	resp, err := c.PostForm(f.srv.URL+"/login", url.Values{"email": {"doc@example.org"}, "password": {testPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if second := c.Jar.Cookies(u)[0].Value; second == first {
		t.Fatal("signing in again kept the same session token")
	}
	// The replaced session no longer works.
	jar, _ := cookiejar.New(nil)
	jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: first}})
	old := &http.Client{Jar: jar, CheckRedirect: c.CheckRedirect}
	resp, err = old.Get(f.srv.URL + "/today")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("old session after rotation: %d, want redirect to sign-in", resp.StatusCode)
	}
	resp, err = c.PostForm(f.srv.URL+"/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(f.srv.URL + "/today")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d, want redirect to sign-in", resp.StatusCode)
	}
}

// TestPagesHaveAnIcon: every page names its icon, which is served, so a
// browser neither shows a blank tab icon nor logs a 404 for /favicon.ico.
func TestPagesHaveAnIcon(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`<link rel="icon" href="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("the sign-in page names no icon:\n%s", b)
	}
	resp, err = http.Get(f.srv.URL + string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	icon, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(string(icon), "<svg") {
		t.Fatalf("the icon %s: %d %q", m[1], resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
