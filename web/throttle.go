package web

import (
	"context"
	"net/http"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/audit/refusal"
	"github.com/bedside-health/bedside/store"
)

// A tier of sign-in throttling: more than max failures within window
// blocks further attempts until the window has passed. Tiers escalate, so
// a patient guesser meets longer waits (backoff) while a person who
// mistypes a few times waits minutes at most.
type tier struct {
	window time.Duration
	max    int
}

var (
	// accountTiers limit guesses at one account from anywhere.
	accountTiers = []tier{{15 * time.Minute, 5}, {24 * time.Hour, 20}}
	// addressTiers limit guesses from one address at any accounts.
	addressTiers = []tier{{15 * time.Minute, 30}, {24 * time.Hour, 200}}
)

func accountKey(email string) string    { return "account:" + email }
func addressKey(r *http.Request) string { return "addr:" + audit.Address(r) }

// blocked reports how long sign-in for key must wait, or 0.
func (s *server) blocked(ctx context.Context, key string, tiers []tier) (time.Duration, error) {
	now := s.Now()
	var wait time.Duration
	for _, t := range tiers {
		n, err := s.Store.LoginFailures(ctx, key, now.Add(-t.window))
		if err != nil {
			return 0, err
		}
		if n >= t.max && t.window > wait {
			wait = t.window
		}
	}
	return wait, nil
}

// signInWait is how long this sign-in must wait, checking the account and
// the address; 0 lets it through.
func (s *server) signInWait(r *http.Request, email string) (time.Duration, error) {
	a, err := s.blocked(r.Context(), accountKey(email), accountTiers)
	if err != nil {
		return 0, err
	}
	b, err := s.blocked(r.Context(), addressKey(r), addressTiers)
	return max(a, b), err
}

// signInFailed counts a failure against the account and the address.
func (s *server) signInFailed(r *http.Request, email string) {
	now := s.Now()
	for _, key := range []string{accountKey(email), addressKey(r)} {
		if _, err := s.Store.RecordLoginFailure(r.Context(), key, now, now.Add(-24*time.Hour)); err != nil {
			s.Log.ErrorContext(r.Context(), "record sign-in failure", "err", err)
		}
	}
}

// waitText says a wait as people do.
func waitText(d time.Duration) string { return refusal.WaitText(d) }

// Refused attempts on the routes that take a credential of their own (a
// device token, a guest or password link, a WHIP, WHEP or FHIR API token)
// are throttled and summarised per client address by a refusal.Table,
// one per server; the FHIR API counts in the same table.
type refusals = refusal.Table

// refusalLimits are the limits of the servers made next (tests shrink
// them).
var refusalLimits = refusal.Default

// newRefusals is s's table: each 429 it causes, on a web route or the
// FHIR API, is counted in bedside_limit_refusals_total as
// refused-{route}.
func (s *server) newRefusals(write func(store.AuditEvent)) *refusals {
	q := refusal.New(refusalLimits, s.Now, write)
	q.Waited = func(route string) { s.metrics.refused.Inc("refused-" + route) }
	return q
}

// tooManyRefusals answers 429, with Retry-After, a request on route from
// an address refused too often in its window, and reports whether it did.
func (s *server) tooManyRefusals(w http.ResponseWriter, r *http.Request, route string) bool {
	d := s.refusals.Wait(route, audit.Address(r))
	if d <= 0 {
		return false
	}
	w.Header().Set("Retry-After", refusal.RetryAfter(d))
	http.Error(w, refusal.Message(d), http.StatusTooManyRequests)
	return true
}

// refuseAttempt counts a refusal of the request r on route, e being its
// audit event (its address is r's).
func (s *server) refuseAttempt(r *http.Request, route string, e store.AuditEvent) {
	e.Address = audit.Address(r)
	s.refusals.Refuse(route, e.Address, e)
}

// guestLinkRefused counts a refusal of guest link l (revoked, expired, of
// a cancelled visit, not open yet) on route: audited as denied, as the
// link's guest, the first in a window at once.
func (s *server) guestLinkRefused(r *http.Request, route string, l store.GuestLink, action string, patientID int64, resource string) {
	who := guestWho(r, l)
	s.refuseAttempt(r, route, store.AuditEvent{ActorID: who.ID, ActorRole: who.Role, Action: action,
		PatientID: patientID, Resource: resource, Outcome: audit.OutcomeDenied})
}
