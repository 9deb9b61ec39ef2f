package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
)

func scrape(t *testing.T, f *fixture, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsCount: what users do shows in /metrics, by route pattern
// (never a path with a token in it) and outcome.
func TestMetricsCount(t *testing.T) {
	f := newFixture(t)
	c := f.signIn(t, "sched@example.org")
	getPage(t, c, f.srv.URL+"/patients")
	getPage(t, c, f.srv.URL+"/join/secret-token-value")
	for range 2 {
		tryLogin(t, f, "sched@example.org", "wrong")
	}
	big := url.Values{"name": {strings.Repeat("x", 20<<10)}}
	if st, _ := post(t, c, f.srv.URL+"/patients", big); st != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized form: %d, want 413", st)
	}
	sched, err := f.st.UserByEmail(t.Context(), "sched@example.org")
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := auth.NewToken()
	if _, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: sched.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/fhir/Appointment", strings.NewReader(`{"resourceType":"Appointment","text":"`+strings.Repeat("x", 70<<10)+`"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized FHIR body: %d, want 413", resp.StatusCode)
	}
	st, body := scrape(t, f, "")
	if st != http.StatusOK {
		t.Fatalf("metrics from loopback: %d", st)
	}
	for _, want := range []string{
		`bedside_http_requests_total{route="GET /patients",code="2xx"} 1`,
		`bedside_http_requests_total{route="GET /join/{token}",code="4xx"} 1`,
		`bedside_sign_ins_total{outcome="success"} 1`,
		`bedside_sign_ins_total{outcome="failed"} 2`,
		`bedside_limit_refusals_total{limit="body"} 2`,
		`bedside_http_requests_total{route="POST /patients",code="4xx"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "secret-token-value") {
		t.Error("a path with a token reached the metrics")
	}
}

// TestMetricsAccess: with a token, only the token reads them; without one,
// only this machine.
func TestMetricsAccess(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.MetricsToken = "scrape-me-please" })
	if st, _ := scrape(t, f, ""); st != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", st)
	}
	if st, _ := scrape(t, f, "wrong"); st != http.StatusUnauthorized {
		t.Errorf("a wrong token: %d, want 401", st)
	}
	if st, _ := scrape(t, f, "scrape-me-please"); st != http.StatusOK {
		t.Errorf("the token: %d, want 200", st)
	}
	// No token configured: a caller from elsewhere is refused.
	h := NewServer(Deps{Store: f.st})
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "203.0.113.9:4444"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Errorf("from another machine without a token: %d, want 403", w.Code)
	}
}
