package web

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
)

// refusalSettings sets the refusal limits for the servers a test makes.
func refusalSettings(t *testing.T, window time.Duration, allow, addresses int) {
	old := refusalLimits
	refusalLimits.Window, refusalLimits.Allow, refusalLimits.Addresses = window, allow, addresses
	t.Cleanup(func() { refusalLimits = old })
}

// newProxiedFixture is a fixture behind a trusted proxy on loopback, so
// that X-Forwarded-For sets each request's client address, on clock.
func newProxiedFixture(t *testing.T, clock *testClock) *fixture {
	return newFixtureWith(t, func(d *Deps) {
		d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		d.Now = clock.now
		d.Audit = &audit.Recorder{Store: d.Store, Log: d.Log, Now: clock.now}
	})
}

// dialDeviceFrom dials /ws/device as client address addr with header h;
// it returns the status and, on success, the socket.
func dialDeviceFrom(t *testing.T, f *fixture, addr string, h http.Header) (int, *http.Response) {
	t.Helper()
	h = h.Clone()
	h.Set("X-Forwarded-For", addr)
	ws, resp, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), h)
	if err == nil {
		ws.Close()
	}
	if resp == nil {
		t.Fatalf("dial device from %s: %v", addr, err)
	}
	return resp.StatusCode, resp
}

// deniedRows are the audit trail's refusals of resource (and its
// summaries), and the attempts they count in all.
func deniedRows(t *testing.T, st store.Store, resource string) (rows []store.AuditEvent, attempts int) {
	t.Helper()
	events, _, err := st.AuditEvents(t.Context(), store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		first, n := audit.RepeatCount(e.Resource)
		if first != resource || e.Outcome == audit.OutcomeSuccess {
			continue
		}
		rows = append(rows, e)
		attempts += max(n, 1)
	}
	return rows, attempts
}

// TestDeviceRefusalsThrottled: a flood of bad device credentials from one
// address writes the first refusal and, once its window closes, one row
// with the count of the rest; past the allowance the address is answered
// 429 with Retry-After, while a good device from another address streams
// throughout.
func TestDeviceRefusalsThrottled(t *testing.T) {
	refusalSettings(t, 15*time.Minute, 10, 4096)
	clock := &testClock{t: time.Now()}
	f := newProxiedFixture(t, clock)
	const flood, attacker = 200, "192.0.2.7"
	bad := []http.Header{{}, {"Authorization": {"Bearer not-a-token"}}, {"Authorization": {"Bearer " + f.devToken + "x"}}}
	good := http.Header{"Authorization": {"Bearer " + f.devToken}}
	statuses := map[int]int{}
	for i := range flood {
		st, resp := dialDeviceFrom(t, f, attacker, bad[i%len(bad)])
		statuses[st]++
		if st == http.StatusTooManyRequests {
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra <= 0 || ra > 15*60 {
				t.Fatalf("429 with Retry-After %q, want seconds up to the window", resp.Header.Get("Retry-After"))
			}
		}
		if i == flood/2 {
			if st, _ := dialDeviceFrom(t, f, "198.51.100.9", good); st != http.StatusSwitchingProtocols {
				t.Fatalf("a good device from another address during the flood: %d, want 101", st)
			}
		}
	}
	if statuses[http.StatusUnauthorized] != 10 || statuses[http.StatusTooManyRequests] != flood-10 {
		t.Fatalf("statuses %v: want 10 refused (401), then the rest 429", statuses)
	}
	rows, n := deniedRows(t, f.st, "Observation")
	if len(rows) != 1 || n != 1 || rows[0].Address != attacker || rows[0].ActorRole != audit.RoleAnonymous {
		t.Fatalf("during the window, %d rows counting %d (%+v), want the first refusal only", len(rows), n, rows)
	}
	// The window closes: the next request (a good device, from elsewhere)
	// finds it closed and the count is written.
	clock.add(15 * time.Minute)
	if st, _ := dialDeviceFrom(t, f, "198.51.100.9", good); st != http.StatusSwitchingProtocols {
		t.Fatalf("good device after the window: %d, want 101", st)
	}
	rows, n = deniedRows(t, f.st, "Observation")
	if len(rows) != 2 || n != flood || rows[1].Resource != audit.Repeated("Observation", flood-1) || rows[1].Address != attacker {
		t.Fatalf("after the window, %d rows counting %d (%+v), want the first and one summary of %d", len(rows), n, rows, flood-1)
	}
	// A new window: the address is heard again.
	if st, _ := dialDeviceFrom(t, f, attacker, good); st != http.StatusSwitchingProtocols {
		t.Fatalf("a good device from the address once its window closed: %d, want 101", st)
	}
}

// TestDeviceRefusalsFromManyAddresses: past the addresses it tracks, the
// server counts refusals together: the trail stays bounded and counts
// every attempt, and none of those addresses is locked out.
func TestDeviceRefusalsFromManyAddresses(t *testing.T) {
	refusalSettings(t, 15*time.Minute, 1, 16)
	clock := &testClock{t: time.Now()}
	f := newProxiedFixture(t, clock)
	const addresses = 100
	for i := range addresses {
		addr := "10.0." + strconv.Itoa(i/250) + "." + strconv.Itoa(1+i%250)
		if i%2 == 1 {
			addr = "2001:db8:" + strconv.FormatInt(int64(i), 16) + "::1"
		}
		if st, _ := dialDeviceFrom(t, f, addr, http.Header{"Authorization": {"Bearer not-a-token"}}); st != http.StatusUnauthorized {
			t.Fatalf("first refusal from %s: %d, want 401", addr, st)
		}
	}
	rows, n := deniedRows(t, f.st, "Observation")
	if len(rows) != 17 || n != 17 {
		t.Fatalf("%d rows counting %d, want 17: one per tracked address and the first of the rest", len(rows), n)
	}
	clock.add(15 * time.Minute)
	if st, _ := dialDeviceFrom(t, f, "198.51.100.9", http.Header{"Authorization": {"Bearer " + f.devToken}}); st != http.StatusSwitchingProtocols {
		t.Fatalf("good device: %d, want 101", st)
	}
	rows, n = deniedRows(t, f.st, "Observation")
	last := rows[len(rows)-1]
	if len(rows) != 18 || n != addresses || last.Address != "" || !strings.HasSuffix(last.Resource, "/repeated/83") {
		t.Fatalf("after the window, %d rows counting %d, last %+v: want 18 counting %d, the last for many addresses", len(rows), n, last, addresses)
	}
}

// TestLinkRefusalsThrottled: a dead password link, and a withdrawn guest
// link on the pages behind it, tried over and over from one address are
// audited as the first refusal and one count, and answered 429 past the
// allowance; the same routes still answer another address.
func TestLinkRefusalsThrottled(t *testing.T) {
	refusalSettings(t, 15*time.Minute, 5, 4096)
	clock := &testClock{t: time.Now()}
	f := newProxiedFixture(t, clock)
	tok, hash := auth.NewToken()
	l, err := f.st.CreateGuestLink(t.Context(), store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: store.GuestFamily,
		Name: "Sam", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour), RevokedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, addr string) int {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		req.Header.Set("X-Forwarded-For", addr)
		req.AddCookie(&http.Cookie{Name: guestCookie, Value: tok})
		resp, err := noRedirect().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatalf("GET %s: 429 without Retry-After", path)
		}
		return resp.StatusCode
	}
	const tries = 40
	for _, c := range []struct {
		path, resource string
		refused        int
	}{
		{"/account/password/not-a-link", "password-link", http.StatusGone},
		{"/guest/" + tok, guestResource(l), http.StatusGone},
		{"/guest/call", guestResource(l), http.StatusForbidden},
	} {
		before, counted := deniedRows(t, f.st, c.resource)
		statuses := map[int]int{}
		for range tries {
			statuses[get(c.path, "192.0.2.7")]++
		}
		if statuses[c.refused] != 5 || statuses[http.StatusTooManyRequests] != tries-5 {
			t.Errorf("GET %s %d times: %v, want 5 refused (%d), then 429", c.path, tries, statuses, c.refused)
		}
		if st := get(c.path, "198.51.100.9"); st != c.refused {
			t.Errorf("GET %s from another address: %d, want %d", c.path, st, c.refused)
		}
		rows, n := deniedRows(t, f.st, c.resource)
		if len(rows)-len(before) != 2 || n-counted != 2 {
			t.Errorf("GET %s: %d new rows counting %d, want one per address", c.path, len(rows)-len(before), n-counted)
		}
	}
	clock.add(15 * time.Minute)
	get("/account/password/not-a-link", "203.0.113.1") // closes the windows
	for _, c := range []struct {
		resource string
		want     int // attempts, both addresses
	}{{"password-link", tries + 1 + 1}, {guestResource(l), 2 * (tries + 1)}} {
		rows, n := deniedRows(t, f.st, c.resource)
		if n != c.want {
			t.Errorf("%s: %d rows counting %d, want %d attempts", c.resource, len(rows), n, c.want)
		}
		for _, e := range rows {
			if e.ActorRole == auditRoleGuest && (e.ActorID != f.doc.ID || e.PatientID != f.pat.ID) {
				t.Errorf("guest refusal %+v: want the issuer and the patient named", e)
			}
		}
	}
}

// TestAPITokenRefusalsThrottled: WHIP and WHEP with a bad API token from
// one address are answered 401, then 429, and recorded as the first
// refusal and a count; a request without a token is refused and not
// recorded, as any request without a credential.
func TestAPITokenRefusalsThrottled(t *testing.T) {
	refusalSettings(t, 15*time.Minute, 5, 4096)
	clock := &testClock{t: time.Now()}
	f := newProxiedFixture(t, clock)
	post := func(path, addr, token string) int {
		req, _ := http.NewRequest("POST", f.srv.URL+path, strings.NewReader("v=0\r\n"))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("X-Forwarded-For", addr)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post(fmt.Sprintf("/whip/%d", f.visit.ID), "192.0.2.8", ""); st != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", st)
	}
	statuses := map[int]int{}
	for i := range 40 {
		kind := []string{"whip", "whep"}[i%2]
		statuses[post(fmt.Sprintf("/%s/%d", kind, f.visit.ID), "192.0.2.7", "not-a-token")]++
	}
	if statuses[http.StatusUnauthorized] != 5 || statuses[http.StatusTooManyRequests] != 35 {
		t.Errorf("40 bad tokens: %v, want 5 refused (401), then 429", statuses)
	}
	if st := post(fmt.Sprintf("/whip/%d", f.visit.ID), "198.51.100.9", "not-a-token"); st != http.StatusUnauthorized {
		t.Errorf("a bad token from another address: %d, want 401", st)
	}
	rows, n := deniedRows(t, f.st, "api-token")
	if len(rows) != 2 || n != 2 {
		t.Errorf("%d rows counting %d, want the first refusal of each address (none for no token)", len(rows), n)
	}
	clock.add(15 * time.Minute)
	post(fmt.Sprintf("/whip/%d", f.visit.ID), "198.51.100.9", "")
	if rows, n := deniedRows(t, f.st, "api-token"); len(rows) != 3 || n != 41 {
		t.Errorf("after the window, %d rows counting %d, want 3 counting 41", len(rows), n)
	}
}

// TestFHIRTokenRefusalsShareTheCount: the FHIR API counts its refused
// bearer tokens in the server's table, on the route WHIP and WHEP count
// theirs, so an address guessing API tokens has one allowance across all
// three, and FHIR answers past it with 429 as an OperationOutcome.
func TestFHIRTokenRefusalsShareTheCount(t *testing.T) {
	refusalSettings(t, 15*time.Minute, 4, 4096)
	clock := &testClock{t: time.Now()}
	f := newProxiedFixture(t, clock)
	send := func(method, path, addr string) *http.Response {
		req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader("v=0\r\n"))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("X-Forwarded-For", addr)
		req.Header.Set("Authorization", "Bearer not-a-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i, path := range []string{"/fhir/Patient", fmt.Sprintf("/whip/%d", f.visit.ID), "/fhir/Appointment", fmt.Sprintf("/whep/%d", f.visit.ID)} {
		method := "GET"
		if !strings.HasPrefix(path, "/fhir/") {
			method = "POST"
		}
		if resp := send(method, path, "192.0.2.7"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token %d on %s: %d, want 401", i+1, path, resp.StatusCode)
		}
	}
	resp := send("GET", "/fhir/Patient", "192.0.2.7")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/fhir+json") {
		t.Fatalf("FHIR past the shared allowance: %d, Retry-After %q, %s; want 429 as FHIR", resp.StatusCode,
			resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	if resp := send("GET", "/fhir/Patient", "198.51.100.9"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another address: %d, want 401", resp.StatusCode)
	}
	if rows, n := deniedRows(t, f.st, "api-token"); len(rows) != 2 || n != 2 {
		t.Fatalf("%d rows counting %d, want the first refusal of each address", len(rows), n)
	}
	awaitMetric(t, f, `bedside_limit_refusals_total{limit="refused-api-token"} 1`)
}
