package fhir

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/audit/refusal"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// tokenRows are the audit trail's refused API tokens (and their
// summaries), and the attempts they count in all.
func tokenRows(t *testing.T, st store.Store) (rows []store.AuditEvent, attempts int) {
	t.Helper()
	events, _, err := st.AuditEvents(t.Context(), store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if first, n := audit.RepeatCount(e.Resource); first == tokenRoute {
			rows = append(rows, e)
			attempts += max(n, 1)
		}
	}
	return rows, attempts
}

// TestTokenRefusalsThrottled: a flood of unknown, expired and revoked
// bearer tokens from one address, on reads and on POST /Observation, is
// answered 401 up to the allowance and 429 with Retry-After past it, and
// is audited as its first refusal and, once the window closes, one row
// with the count of the rest; a good token from another address is
// answered throughout, and a request with no token is not recorded.
func TestTokenRefusalsThrottled(t *testing.T) {
	f := newFixture(t)
	clk := &clock{t: now}
	rec := &audit.Recorder{Store: f.st, Now: clk.now}
	const allow = 10
	q := refusal.New(refusal.Limits{Window: 15 * time.Minute, Allow: allow, Addresses: 4096, Events: 8}, clk.now,
		func(e store.AuditEvent) { rec.Record(context.Background(), e) })
	h := NewHandler(Deps{Store: f.st, Now: clk.now, Audit: rec, Refusals: q})
	serve := func(method, path, addr, token string) *httptest.ResponseRecorder {
		var body *strings.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"resourceType":"Observation"}`)
		} else {
			body = strings.NewReader("")
		}
		r := httptest.NewRequest(method, path, body)
		r.RemoteAddr = addr + ":40000"
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	expired := f.token(t, f.ada.ID, now.Add(-time.Minute))
	revokedTok, hash := auth.NewToken()
	cred, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: f.ada.ID,
		CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.RevokeCredential(t.Context(), cred.ID, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	good := f.tokens["patient"]
	own := "/Patient/" + strconv.FormatInt(f.ada.ID, 10)

	for range 5 {
		if w := serve("GET", own, "192.0.2.99", ""); w.Code != http.StatusUnauthorized {
			t.Fatalf("no token: %d, want 401", w.Code)
		}
	}
	if rows, _ := tokenRows(t, f.st); len(rows) != 0 {
		t.Fatalf("requests without a token were recorded: %+v", rows)
	}

	const flood, attacker = 200, "192.0.2.7"
	bad := []string{"not-a-token", expired, revokedTok, good + "x"}
	statuses := map[int]int{}
	for i := range flood {
		method, path := "GET", own
		if i%5 == 0 {
			method, path = "POST", "/Observation" // takes device tokens too
		}
		w := serve(method, path, attacker, bad[i%len(bad)])
		statuses[w.Code]++
		if w.Code == http.StatusTooManyRequests {
			if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra <= 0 || ra > 15*60 {
				t.Fatalf("429 with Retry-After %q, want seconds up to the window", w.Header().Get("Retry-After"))
			}
			var o OperationOutcome
			if err := json.Unmarshal(w.Body.Bytes(), &o); err != nil || len(o.Issue) != 1 || o.Issue[0].Code != codeThrottled {
				t.Fatalf("429 body %s, want an OperationOutcome of code throttled", w.Body)
			}
		}
		if i == flood/2 {
			if w := serve("GET", own, "198.51.100.9", good); w.Code != http.StatusOK {
				t.Fatalf("a good token from another address during the flood: %d %s, want 200", w.Code, w.Body)
			}
		}
	}
	if statuses[http.StatusUnauthorized] != allow || statuses[http.StatusTooManyRequests] != flood-allow {
		t.Fatalf("statuses %v: want %d refused (401), then the rest 429", statuses, allow)
	}
	rows, n := tokenRows(t, f.st)
	if len(rows) != 1 || n != 1 || rows[0].Address != attacker || rows[0].ActorRole != audit.RoleAnonymous ||
		rows[0].Action != audit.ActionLogin || rows[0].Outcome != audit.OutcomeFailed {
		t.Fatalf("during the window, %d rows counting %d (%+v), want the first refusal only", len(rows), n, rows)
	}

	clk.add(15 * time.Minute)
	if w := serve("GET", own, "198.51.100.9", good); w.Code != http.StatusOK {
		t.Fatalf("good token after the window: %d, want 200", w.Code)
	}
	rows, n = tokenRows(t, f.st)
	if len(rows) != 2 || n != flood || rows[1].Resource != audit.Repeated(tokenRoute, flood-1) || rows[1].Address != attacker {
		t.Fatalf("after the window, %d rows counting %d (%+v), want the first and one summary of %d", len(rows), n, rows, flood-1)
	}
	if w := serve("GET", own, attacker, good); w.Code != http.StatusOK {
		t.Fatalf("a good token from the address once its window closed: %d, want 200", w.Code)
	}
}
