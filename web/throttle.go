package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bedside-health/bedside/audit"
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
	if m := int(d.Round(time.Minute) / time.Minute); m != 1 {
		return fmt.Sprintf("%d minutes", m)
	}
	return "1 minute"
}

// Refused attempts on the routes that take a credential of their own (a
// device token, a guest or password link, a WHIP or WHEP API token) are
// throttled and summarised
// per client address, in memory, so that a client hammering one with a
// bad credential fills neither the audit trail nor the database:
//
//   - the first refusal of an address on a route in a window is written to
//     the audit trail at once (and the first of each other event, such as
//     another dead guest link, up to refusalEvents of them);
//   - the rest are counted, and when the window closes one row per event
//     says how many more there were (audit.Repeated: "Observation/repeated/56");
//   - after refusalAllow refusals in its window, the address is answered
//     429 with Retry-After on that route until the window closes, before
//     its credential is even looked up (and those attempts are counted
//     too).
//
// At most refusalAddresses (route, address) pairs are tracked; refusals
// from addresses beyond them share one count per route (summarised
// without an address) and are not answered 429, so a flood from many
// addresses neither grows the memory nor locks out a good client it does
// not share an address with. IPv6 addresses count by their /64, which one
// client can hold all of.
var (
	refusalWindow    = 15 * time.Minute
	refusalAllow     = 30
	refusalAddresses = 4096
	refusalEvents    = 8
)

// refusals is a server's count of refused attempts; see refusalWindow.
type refusals struct {
	now    func() time.Time
	write  func(store.AuditEvent) // appends to the audit trail
	window time.Duration
	allow  int
	max    int // (route, address) pairs tracked
	events int // distinct events kept per pair

	mu    sync.Mutex
	pairs map[refusalKey]*refusalCount
	// spill counts, per route, the refusals of addresses beyond max.
	spill map[string]*refusalCount
	// next is when the earliest window closes; zero if none is open.
	next  time.Time
	timer *time.Timer
}

type refusalKey struct{ route, addr string }

// refusalCount is one address's (or the spill's) refusals on one route in
// the window from start.
type refusalCount struct {
	start  time.Time
	n      int // refusals in the window, 429s included
	events []repeatedEvent
	others int // refusals of further distinct events, beyond the kept ones
}

// repeatedEvent is a refusal written to the trail, and how many more like
// it came after it in the window.
type repeatedEvent struct {
	e    store.AuditEvent
	more int
}

func newRefusals(now func() time.Time, write func(store.AuditEvent)) *refusals {
	return &refusals{now: now, write: write, window: refusalWindow, allow: refusalAllow,
		max: refusalAddresses, events: refusalEvents,
		pairs: map[refusalKey]*refusalCount{}, spill: map[string]*refusalCount{}}
}

// refusalAddress is the part of a client address refusals count by: the
// address, or an IPv6 address's /64.
func refusalAddress(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// wait is how long addr must wait before route hears it again: 0, or,
// once it has been refused allow times in its window, the rest of the
// window. A wait counts as one more refusal of the address's first event.
func (q *refusals) wait(route, addr string) time.Duration {
	now := q.now()
	q.mu.Lock()
	out := q.closeWindows(now, nil)
	var d time.Duration
	if c := q.pairs[refusalKey{route, refusalAddress(addr)}]; c != nil && c.n >= q.allow {
		c.n++
		c.events[0].more++
		d = c.start.Add(q.window).Sub(now)
	}
	q.mu.Unlock()
	q.writeAll(out)
	return d
}

// refuse counts a refusal of addr on route, e being its audit event: the
// trail gets e now if it is the first of its kind in the window, else a
// count in the window's summary.
func (q *refusals) refuse(route, addr string, e store.AuditEvent) {
	now := q.now()
	q.mu.Lock()
	out := q.closeWindows(now, nil)
	key := refusalKey{route, refusalAddress(addr)}
	c := q.pairs[key]
	if c == nil {
		c = q.spill[route]
		if len(q.pairs) < q.max {
			c = &refusalCount{start: now}
			q.pairs[key] = c
			q.arm(now)
		} else if c == nil {
			c = &refusalCount{start: now}
			q.spill[route] = c
			q.arm(now)
		}
	}
	c.n++
	out = c.add(e, q.events, out)
	q.mu.Unlock()
	q.writeAll(out)
}

// add counts e, appending it to out if it is the first like it.
func (c *refusalCount) add(e store.AuditEvent, keep int, out []store.AuditEvent) []store.AuditEvent {
	for i := range c.events {
		if sameRefusal(c.events[i].e, e) {
			c.events[i].more++
			return out
		}
	}
	if len(c.events) < keep {
		c.events = append(c.events, repeatedEvent{e: e})
		return append(out, e)
	}
	c.others++
	return out
}

// sameRefusal reports whether a and b are the same refusal, but for when
// and from which address of a counted range.
func sameRefusal(a, b store.AuditEvent) bool {
	return a.ActorID == b.ActorID && a.ActorRole == b.ActorRole && a.Action == b.Action &&
		a.PatientID == b.PatientID && a.Resource == b.Resource && a.Outcome == b.Outcome
}

// summaries are c's rows for the trail as its window closes; spilled ones
// name no address, being from many.
func (c *refusalCount) summaries(spilled bool, out []store.AuditEvent) []store.AuditEvent {
	for _, r := range c.events {
		if r.more == 0 {
			continue
		}
		e := r.e
		e.At, e.Resource = time.Time{}, audit.Repeated(e.Resource, r.more)
		if spilled {
			e.Address = ""
		}
		out = append(out, e)
	}
	if c.others > 0 {
		// Several actors and patients: the row names the kind only.
		first := c.events[0].e
		kind, _, _ := strings.Cut(first.Resource, "/")
		e := store.AuditEvent{ActorRole: audit.RoleAnonymous, Action: first.Action, Outcome: first.Outcome,
			Resource: audit.Repeated(kind, c.others)}
		if !spilled {
			e.Address = first.Address
		}
		out = append(out, e)
	}
	return out
}

// closeWindows ends the windows closed by now, appending their summaries
// to out; q.mu is held. It scans the table only once the earliest window
// has closed (a few microseconds for a full table).
func (q *refusals) closeWindows(now time.Time, out []store.AuditEvent) []store.AuditEvent {
	if q.next.IsZero() || now.Before(q.next) {
		return out
	}
	q.next = time.Time{}
	closeIn := func(c *refusalCount) bool {
		end := c.start.Add(q.window)
		if now.Before(end) {
			if q.next.IsZero() || end.Before(q.next) {
				q.next = end
			}
			return false
		}
		return true
	}
	for k, c := range q.pairs {
		if closeIn(c) {
			out = c.summaries(false, out)
			delete(q.pairs, k)
		}
	}
	for k, c := range q.spill {
		if closeIn(c) {
			out = c.summaries(true, out)
			delete(q.spill, k)
		}
	}
	q.rearm(now)
	return out
}

// arm makes sure a window opened at start is closed on time; q.mu is held.
func (q *refusals) arm(start time.Time) {
	end := start.Add(q.window)
	if !q.next.IsZero() && !end.Before(q.next) {
		return
	}
	q.next = end
	q.rearm(q.now())
}

// rearm sets the timer for q.next; q.mu is held.
func (q *refusals) rearm(now time.Time) {
	if q.next.IsZero() {
		return
	}
	d := max(q.next.Sub(now), time.Second)
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.flush)
		return
	}
	q.timer.Reset(d)
}

// flush writes the summaries of the windows that have closed: the
// timer's, so that a flood's count is written once it stops.
func (q *refusals) flush() {
	q.mu.Lock()
	out := q.closeWindows(q.now(), nil)
	q.mu.Unlock()
	q.writeAll(out)
}

func (q *refusals) writeAll(out []store.AuditEvent) {
	for _, e := range out {
		q.write(e)
	}
}

// tracked is how many (route, address) pairs and spilled routes are held.
func (q *refusals) tracked() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pairs) + len(q.spill)
}

// tooManyRefusals answers 429, with Retry-After, a request on route from
// an address refused too often in its window, and reports whether it did.
func (s *server) tooManyRefusals(w http.ResponseWriter, r *http.Request, route string) bool {
	d := s.refusals.wait(route, audit.Address(r))
	if d <= 0 {
		return false
	}
	s.metrics.refused.Inc("refused-" + route)
	secs := int((d + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	http.Error(w, fmt.Sprintf("too many refused attempts from your address: try again in %s", waitText(max(d, time.Minute))), http.StatusTooManyRequests)
	return true
}

// refuseAttempt counts a refusal of the request r on route, e being its
// audit event (its address is r's).
func (s *server) refuseAttempt(r *http.Request, route string, e store.AuditEvent) {
	e.Address = audit.Address(r)
	s.refusals.refuse(route, e.Address, e)
}

// guestLinkRefused counts a refusal of guest link l (revoked, expired, of
// a cancelled visit, not open yet) on route: audited as denied, as the
// link's guest, the first in a window at once.
func (s *server) guestLinkRefused(r *http.Request, route string, l store.GuestLink, action string, patientID int64, resource string) {
	who := guestWho(r, l)
	s.refuseAttempt(r, route, store.AuditEvent{ActorID: who.ID, ActorRole: who.Role, Action: action,
		PatientID: patientID, Resource: resource, Outcome: audit.OutcomeDenied})
}
