// Package refusal counts the refused attempts of clients that present a
// credential of their own (a device token, a guest or password link, an
// API token), per route and client address, in memory, so that a client
// hammering a route with a bad credential fills neither the audit trail
// nor the database:
//
//   - the first refusal of an address on a route in a window is written to
//     the audit trail at once (and the first of each other event, such as
//     another dead guest link, up to Limits.Events of them);
//   - the rest are counted, and when the window closes one row per event
//     says how many more there were (audit.Repeated: "Observation/repeated/56");
//   - after Limits.Allow refusals in its window, the address is to be
//     answered 429 with Retry-After on that route until the window closes,
//     before its credential is even looked up (and those attempts are
//     counted too).
//
// At most Limits.Addresses (route, address) pairs are tracked; refusals
// from addresses beyond them share one count per route (summarised
// without an address) and are never told to wait, so a flood from many
// addresses neither grows the memory nor locks out a good client it does
// not share an address with. IPv6 addresses count by their /64, which one
// client can hold all of.
package refusal

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// Limits are a Table's window and bounds.
type Limits struct {
	Window    time.Duration // how long a count lasts
	Allow     int           // refusals in a window before the address waits
	Addresses int           // (route, address) pairs tracked
	Events    int           // distinct events kept per pair
}

// Default are the limits a server uses.
var Default = Limits{Window: 15 * time.Minute, Allow: 30, Addresses: 4096, Events: 8}

// Table is one node's count of refused attempts; see the package comment.
// Its methods are safe for concurrent use.
type Table struct {
	Limits
	// Waited, if set, is told the route of each attempt Wait tells to
	// wait, whichever surface answers it (for a metric). Set it before
	// the table is used.
	Waited func(route string)

	now   func() time.Time
	write func(store.AuditEvent) // appends to the audit trail

	mu    sync.Mutex
	pairs map[key]*count
	// spill counts, per route, the refusals of addresses beyond Addresses.
	spill map[string]*count
	// next is when the earliest window closes; zero if none is open.
	next  time.Time
	timer *time.Timer
}

type key struct{ route, addr string }

// count is one address's (or the spill's) refusals on one route in the
// window from start.
type count struct {
	start  time.Time
	n      int // refusals in the window, waits included
	events []repeated
	others int // refusals of further distinct events, beyond the kept ones
}

// repeated is a refusal written to the trail, and how many more like it
// came after it in the window.
type repeated struct {
	e    store.AuditEvent
	more int
}

// New returns an empty table with limits l, on the clock now, writing to
// the audit trail with write.
func New(l Limits, now func() time.Time, write func(store.AuditEvent)) *Table {
	return &Table{Limits: l, now: now, write: write, pairs: map[key]*count{}, spill: map[string]*count{}}
}

// Address is the part of a client address refusals count by: the
// address, or an IPv6 address's /64.
func Address(addr string) string {
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

// Wait is how long addr must wait before route hears it again: 0, or,
// once it has been refused Allow times in its window, the rest of the
// window. A wait counts as one more refusal of the address's first event.
func (q *Table) Wait(route, addr string) time.Duration {
	now := q.now()
	q.mu.Lock()
	out := q.closeWindows(now, nil)
	var d time.Duration
	if c := q.pairs[key{route, Address(addr)}]; c != nil && c.n >= q.Allow {
		c.n++
		c.events[0].more++
		d = c.start.Add(q.Window).Sub(now)
	}
	q.mu.Unlock()
	q.writeAll(out)
	if d > 0 && q.Waited != nil {
		q.Waited(route)
	}
	return d
}

// Refuse counts a refusal of addr on route, e being its audit event: the
// trail gets e now if it is the first of its kind in the window, else a
// count in the window's summary.
func (q *Table) Refuse(route, addr string, e store.AuditEvent) {
	now := q.now()
	q.mu.Lock()
	out := q.closeWindows(now, nil)
	k := key{route, Address(addr)}
	c := q.pairs[k]
	if c == nil {
		c = q.spill[route]
		if len(q.pairs) < q.Addresses {
			c = &count{start: now}
			q.pairs[k] = c
			q.arm(now)
		} else if c == nil {
			c = &count{start: now}
			q.spill[route] = c
			q.arm(now)
		}
	}
	c.n++
	out = c.add(e, q.Events, out)
	q.mu.Unlock()
	q.writeAll(out)
}

// add counts e, appending it to out if it is the first like it.
func (c *count) add(e store.AuditEvent, keep int, out []store.AuditEvent) []store.AuditEvent {
	for i := range c.events {
		if same(c.events[i].e, e) {
			c.events[i].more++
			return out
		}
	}
	if len(c.events) < keep {
		c.events = append(c.events, repeated{e: e})
		return append(out, e)
	}
	c.others++
	return out
}

// same reports whether a and b are the same refusal, but for when and
// from which address of a counted range.
func same(a, b store.AuditEvent) bool {
	return a.ActorID == b.ActorID && a.ActorRole == b.ActorRole && a.Action == b.Action &&
		a.PatientID == b.PatientID && a.Resource == b.Resource && a.Outcome == b.Outcome
}

// summaries are c's rows for the trail as its window closes; spilled ones
// name no address, being from many.
func (c *count) summaries(spilled bool, out []store.AuditEvent) []store.AuditEvent {
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
func (q *Table) closeWindows(now time.Time, out []store.AuditEvent) []store.AuditEvent {
	if q.next.IsZero() || now.Before(q.next) {
		return out
	}
	q.next = time.Time{}
	closeIn := func(c *count) bool {
		end := c.start.Add(q.Window)
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
func (q *Table) arm(start time.Time) {
	end := start.Add(q.Window)
	if !q.next.IsZero() && !end.Before(q.next) {
		return
	}
	q.next = end
	q.rearm(q.now())
}

// rearm sets the timer for q.next; q.mu is held.
func (q *Table) rearm(now time.Time) {
	if q.next.IsZero() {
		return
	}
	d := max(q.next.Sub(now), time.Second)
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.Flush)
		return
	}
	q.timer.Reset(d)
}

// Flush writes the summaries of the windows that have closed: a timer
// calls it, so that a flood's count is written once it stops.
func (q *Table) Flush() {
	q.mu.Lock()
	out := q.closeWindows(q.now(), nil)
	q.mu.Unlock()
	q.writeAll(out)
}

func (q *Table) writeAll(out []store.AuditEvent) {
	for _, e := range out {
		q.write(e)
	}
}

// Tracked is how many (route, address) pairs and spilled routes are held.
func (q *Table) Tracked() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pairs) + len(q.spill)
}

// RetryAfter is the Retry-After header of a wait d: whole seconds,
// rounded up.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

// Message tells a client that waits d why and for how long.
func Message(d time.Duration) string {
	return "too many refused attempts from your address: try again in " + WaitText(max(d, time.Minute))
}

// WaitText says a wait as people do.
func WaitText(d time.Duration) string {
	if d >= 2*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour)/time.Hour))
	}
	if m := int(d.Round(time.Minute) / time.Minute); m != 1 {
		return fmt.Sprintf("%d minutes", m)
	}
	return "1 minute"
}
