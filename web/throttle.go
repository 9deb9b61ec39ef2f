package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
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

// clientAddress is the address a request came from (the proxy's, behind
// a reverse proxy).
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func accountKey(email string) string    { return "account:" + email }
func addressKey(r *http.Request) string { return "addr:" + clientAddress(r) }

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
func waitText(d time.Duration) string {
	if d >= 2*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour)/time.Hour))
	}
	return fmt.Sprintf("%d minutes", int(d.Round(time.Minute)/time.Minute))
}
