package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is a Bedside started through run on a free port.
type testServer struct {
	URL  string
	Data string
	env  map[string]string
	out  *syncBuffer
	stop context.CancelFunc // shuts the server down, as SIGTERM does
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs bedside serve until the test ends and waits for /healthz.
func startServer(t *testing.T, extraEnv map[string]string) *testServer {
	t.Helper()
	return launch(t, "http", extraEnv, http.DefaultClient)
}

// launch runs bedside serve on a free port until the test ends and waits
// until c gets 200 from /healthz at scheme://addr.
func launch(t *testing.T, scheme string, extraEnv map[string]string, c *http.Client) *testServer {
	t.Helper()
	addr := freePort(t)
	if a := extraEnv["BEDSIDE_ADDR"]; a != "" {
		addr = a // a test that must know the address first (--node-url)
	}
	ts := &testServer{URL: scheme + "://" + addr, Data: t.TempDir(), out: &syncBuffer{}}
	// Free media ports, so servers of parallel tests do not collide.
	ts.env = map[string]string{"BEDSIDE_ADDR": addr, "BEDSIDE_DATA": ts.Data, "BEDSIDE_ICE_LOOPBACK": "1",
		"BEDSIDE_ICE_UDP_PORT": "0", "BEDSIDE_ICE_TCP_PORT": "0",
		// The tests' devices wait for each ack before sending the next.
		"BEDSIDE_DEVICE_ACK_INTERVAL": "0"}
	for k, v := range extraEnv {
		ts.env[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.stop = cancel
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, ts.getenv, nil, ts.out, ts.out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("server did not shut down within 15s")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(ts.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return ts
			}
		}
		select {
		case err := <-done:
			t.Fatalf("server exited before becoming healthy: %v\n%s", err, ts.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not healthy after 30s:\n%s", ts.out.String())
		}
	}
}

func (ts *testServer) getenv(k string) string { return ts.env[k] }

// cli runs an admin command against the server's data folder.
func (ts *testServer) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := ts.cliErr(t, stdin, args...)
	if err != nil {
		t.Fatalf("bedside %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// cliErr runs an admin command and returns its output and error.
func (ts *testServer) cliErr(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, ts.getenv, strings.NewReader(stdin), &out, &errOut)
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, errOut.String())
	}
	return out.String(), err
}

// demoPassword reads a demo account's password from the credentials file.
func (ts *testServer) demoPassword(t *testing.T, email string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ts.Data, demoFile))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(email) + `\s+password (\S+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no password for %s in demo file", email)
	}
	return m[1]
}

// demoDeviceToken reads the demo hub's device token.
func (ts *testServer) demoDeviceToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ts.Data, demoFile))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`--token (\S+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no device token in demo file")
	}
	return m[1]
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects, so tests see each step.
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func signIn(t *testing.T, c *http.Client, base, email, password string) {
	t.Helper()
	resp, err := c.PostForm(base+"/login", url.Values{"email": {email}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in as %s: status %d, want 303", email, resp.StatusCode)
	}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var (
	freeSlotRE  = regexp.MustCompile(`name="start" value="([^"]+)"`)
	patientOpt  = regexp.MustCompile(`patient=(\d+)">Maria Silva`)
	physOptRE   = regexp.MustCompile(`<option value="(\d+)"[^>]*>Dr Ada Okafor`)
	joinLinkRE  = regexp.MustCompile(`id="join-link"[^>]*value="([^"]+)"`)
	joinLinkRE2 = regexp.MustCompile(`value="([^"]+/join/[^"]+)"`)
)

// bookFirstFree signs in as the demo scheduler and books the first free slot
// of Dr Okafor for Maria Silva; it returns the join link.
func bookFirstFree(t *testing.T, ts *testServer) (joinLink string) {
	t.Helper()
	c := client(t)
	signIn(t, c, ts.URL, "scheduler@demo.bedside.test", ts.demoPassword(t, "scheduler@demo.bedside.test"))
	// The scheduler finds the patient by name, then picks the physician.
	status, body := get(t, c, ts.URL+"/schedule?q=maria+silva")
	if status != http.StatusOK {
		t.Fatalf("schedule: status %d", status)
	}
	phys := physOptRE.FindStringSubmatch(body)
	pat := patientOpt.FindStringSubmatch(body)
	if phys == nil || pat == nil {
		t.Fatalf("schedule page lacks the demo physician or patient:\n%s", body)
	}
	status, body = get(t, c, ts.URL+"/schedule?physician="+phys[1])
	slot := freeSlotRE.FindStringSubmatch(body)
	if slot == nil {
		// Late in the week every slot may be past: look at next week.
		m := regexp.MustCompile(`week=(\d{4}-\d\d-\d\d)"[^>]*>Next week`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no free slot and no next-week link:\n%s", body)
		}
		_, body = get(t, c, ts.URL+"/schedule?physician="+phys[1]+"&week="+m[1])
		slot = freeSlotRE.FindStringSubmatch(body)
		if slot == nil {
			t.Fatal("no free slot this week or next")
		}
	}
	form := url.Values{"physician": {phys[1]}, "patient": {pat[1]}, "start": {slot[1]}}
	resp, err := c.PostForm(ts.URL+"/appointments", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("book: status %d, want 201\n%s", resp.StatusCode, b)
	}
	m := joinLinkRE.FindStringSubmatch(string(b))
	if m == nil {
		m = joinLinkRE2.FindStringSubmatch(string(b))
	}
	if m == nil {
		t.Fatalf("booking page shows no join link:\n%s", b)
	}
	// Booking the same slot again is refused with the documented answer.
	resp, err = c.PostForm(ts.URL+"/appointments", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "just taken") {
		t.Fatalf("double booking: status %d, want 409 with 'just taken'", resp.StatusCode)
	}
	return strings.ReplaceAll(m[1], "&amp;", "&")
}

func TestServeSignInAndBook(t *testing.T) {
	ts := startServer(t, nil)
	if !strings.Contains(ts.out.String(), "scheduler@demo.bedside.test") {
		t.Fatalf("startup output does not say how to sign in:\n%s", ts.out.String())
	}
	// Not on devicesim's default address: the output says how to reach it.
	if want := "go run ./cmd/devicesim --url " + strings.Replace(ts.URL, "http://", "ws://", 1) + "/ws/device --token"; !strings.Contains(ts.out.String(), want) {
		t.Errorf("startup output does not point devicesim at the server (%s):\n%s", want, ts.out.String())
	}
	status, _ := get(t, client(t), ts.URL+"/readyz")
	if status != http.StatusOK {
		t.Fatalf("readyz: %d", status)
	}

	// Signed out, pages redirect to sign-in; a wrong password is refused.
	c := client(t)
	resp, err := c.Get(ts.URL + "/schedule")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("anonymous /schedule: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = c.PostForm(ts.URL+"/login", url.Values{"email": {"scheduler@demo.bedside.test"}, "password": {"wrong-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d, want 401", resp.StatusCode)
	}

	link := bookFirstFree(t, ts)
	if !strings.HasPrefix(link, ts.URL+"/join/") {
		t.Fatalf("join link %q is not on this server", link)
	}

	// The patient's link opens the visit and leaves the address bar.
	pc := client(t)
	resp, err = pc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/visit/") {
		t.Fatalf("join link: %d %q, want 303 to /visit/", resp.StatusCode, loc)
	}
	status, body := get(t, pc, ts.URL+loc)
	if status != http.StatusOK || !strings.Contains(body, "Maria Silva") {
		t.Fatalf("visit page: %d", status)
	}
	// The patient's session opens nothing else.
	if status, _ := get(t, pc, ts.URL+"/schedule"); status != http.StatusForbidden {
		t.Fatalf("patient on /schedule: %d, want 403", status)
	}
	// A scheduler may not open the physician's consult page.
	sc := client(t)
	signIn(t, sc, ts.URL, "scheduler@demo.bedside.test", ts.demoPassword(t, "scheduler@demo.bedside.test"))
	if status, _ := get(t, sc, ts.URL+strings.Replace(loc, "/visit/", "/consult/", 1)); status != http.StatusForbidden {
		t.Fatalf("scheduler on consult: %d, want 403", status)
	}
	// The other physician may not open it either.
	oc := client(t)
	signIn(t, oc, ts.URL, "dr.tanaka@demo.bedside.test", ts.demoPassword(t, "dr.tanaka@demo.bedside.test"))
	if status, _ := get(t, oc, ts.URL+strings.Replace(loc, "/visit/", "/consult/", 1)); status != http.StatusForbidden {
		t.Fatalf("other physician on consult: %d, want 403", status)
	}
	// Its physician sees it in the day list.
	dc := client(t)
	signIn(t, dc, ts.URL, "dr.okafor@demo.bedside.test", ts.demoPassword(t, "dr.okafor@demo.bedside.test"))
	status, body = get(t, dc, ts.URL+"/today")
	if status != http.StatusOK || !strings.Contains(body, "Maria Silva") {
		t.Fatalf("physician's day list: %d, lacks the visit", status)
	}
	if _, err := fmt.Sscanf(strings.TrimPrefix(loc, "/visit/"), "%d", new(int)); err != nil {
		t.Fatalf("visit path %q", loc)
	}
}

func TestCLIAddsUsersAndTokens(t *testing.T) {
	ts := &testServer{Data: t.TempDir()}
	ts.env = map[string]string{"BEDSIDE_DATA": ts.Data}
	out := ts.cli(t, "a-long-enough-password\n", "user", "add", "--role", "physician", "--email", "New.Doc@Example.org", "--name", "Dr New", "--tz", "Europe/Paris")
	if !strings.Contains(out, "added physician Dr New <new.doc@example.org>") {
		t.Fatalf("user add printed %q", out)
	}
	if _, err := ts.cliErr(t, "Password123\n", "user", "add", "--role", "scheduler", "--email", "weak@example.org", "--name", "Weak"); err == nil || !strings.Contains(err.Error(), "most common passwords") {
		t.Fatalf("a common password was accepted: %v", err)
	}
	out = ts.cli(t, "", "user", "add", "--role", "patient", "--email", "p@example.org", "--name", "Pat")
	if !regexp.MustCompile(`password: \S{12,}`).MatchString(out) {
		t.Fatalf("user add without a password should generate one, printed %q", out)
	}
	if tok := strings.TrimSpace(ts.cli(t, "", "token", "issue", "--email", "new.doc@example.org")); len(tok) < 40 {
		t.Fatalf("token issue printed %q", tok)
	}
	if tok := strings.TrimSpace(ts.cli(t, "", "device", "add", "--patient", "p@example.org", "--name", "Oximeter")); len(tok) < 40 {
		t.Fatalf("device add printed %q", tok)
	}
	// Listed with their expiry (a device token a year by default), and
	// revocable by id.
	list := ts.cli(t, "", "token", "list", "--email", "p@example.org")
	m := regexp.MustCompile(`(?m)^(\d+)\s+device\s+Oximeter\s+\S+\s+(\d{4})-\S+\s+-$`).FindStringSubmatch(list)
	if m == nil || m[2] != strconv.Itoa(time.Now().Year()+1) {
		t.Fatalf("token list printed:\n%s", list)
	}
	if out := ts.cli(t, "", "token", "revoke", "--id", m[1]); !strings.Contains(out, "revoked") {
		t.Fatalf("token revoke printed %q", out)
	}
	list = ts.cli(t, "", "token", "list", "--email", "p@example.org")
	if !regexp.MustCompile(`(?m)^` + m[1] + `\s+device\s+Oximeter\s+\S+\s+\S+\s+\d{4}-\S+$`).MatchString(list) {
		t.Fatalf("the revoked token is not listed with its revocation time:\n%s", list)
	}
	// A password link for staff, never for a patient.
	ts.env["BEDSIDE_PUBLIC_URL"] = "https://clinic.example"
	if out := ts.cli(t, "", "user", "password-link", "--email", "new.doc@example.org"); !regexp.MustCompile(`^https://clinic\.example/account/password/\d+\.\d+\.\S{43}\nworks once, until `).MatchString(out) {
		t.Fatalf("user password-link printed %q", out)
	}
	if _, err := ts.cliErr(t, "", "user", "password-link", "--email", "p@example.org"); err == nil {
		t.Error("a password link was made for a patient")
	}
	// Deactivation revokes what the account held; reactivation revives none of it.
	ts.cli(t, "", "token", "issue", "--email", "p@example.org")
	if out := ts.cli(t, "", "user", "deactivate", "--email", "p@example.org"); !strings.Contains(out, "deactivated; 0 sessions ended, 1 tokens revoked") {
		t.Fatalf("user deactivate printed %q", out)
	}
	if out := ts.cli(t, "", "user", "reactivate", "--email", "p@example.org"); !strings.Contains(out, "may sign in again") {
		t.Fatalf("user reactivate printed %q", out)
	}
	list = ts.cli(t, "", "token", "list", "--email", "p@example.org")
	if strings.Contains(list, "\t-\n") || regexp.MustCompile(`(?m)\s-$`).MatchString(list) {
		t.Fatalf("a token is live after deactivation and reactivation:\n%s", list)
	}
	for _, bad := range [][]string{
		{"user", "deactivate", "--email", "nobody@example.org"},
		{"user", "add", "--role", "wizard", "--email", "w@example.org", "--name", "W"},
		{"user", "add", "--role", "patient", "--email", "p@example.org", "--name", "Again"},
		{"user", "add", "--role", "patient", "--email", "q@example.org", "--name", "Q", "--tz", "Mars/Olympus"},
		{"device", "add", "--patient", "new.doc@example.org", "--name", "Cuff"},
		{"token", "issue", "--email", "nobody@example.org"},
		{"token", "revoke", "--id", "9999"},
		{"token", "revoke"},
		{"token", "list", "--email", "nobody@example.org"},
		{"device", "add", "--patient", "p@example.org", "--name", "Cuff", "--ttl", "-1h"},
		{"frobnicate"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), bad, ts.getenv, strings.NewReader(""), &out, &errOut); err == nil {
			t.Errorf("bedside %v succeeded, want an error", bad)
		}
	}
}

// TestDevicesimHint: the hint appears only for a demo database served
// elsewhere than devicesim's default, with the WebSocket scheme of the URL.
func TestDevicesimHint(t *testing.T) {
	demo, plain := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(demo, demoFile), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ data, url, want string }{
		{demo, "http://localhost:8080", ""},
		{plain, "http://127.0.0.1:9000", ""},
		{demo, "http://127.0.0.1:9000", "--url ws://127.0.0.1:9000/ws/device "},
		{demo, "https://clinic.example", "--url wss://clinic.example/ws/device "},
	} {
		got := devicesimHint(c.data, c.url)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("devicesimHint(%s) = %q, want %q", c.url, got, c.want)
		}
	}
}
