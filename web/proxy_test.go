package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/bedside-health/bedside/audit"
)

func TestForwardedFor(t *testing.T) {
	s := &server{Deps: Deps{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"from a trusted proxy", "127.0.0.1:5000", []string{"203.0.113.5"}, "203.0.113.5"},
		{"through two trusted proxies", "127.0.0.1:5000", []string{"203.0.113.5, 10.1.2.3"}, "203.0.113.5"},
		{"a spoofed left-most hop is skipped", "127.0.0.1:5000", []string{"198.51.100.1, 203.0.113.5"}, "203.0.113.5"},
		{"headers joined", "127.0.0.1:5000", []string{"198.51.100.1", "203.0.113.5"}, "203.0.113.5"},
		{"an untrusted peer's header is ignored", "192.0.2.7:5000", []string{"203.0.113.5"}, "192.0.2.7"},
		{"no header", "127.0.0.1:5000", nil, "127.0.0.1"},
		{"a malformed hop", "127.0.0.1:5000", []string{"203.0.113.5, not-an-ip"}, "127.0.0.1"},
		{"only proxies", "127.0.0.1:5000", []string{"10.0.0.1"}, "127.0.0.1"},
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = c.peer
		for _, v := range c.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		var got string
		s.realClient(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = audit.Address(r) })).ServeHTTP(httptest.NewRecorder(), req)
		if got != c.want {
			t.Errorf("%s: client %s, want %s", c.name, got, c.want)
		}
	}
}

// TestSpoofedForwardedForDoesNotEvadeThrottling: a client that is not a
// trusted proxy cannot pick a fresh address per attempt.
func TestSpoofedForwardedForDoesNotEvadeThrottling(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	for i := range 30 {
		form := url.Values{"email": {fmt.Sprintf("guess%d@example.org", i)}, "password": {"wrong"}}
		req, _ := http.NewRequest("POST", f.srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}).String())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, resp.StatusCode)
		}
	}
	if _, resp := tryLogin(t, f, "doc@example.org", testPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("after 30 failures with spoofed addresses: %d, want 429", resp.StatusCode)
	}
}
