package monitor

import (
	"slices"
	"time"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/news2"
)

// Which input a parameter's score uses.
const (
	fromNone = iota
	fromMeasured
	fromEntered
)

// pick chooses a parameter's input: a fresh one over a stale one, and of
// two fresh (or two stale) the newer, the clinician's entry on a tie.
func (m *Monitor) pick(p news2.Param, now time.Time) (news2.Input, int) {
	s := &m.params[p]
	t := instantOf(now)
	mFresh := s.measured.ok && t.sub(s.measured.ref) < m.window[p]
	eFresh := s.entered.ok && t.sub(s.entered.at) < m.cfg.EnteredFor
	useEntered := s.entered.ok && (!s.measured.ok || s.entered.at >= s.measured.at)
	switch {
	case mFresh && !eFresh:
		useEntered = false
	case eFresh && !mFresh:
		useEntered = true
	case !s.measured.ok && !s.entered.ok:
		return news2.Input{}, fromNone
	}
	in, from := news2.Input{Source: news2.Measured, Value: s.measured.v, Time: s.measured.at.time()}, fromMeasured
	if useEntered {
		in, from = news2.Input{Source: news2.Entered, Value: s.entered.v, Time: s.entered.at.time()}, fromEntered
	}
	if !mFresh && !eFresh {
		in.Source = news2.Stale
	}
	return in, from
}

func (m *Monitor) selected(p news2.Param, now time.Time) int {
	_, from := m.pick(p, now)
	return from
}

// signature is what a NEWS2Event shows; a new event goes out when it
// changes.
type signature struct {
	score    scoreSig
	doubtful [news2.NumParams]bool
	entered  [news2.NumParams]entry // the entry in use, if any, without its stale flag
}

// scoreSig is a news2.Score in bytes: every field of it, each small.
type scoreSig struct {
	total, band, scale int8
	points, sources    [news2.NumParams]int8
}

func sigOf(s news2.Score) scoreSig {
	sig := scoreSig{total: int8(s.Total), band: int8(s.Band), scale: int8(s.Scale)}
	for p := range s.Points {
		sig.points[p], sig.sources[p] = int8(s.Points[p]), int8(s.Sources[p])
	}
	return sig
}

// rescore recomputes the NEWS2 and emits it if what it shows changed.
func (m *Monitor) rescore(evs []Event, now time.Time) []Event {
	in := news2.Inputs{Scale2: m.scale2}
	var sig signature
	for p := range in.Params {
		var from int
		in.Params[p], from = m.pick(news2.Param(p), now)
		sig.doubtful[p] = m.params[p].measured.doubtful
		if from == fromEntered {
			e := m.params[p].entered
			sig.entered[p] = entry{v: e.v, at: e.at, ok: e.ok}
		}
	}
	m.score = news2.Compute(in)
	sig.score = sigOf(m.score)
	if m.sent && sig == m.last {
		return evs
	}
	m.last, m.sent = sig, true
	return append(evs, m.news2Event(now))
}

func (m *Monitor) news2Event(now time.Time) NEWS2Event {
	s := m.score
	e := NEWS2Event{
		Type: "news2", Time: now, Score: s.Total, Band: s.Band, Complete: s.Complete(), Scale: s.Scale,
		Params: make([]ParamState, news2.NumParams), Missing: s.Missing(), Stale: s.Stale(), Response: s.Response(),
	}
	for i := range e.Params {
		p := news2.Param(i)
		ps := ParamState{Param: p, Score: s.Points[p], Source: s.Sources[p], Code: paramCode[p], Doubtful: m.params[p].measured.doubtful}
		if in, from := m.pick(p, now); from == fromEntered {
			at := in.Time
			ps.Entered, ps.Time, ps.Value = true, &at, enteredValue(p, in.Value)
		}
		e.Params[i] = ps
	}
	return e
}

// enteredValue is how an entry is shown: a number, a level, or air or
// oxygen.
func enteredValue(p news2.Param, v float64) any {
	switch p {
	case news2.Consciousness:
		return news2.Level(v).String()
	case news2.AirOrOxygen:
		if v == news2.OnOxygen {
			return "oxygen"
		}
		return "air"
	}
	return v
}

func redKey(p news2.Param) string { return "news2:" + p.String() }

// checkRed feeds the rule "a single parameter scores 3" with the
// parameter's input in use, taken at at, counting it as persist demands.
// It clears only once the value would score less than 3 even margin to
// either side (a deadband at the chart's red edges), so a value hovering
// at an edge does not flap.
func (m *Monitor) checkRed(evs []Event, now time.Time, p news2.Param, at time.Time, persist alert.Persistence, margin float64) []Event {
	h := &m.red[p]
	h.Persist = persist
	pts := m.score.Points[p]
	in, _ := m.pick(p, now)
	present := m.score.Sources[p] != news2.Missing
	recovered := !present || pts < 3
	if present && margin > 0 {
		oxygen := m.params[news2.AirOrOxygen].entered.ok && m.params[news2.AirOrOxygen].entered.v == news2.OnOxygen
		recovered = recovered && news2.Points(p, in.Value-margin, m.scale2, oxygen) < 3 && news2.Points(p, in.Value+margin, m.scale2, oxygen) < 3
	}
	switch h.Update(at, present && pts == 3, recovered) {
	case alert.Raise:
		a := alert.Alert{
			Rule: alert.RuleParameter, Severity: alert.Urgent, Param: p.String(), Code: paramCode[p],
			Title: p.Title() + " scores 3 (NEWS2 red score)",
		}
		if p != news2.Consciousness && p != news2.AirOrOxygen {
			v := in.Value
			a.Value = &v
		}
		if a, ok := m.board.Raise(now, redKey(p), a); ok {
			evs = append(evs, alertEvent("raised", a))
		}
	case alert.Release:
		if a, ok := m.board.Clear(now, redKey(p)); ok {
			evs = append(evs, alertEvent("cleared", a))
		}
	}
	return evs
}

// settleRed applies a clinician's change (an entry, the scale) to the
// parameter's red-score rule at once.
func (m *Monitor) settleRed(evs []Event, now time.Time, p news2.Param) []Event {
	return m.checkRed(evs, now, p, now, alert.Persistence{Readings: 1}, 0)
}

func thresholdKey(code, direction string) string {
	return "threshold:" + code + ":" + direction
}

// checkThresholds feeds a sound reading to its code's threshold.
func (m *Monitor) checkThresholds(evs []Event, now time.Time, code string, r vitals.Reading) []Event {
	for _, w := range m.watches {
		if w.Code != code || r.Time.Before(w.lastAt) {
			continue
		}
		w.lastAt = r.Time
		low, high := w.Observe(r.Time, r.Value)
		evs = m.thresholdChange(evs, now, w, "low", w.Low, low, r.Value)
		evs = m.thresholdChange(evs, now, w, "high", w.High, high, r.Value)
	}
	return evs
}

func (m *Monitor) thresholdChange(evs []Event, now time.Time, w *watch, dir string, limit *float64, tr alert.Transition, v float64) []Event {
	switch tr {
	case alert.Raise:
		l, val := *limit, v
		a := alert.Alert{Rule: alert.RuleThreshold, Severity: alert.Warning, Code: w.Code, Direction: dir,
			Limit: &l, Value: &val, Title: w.Title(dir)}
		if a, ok := m.board.Raise(now, thresholdKey(w.Code, dir), a); ok {
			evs = append(evs, alertEvent("raised", a))
		}
	case alert.Release:
		if a, ok := m.board.Clear(now, thresholdKey(w.Code, dir)); ok {
			evs = append(evs, alertEvent("cleared", a))
		}
	}
	return evs
}

func sameThreshold(a, b alert.Threshold) bool {
	eq := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Code == b.Code && eq(a.Low, b.Low) && eq(a.High, b.High) && a.Margin == b.Margin && a.Persist == b.Persist
}

func containsWatch(ws []*watch, w *watch) bool { return slices.Contains(ws, w) }

const bandKey = "news2-band"

var bandSeverity = [...]alert.Severity{news2.Low: alert.Info, news2.LowMedium: alert.Urgent, news2.Medium: alert.Urgent, news2.High: alert.Emergency}

// checkBand announces a change of NEWS2 band once it has held for
// BandHold on complete scores. Going up, the highest band the score has
// stayed at or above for that long is announced (a score wavering between
// medium and high has held medium); going down, the lowest it has stayed
// at or below. A rise raises an alert, replacing the previous band alert;
// a fall clears it and leaves a notice.
func (m *Monitor) checkBand(evs []Event, now time.Time) []Event {
	cur := m.score.Band
	complete := m.score.Complete()
	t := instantOf(now)
	for b := news2.Low; b <= news2.High; b++ {
		if !complete || cur < b {
			m.atLeast[b] = never
		} else if m.atLeast[b] == never {
			m.atLeast[b] = t
		}
		if !complete || cur > b {
			m.atMost[b] = never
		} else if m.atMost[b] == never {
			m.atMost[b] = t
		}
	}
	held := func(since instant) bool { return since != never && t.sub(since) >= m.cfg.BandHold }
	to := m.band
	for b := m.band + 1; b <= news2.High; b++ {
		if held(m.atLeast[b]) {
			to = b
		}
	}
	if to == m.band {
		for b := m.band - 1; b >= news2.Low; b-- {
			if held(m.atMost[b]) {
				to = b
			}
		}
	}
	if to == m.band {
		return evs
	}
	from := m.band
	m.band = to
	if a, ok := m.board.Clear(now, bandKey); ok {
		evs = append(evs, alertEvent("cleared", a))
	}
	total := float64(m.score.Total)
	a := alert.Alert{Rule: alert.RuleBand, Band: to.String(), Value: &total}
	if to > from {
		a.Direction, a.Severity, a.Title = "up", bandSeverity[to], "NEWS2 band rose to "+to.String()
		if a, ok := m.board.Raise(now, bandKey, a); ok {
			evs = append(evs, alertEvent("raised", a))
		}
		return evs
	}
	a.Direction, a.Severity, a.Title = "down", alert.Info, "NEWS2 band fell to "+to.String()+" from "+from.String()
	return append(evs, alertEvent("notice", m.board.Notice(now, bandKey, a)))
}
