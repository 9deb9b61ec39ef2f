package alert

import (
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Severity is how urgently an alert asks for attention.
type Severity int

// The severities, least urgent first.
const (
	Info      Severity = iota // for the record: a NEWS2 band went down
	Warning                   // a physician-set threshold
	Urgent                    // a NEWS2 parameter scoring 3; band low-medium or medium
	Emergency                 // NEWS2 band high
)

var severityNames = [...]string{"info", "warning", "urgent", "emergency"}

// String is the severity's wire name, such as "urgent".
func (s Severity) String() string {
	if s < Info || s > Emergency {
		return "severity(" + strconv.Itoa(int(s)) + ")"
	}
	return severityNames[s]
}

// MarshalText writes the severity's wire name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Rule names the rule an alert comes from.
type Rule string

// The rules.
const (
	RuleParameter Rule = "news2-parameter" // a single NEWS2 parameter scoring 3
	RuleBand      Rule = "news2-band"      // the NEWS2 band changed
	RuleThreshold Rule = "threshold"       // a physician-set threshold
)

// Ack records who acknowledged an alert, and when.
type Ack struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// Alert is one raised alert. Value is the patient's value that triggered
// it: for the live view only, never logged (see LogValue).
type Alert struct {
	ID        string // unique per patient: the rule's key and the raised time
	Rule      Rule
	Severity  Severity
	Title     string   // in words, without the patient's value: "Heart rate above 120 /min"
	Code      string   // LOINC code, for a threshold or a measured parameter
	Param     string   // NEWS2 parameter, for a parameter alert
	Direction string   // "low" or "high" (threshold), "up" or "down" (band)
	Limit     *float64 // the threshold crossed
	Band      string   // the NEWS2 band reached, for a band alert
	Value     *float64 // what triggered it: a reading, or the NEWS2 total
	Raised    time.Time
	Cleared   time.Time // zero while active
	Ack       *Ack      // nil until acknowledged
}

// Active reports whether the alert is raised and not cleared.
func (a Alert) Active() bool { return a.Cleared.IsZero() }

// LogValue lets an Alert be logged without its value or title.
func (a Alert) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.ID), slog.String("rule", string(a.Rule)), slog.String("severity", a.Severity.String()))
}

// ErrUnknownAlert reports an acknowledgement of an alert the board does
// not hold (never raised, or cleared long ago).
var ErrUnknownAlert = errors.New("no such alert")

// Board keeps one patient's alerts: the active ones by rule key (one per
// key at a time), and the most recently cleared. It is not safe for
// concurrent use.
type Board struct {
	// Keep is how many cleared alerts are remembered, for late
	// acknowledgements (default 64).
	Keep   int
	active []*entry
	recent []Alert // cleared, oldest first
}

type entry struct {
	key       string
	alert     Alert
	announced time.Time // last raised or reminded
}

// Raise records a raised at now under key and returns it with its ID and
// Raised set. If key already has an active alert, that one is returned
// unchanged and ok is false.
func (b *Board) Raise(now time.Time, key string, a Alert) (out Alert, ok bool) {
	if e := b.find(key); e != nil {
		return e.alert, false
	}
	a.ID = key + "@" + strconv.FormatInt(now.UnixMilli(), 10)
	a.Raised, a.Cleared, a.Ack = now, time.Time{}, nil
	b.active = append(b.active, &entry{key: key, alert: a, announced: now})
	return a, true
}

// Notice records an alert that is over as it is raised (a NEWS2 band
// going down, for information) and returns it.
func (b *Board) Notice(now time.Time, key string, a Alert) Alert {
	a.ID = key + "@" + strconv.FormatInt(now.UnixMilli(), 10)
	a.Raised, a.Cleared, a.Ack = now, now, nil
	b.remember(a)
	return a
}

// Clear ends key's active alert at now and returns it; ok is false if key
// has none.
func (b *Board) Clear(now time.Time, key string) (Alert, bool) {
	i := slices.IndexFunc(b.active, func(e *entry) bool { return e.key == key })
	if i < 0 {
		return Alert{}, false
	}
	a := b.active[i].alert
	a.Cleared = now
	b.active = slices.Delete(b.active, i, i+1)
	b.remember(a)
	return a, true
}

// ClearPrefix ends, at now, every active alert whose key starts with
// prefix, and returns them.
func (b *Board) ClearPrefix(now time.Time, prefix string) []Alert {
	var out []Alert
	for _, e := range slices.Clone(b.active) {
		if strings.HasPrefix(e.key, prefix) {
			a, _ := b.Clear(now, e.key)
			out = append(out, a)
		}
	}
	return out
}

// Get returns key's active alert.
func (b *Board) Get(key string) (Alert, bool) {
	if e := b.find(key); e != nil {
		return e.alert, true
	}
	return Alert{}, false
}

// Active lists the active alerts, oldest first.
func (b *Board) Active() []Alert {
	out := make([]Alert, len(b.active))
	for i, e := range b.active {
		out[i] = e.alert
	}
	return out
}

// Acknowledge records that by acknowledged alert id at at. Acknowledging
// does not clear an alert: its condition is still what it is, but it is no
// longer re-announced. The first acknowledgement stands: a second returns
// the alert with first false. A cleared alert can still be acknowledged
// while the board remembers it.
func (b *Board) Acknowledge(id, by string, at time.Time) (a Alert, first bool, err error) {
	for _, e := range b.active {
		if e.alert.ID == id {
			first = e.alert.Ack == nil
			if first {
				e.alert.Ack = &Ack{By: by, At: at}
			}
			return e.alert, first, nil
		}
	}
	for i := len(b.recent) - 1; i >= 0; i-- {
		if r := &b.recent[i]; r.ID == id {
			first = r.Ack == nil
			if first {
				r.Ack = &Ack{By: by, At: at}
			}
			return *r, first, nil
		}
	}
	return Alert{}, false, ErrUnknownAlert
}

// Reminders returns the active, unacknowledged alerts of severity Warning
// or above last announced at least every ago, and marks them announced at
// now.
func (b *Board) Reminders(now time.Time, every time.Duration) []Alert {
	var out []Alert
	for _, e := range b.active {
		if e.alert.Ack == nil && e.alert.Severity >= Warning && now.Sub(e.announced) >= every {
			e.announced = now
			out = append(out, e.alert)
		}
	}
	return out
}

func (b *Board) find(key string) *entry {
	for _, e := range b.active {
		if e.key == key {
			return e
		}
	}
	return nil
}

func (b *Board) remember(a Alert) {
	keep := b.Keep
	if keep <= 0 {
		keep = 64
	}
	if len(b.recent) >= keep {
		b.recent = slices.Delete(b.recent, 0, len(b.recent)-keep+1)
	}
	b.recent = append(b.recent, a)
}
