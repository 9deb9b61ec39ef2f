package monitor

import (
	"errors"
	"fmt"
	"time"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/news2"
)

// Config tunes a Monitor. Zero values take the defaults.
type Config struct {
	// Freshness overrides how long a reading of a code stays current
	// (vitals.DefaultFreshness).
	Freshness vitals.Freshness
	// EnteredFor is how long a clinician's entry stays current (default
	// 1 h, NEWS2's most frequent routine observation interval).
	EnteredFor time.Duration
	// BandHold is how long a new NEWS2 band must hold, on complete scores,
	// before its alert is raised or it is announced as lower (default 30 s).
	BandHold time.Duration
	// Remind is how often an active alert nobody has acknowledged is
	// announced again (default 2 min).
	Remind time.Duration
}

// Defaults of Config.
const (
	DefaultEnteredFor = time.Hour
	DefaultBandHold   = 30 * time.Second
	DefaultRemind     = 2 * time.Minute
)

// paramCode is the LOINC code a device measures each NEWS2 parameter by;
// "" for those only a clinician enters.
var paramCode = [news2.NumParams]string{
	news2.RespirationRate: vitals.CodeRespRate,
	news2.SpO2:            vitals.CodeSpO2,
	news2.SystolicBP:      vitals.CodeSystolic,
	news2.Pulse:           vitals.CodeHeartRate,
	news2.Temperature:     vitals.CodeTemperature,
}

// paramOf is the NEWS2 parameter a canonical code measures.
func paramOf(code string) (news2.Param, bool) {
	for p, c := range paramCode {
		if c != "" && c == code {
			return news2.Param(p), true
		}
	}
	return 0, false
}

// reading is a parameter's latest sound reading.
type reading struct {
	v        float64
	at       instant // when measured
	ref      instant // freshness counts from here: at, or the time it arrived if at is later
	ok       bool
	doubtful bool // readings newer than it were doubtful
}

// entry is a clinician's entry for a parameter.
type entry struct {
	v     float64
	at    instant // when entered; freshness counts from here
	ok    bool
	stale bool // as last announced
}

// slot is one NEWS2 parameter's inputs.
type slot struct {
	measured reading
	entered  entry
}

// codeState is one measurement's display freshness.
type codeState struct {
	code   string
	window time.Duration
	last   instant // freshness reference of the latest reading, sound or not
	stale  bool    // as last announced
}

// Monitor watches one patient. It is not safe for concurrent use: feed it
// from one goroutine.
//
// A server holds one for each patient it watches, for as long as it runs,
// so it is kept small (1,216 bytes, where time.Time fields made it 2,480):
// times are instants, and the signature of the last NEWS2Event holds the
// score in bytes.
type Monitor struct {
	cfg     Config
	window  [news2.NumParams]time.Duration // each measured parameter's staleness window
	params  [news2.NumParams]slot
	red     [news2.NumParams]alert.Hysteresis
	codes   []codeState
	watches []*watch
	board   alert.Board
	score   news2.Score
	last    signature // of the last NEWS2Event
	scale2  bool
	sent    bool                    // a NEWS2Event was emitted
	band    news2.Band              // as last announced
	atLeast [news2.High + 1]instant // since when complete scores have been at or above each band; never if not
	atMost  [news2.High + 1]instant // at or below
}

// watch is a threshold with the time of the last reading it took.
type watch struct {
	*alert.Watch
	lastAt time.Time
}

// New returns a Monitor for one patient.
func New(cfg Config) *Monitor {
	if cfg.EnteredFor <= 0 {
		cfg.EnteredFor = DefaultEnteredFor
	}
	if cfg.BandHold <= 0 {
		cfg.BandHold = DefaultBandHold
	}
	if cfg.Remind <= 0 {
		cfg.Remind = DefaultRemind
	}
	m := &Monitor{cfg: cfg}
	for p, code := range paramCode {
		if code != "" {
			m.window[p] = cfg.Freshness.StaleAfter(code)
		}
	}
	m.score = news2.Compute(news2.Inputs{})
	for b := range m.atLeast {
		m.atLeast[b], m.atMost[b] = never, never
	}
	return m
}

// Score is the current NEWS2.
func (m *Monitor) Score() news2.Score { return m.score }

// Alerts lists the active alerts, oldest first.
func (m *Monitor) Alerts() []alert.Alert { return m.board.Active() }

// Observe takes one validated reading, arriving at now, and returns what
// changed. Readings older than the latest of their code do not replace it.
func (m *Monitor) Observe(now time.Time, r vitals.Reading) []Event {
	code := vitals.Canonical(r.Code)
	window := m.cfg.Freshness.StaleAfter(code)
	if window <= 0 {
		return nil // not a measurement Bedside keeps
	}
	rAt, ref := instantOf(r.Time), instantOf(now)
	if rAt < ref {
		ref = rAt // else a device clock ahead of ours: fresh from arrival, not longer
	}
	var evs []Event
	cs := m.codeState(code, window)
	if ref > cs.last {
		cs.last = ref
	}
	evs = m.checkCode(evs, now, cs)

	doubtful := r.Doubtful()
	p, isParam := paramOf(code)
	if isParam {
		s := &m.params[p]
		switch {
		case s.measured.ok && ref < s.measured.ref:
			isParam = false // an older reading: NEWS2 keeps the newer one
		case doubtful:
			s.measured.doubtful = true
		default:
			s.measured = reading{v: r.Value, at: rAt, ref: ref, ok: true}
		}
	}
	evs = m.rescore(evs, now)
	if isParam && !doubtful && m.selected(p, now) == fromMeasured {
		evs = m.checkRed(evs, now, p, r.Time, alert.DefaultPersistence(code), alert.DefaultMargin(code))
	}
	if !doubtful {
		evs = m.checkThresholds(evs, now, code, r)
	}
	return m.checkBand(evs, now)
}

// Tick lets time pass: inputs go stale, a new NEWS2 band is announced once
// it has held, and unacknowledged alerts are announced again. Call it
// about once a second.
func (m *Monitor) Tick(now time.Time) []Event {
	var evs []Event
	for i := range m.codes {
		evs = m.checkCode(evs, now, &m.codes[i])
	}
	for p := range m.params {
		evs = m.checkEntered(evs, now, news2.Param(p))
	}
	evs = m.rescore(evs, now)
	evs = m.checkBand(evs, now)
	for _, a := range m.board.Reminders(now, m.cfg.Remind) {
		evs = append(evs, alertEvent("reminder", a))
	}
	return evs
}

// SetScale2 turns SpO2 scale 2 on or off: a clinician's choice for a
// patient with hypercapnic respiratory failure and a target of 88-92 %.
func (m *Monitor) SetScale2(now time.Time, on bool) []Event {
	m.scale2 = on
	evs := m.rescore(nil, now)
	evs = m.settleRed(evs, now, news2.SpO2)
	return m.checkBand(evs, now)
}

// SetOxygen enters whether the patient breathes air or supplemental
// oxygen.
func (m *Monitor) SetOxygen(now time.Time, oxygen bool) []Event {
	v := float64(news2.OnAir)
	if oxygen {
		v = news2.OnOxygen
	}
	return m.enter(now, news2.AirOrOxygen, v)
}

// SetConsciousness enters the patient's level of consciousness (ACVPU).
func (m *Monitor) SetConsciousness(now time.Time, level news2.Level) ([]Event, error) {
	if _, err := level.MarshalText(); err != nil {
		return nil, fmt.Errorf("consciousness: %w", err)
	}
	return m.enter(now, news2.Consciousness, float64(level)), nil
}

// EnterValue enters a value a clinician measured (a counted respiration
// rate, a manual blood pressure) for the NEWS2 parameter code measures, in
// the code's stored unit. It counts for NEWS2 until a newer reading comes;
// thresholds watch devices only.
func (m *Monitor) EnterValue(now time.Time, code string, v float64) ([]Event, error) {
	code = vitals.Canonical(code)
	p, ok := paramOf(code)
	if !ok {
		return nil, fmt.Errorf("code: %q is not a measurement NEWS2 scores (want %s, %s, %s, %s or %s)", code,
			vitals.CodeRespRate, vitals.CodeSpO2, vitals.CodeSystolic, vitals.CodeHeartRate, vitals.CodeTemperature)
	}
	if !vitals.Plausible(code, v) {
		unit, _ := vitals.Unit(code)
		return nil, fmt.Errorf("value: %v %s is not a possible %s", v, unit, vitals.Name(code))
	}
	return m.enter(now, p, v), nil
}

// ErrNotEntered reports clearing an entry that was never made.
var ErrNotEntered = errors.New("nothing entered")

// ClearEntry withdraws the clinician's entry for p, such as one made in
// error. An alert that rested on it clears.
func (m *Monitor) ClearEntry(now time.Time, p news2.Param) ([]Event, error) {
	if p < 0 || p >= news2.NumParams || !m.params[p].entered.ok {
		return nil, fmt.Errorf("%s: %w", p, ErrNotEntered)
	}
	m.params[p].entered = entry{}
	evs := m.rescore(nil, now)
	evs = m.settleRed(evs, now, p)
	return m.checkBand(evs, now), nil
}

func (m *Monitor) enter(now time.Time, p news2.Param, v float64) []Event {
	s := &m.params[p]
	var evs []Event
	if s.entered.stale {
		evs = append(evs, StaleEvent{Type: "stale", Param: p.String(), Stale: false, Last: now, Time: now})
	}
	s.entered = entry{v: v, at: instantOf(now), ok: true}
	evs = m.rescore(evs, now)
	evs = m.settleRed(evs, now, p)
	if p == news2.AirOrOxygen {
		evs = m.settleRed(evs, now, news2.SpO2) // scale 2 scores SpO2 by it
	}
	return m.checkBand(evs, now)
}

// SetThresholds replaces the patient's thresholds, at most one per code.
// A threshold that is unchanged keeps its state; an active alert of one
// that changed or went is cleared. On error nothing changes; the error
// names the threshold ("thresholds[1].high: ...").
func (m *Monitor) SetThresholds(now time.Time, ts []alert.Threshold) ([]Event, error) {
	next := make([]*watch, 0, len(ts))
	for i, t := range ts {
		n, err := t.Normalize()
		if err != nil {
			return nil, fmt.Errorf("thresholds[%d].%w", i, err)
		}
		for _, w := range next {
			if w.Code == n.Code {
				return nil, fmt.Errorf("thresholds[%d].code: %s has a threshold already; give one per code with low and high", i, n.Code)
			}
		}
		kept := false
		for _, w := range m.watches {
			if sameThreshold(w.Threshold, n) {
				next, kept = append(next, w), true
				break
			}
		}
		if !kept {
			next = append(next, &watch{Watch: alert.NewWatch(n)})
		}
	}
	var evs []Event
	for _, w := range m.watches {
		if !containsWatch(next, w) {
			for _, a := range m.board.ClearPrefix(now, thresholdKey(w.Code, "")) {
				evs = append(evs, alertEvent("cleared", a))
			}
		}
	}
	m.watches = next
	return evs, nil
}

// Thresholds lists the thresholds in force, normalized.
func (m *Monitor) Thresholds() []alert.Threshold {
	out := make([]alert.Threshold, len(m.watches))
	for i, w := range m.watches {
		out[i] = w.Threshold
	}
	return out
}

// Acknowledge records that by acknowledged alert id at now. It does not
// clear the alert; it stops its reminders. The events announce the first
// acknowledgement only; the returned alert carries whichever stands.
func (m *Monitor) Acknowledge(now time.Time, id, by string) (alert.Alert, []Event, error) {
	a, first, err := m.board.Acknowledge(id, by, now)
	if err != nil {
		return a, nil, fmt.Errorf("acknowledge %q: %w", id, err)
	}
	if !first {
		return a, nil, nil
	}
	return a, []Event{alertEvent("acknowledged", a)}, nil
}

// Snapshot describes the current state for a viewer who has just joined:
// the NEWS2, every active alert (state "raised") and every stale
// measurement and entry.
func (m *Monitor) Snapshot(now time.Time) []Event {
	evs := []Event{m.news2Event(now)}
	for _, a := range m.board.Active() {
		evs = append(evs, alertEvent("raised", a))
	}
	for _, cs := range m.codes {
		if cs.stale {
			evs = append(evs, StaleEvent{Type: "stale", Code: cs.code, Stale: true, Last: cs.last.time(), Time: now})
		}
	}
	for p, s := range m.params {
		if s.entered.ok && s.entered.stale {
			evs = append(evs, StaleEvent{Type: "stale", Param: news2.Param(p).String(), Stale: true, Last: s.entered.at.time(), Time: now})
		}
	}
	return evs
}

func (m *Monitor) codeState(code string, window time.Duration) *codeState {
	for i := range m.codes {
		if m.codes[i].code == code {
			return &m.codes[i]
		}
	}
	if m.codes == nil {
		m.codes = make([]codeState, 0, 6) // a device measures about five
	}
	m.codes = append(m.codes, codeState{code: code, window: window, last: never})
	return &m.codes[len(m.codes)-1]
}

// checkCode announces a measurement going stale or fresh.
func (m *Monitor) checkCode(evs []Event, now time.Time, cs *codeState) []Event {
	stale := instantOf(now).sub(cs.last) >= cs.window
	if stale == cs.stale {
		return evs
	}
	cs.stale = stale
	return append(evs, StaleEvent{Type: "stale", Code: cs.code, Stale: stale, Last: cs.last.time(), Time: now})
}

// checkEntered announces a clinician's entry going stale.
func (m *Monitor) checkEntered(evs []Event, now time.Time, p news2.Param) []Event {
	s := &m.params[p]
	if !s.entered.ok {
		return evs
	}
	stale := instantOf(now).sub(s.entered.at) >= m.cfg.EnteredFor
	if stale == s.entered.stale {
		return evs
	}
	s.entered.stale = stale
	return append(evs, StaleEvent{Type: "stale", Param: p.String(), Stale: stale, Last: s.entered.at.time(), Time: now})
}
