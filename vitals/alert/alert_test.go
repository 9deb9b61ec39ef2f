package alert

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/vitals"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func ptr(v float64) *float64 { return &v }

// stream feeds 1 Hz heart rates to a watch of "above 120" with the
// defaults (margin 5, 5 readings over 5 s) and returns the transitions of
// the high condition, as "+" (raised) and "-" (cleared) at their second.
func stream(t *testing.T, values ...float64) string {
	t.Helper()
	th, err := Threshold{Code: vitals.CodeHeartRate, High: ptr(120)}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatch(th)
	var b strings.Builder
	for i, v := range values {
		_, tr := w.Observe(t0.Add(time.Duration(i)*time.Second), v)
		switch tr {
		case Raise:
			fmt.Fprintf(&b, "+%d ", i)
		case Release:
			fmt.Fprintf(&b, "-%d ", i)
		}
	}
	return strings.TrimSpace(b.String())
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func seq(parts ...[]float64) []float64 {
	var out []float64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestHysteresis(t *testing.T) {
	cases := []struct {
		name   string
		values []float64
		want   string
	}{
		{"a single spike does not alert", seq(repeat(90, 5), []float64{160}, repeat(90, 20)), ""},
		{"four seconds of breach is not enough", seq(repeat(90, 5), repeat(130, 5), repeat(90, 20)), ""},
		{"a sustained breach alerts once", seq(repeat(90, 3), repeat(130, 30)), "+8"},
		{"the breach must be consecutive", seq(repeat(130, 4), []float64{119}, repeat(130, 4), []float64{110}, repeat(130, 4)), ""},
		{"clears after recovery, once", seq(repeat(130, 6), repeat(100, 30)), "+5 -11"},
		{"oscillation inside the deadband neither clears nor re-raises",
			seq(repeat(130, 6), alternate(118, 123, 60)), "+5"},
		{"the margin's edge counts as back inside", seq(repeat(130, 6), repeat(115, 6)), "+5 -11"},
		{"just inside the limit is still in the deadband", seq(repeat(130, 6), repeat(116, 60)), "+5"},
		{"a dip into the deadband restarts recovery", seq(repeat(130, 6), repeat(100, 4), []float64{118}, repeat(100, 6)), "+5 -16"},
		{"after clearing, oscillation at the limit does not re-raise",
			seq(repeat(130, 6), repeat(100, 6), alternate(119, 121, 60)), "+5 -11"},
		{"a new sustained breach after recovery is a new alert", seq(repeat(130, 6), repeat(100, 6), repeat(140, 6)), "+5 -11 +17"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := stream(t, c.values...); got != c.want {
				t.Fatalf("transitions %q, want %q", got, c.want)
			}
		})
	}
}

func alternate(a, b float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = a
		if i%2 == 1 {
			out[i] = b
		}
	}
	return out
}

// TestPersistenceByDuration: a burst of readings (a backlog resent after a
// reconnect) must also span the duration.
func TestPersistenceByDuration(t *testing.T) {
	h := Hysteresis{Persist: Persistence{Readings: 3, For: 10 * time.Second}}
	for i := range 20 {
		if tr := h.Update(t0.Add(time.Duration(i)*100*time.Millisecond), true, false); tr != None {
			t.Fatalf("raised after %d readings in %s", i+1, time.Duration(i)*100*time.Millisecond)
		}
	}
	if tr := h.Update(t0.Add(10*time.Second), true, false); tr != Raise || !h.Active() {
		t.Fatal("not raised after 10 s of breach")
	}
	h.Reset()
	if h.Active() {
		t.Fatal("active after Reset")
	}
	// A spot measurement counts at once.
	s := Hysteresis{Persist: DefaultPersistence(vitals.CodeSystolic)}
	if s.Update(t0, true, false) != Raise || s.Update(t0.Add(time.Minute), false, true) != Release {
		t.Fatal("a spot measurement did not raise and clear at once")
	}
}

func TestLowAndHigh(t *testing.T) {
	th, err := Threshold{Code: vitals.CodeSystolic, Low: ptr(90), High: ptr(180)}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatch(th)
	steps := []struct {
		v         float64
		low, high Transition
	}{
		{120, None, None}, {90, None, None}, {89, Raise, None}, {93, None, None}, {95, Release, None},
		{181, None, Raise}, {176, None, None}, {175, None, Release},
		{85, Raise, None}, {190, Release, Raise}, // a cuff reading can end one and start the other
	}
	for i, s := range steps {
		low, high := w.Observe(t0.Add(time.Duration(i)*time.Minute), s.v)
		if low != s.low || high != s.high {
			t.Fatalf("step %d (%v): low %v high %v, want %v %v", i, s.v, low, high, s.low, s.high)
		}
	}
	if w.Active("low") || !w.Active("high") {
		t.Fatal("wrong conditions active at the end")
	}
}

func TestThresholdNormalize(t *testing.T) {
	th, err := Threshold{Code: vitals.CodeSpO2Alt, Low: ptr(92)}.Normalize()
	if err != nil || th.Code != vitals.CodeSpO2 || th.Margin != 2 || th.Persist != (Persistence{Readings: 5, For: 5 * time.Second}) {
		t.Fatalf("SpO2 below 92: %+v %v", th, err)
	}
	if got := th.Title("low"); got != "SpO2 below 92 %" {
		t.Fatalf("title %q", got)
	}
	th, _ = Threshold{Code: vitals.CodeSystolic, Low: ptr(90), Margin: 8, Persist: Persistence{Readings: 2}}.Normalize()
	if th.Margin != 8 || th.Persist.Readings != 2 || th.Title("low") != "Systolic blood pressure below 90 mmHg" || th.Title("high") != "" {
		t.Fatalf("custom: %+v %q", th, th.Title("low"))
	}
	th, _ = Threshold{Code: vitals.CodeTemperature, High: ptr(38.5)}.Normalize()
	if th.Title("high") != "Body temperature above 38.5 °C" || th.Margin != 0.3 {
		t.Fatalf("temperature: %+v %q", th, th.Title("high"))
	}
	for _, c := range []struct {
		th    Threshold
		field string
	}{
		{Threshold{Code: "1234-5", High: ptr(1)}, "code: "},
		{Threshold{Code: vitals.CodeECGLeadII, High: ptr(1)}, "code: "},
		{Threshold{Code: vitals.CodeHeartRate}, "low, high: "},
		{Threshold{Code: vitals.CodeHeartRate, High: ptr(400)}, "high: 400 /min is not a possible heart rate"},
		{Threshold{Code: vitals.CodeHeartRate, Low: ptr(-3)}, "low: "},
		{Threshold{Code: vitals.CodeHeartRate, Low: ptr(120), High: ptr(60)}, "low: 120 is not below high 60"},
		{Threshold{Code: vitals.CodeHeartRate, Low: ptr(100), High: ptr(105)}, "margin: "},
		{Threshold{Code: vitals.CodeHeartRate, High: ptr(120), Margin: -1}, "margin: "},
		{Threshold{Code: vitals.CodeHeartRate, High: ptr(120), Persist: Persistence{Readings: -1}}, "readings: "},
		{Threshold{Code: vitals.CodeHeartRate, High: ptr(120), Persist: Persistence{For: 2 * time.Hour}}, "for: "},
	} {
		if _, err := c.th.Normalize(); err == nil || !strings.HasPrefix(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error starting %q", c.th, err, c.field)
		}
	}
}

func TestBoard(t *testing.T) {
	var b Board
	a, ok := b.Raise(t0, "threshold:8867-4:high", Alert{Rule: RuleThreshold, Severity: Warning, Value: ptr(131)})
	if !ok || a.ID != "threshold:8867-4:high@"+fmt.Sprint(t0.UnixMilli()) || !a.Raised.Equal(t0) || !a.Active() {
		t.Fatalf("raised %+v", a)
	}
	if again, ok := b.Raise(t0.Add(time.Second), "threshold:8867-4:high", Alert{}); ok || again.ID != a.ID {
		t.Fatal("a second raise of an active key made a new alert")
	}
	b.Raise(t0, "news2:pulse", Alert{Rule: RuleParameter, Severity: Urgent})
	b.Raise(t0, "info", Alert{Severity: Info})

	// Unacknowledged alerts of warning and above are re-announced every
	// interval; acknowledging stops that but does not clear.
	if r := b.Reminders(t0.Add(time.Minute), 2*time.Minute); len(r) != 0 {
		t.Fatalf("reminded too soon: %+v", r)
	}
	if r := b.Reminders(t0.Add(2*time.Minute), 2*time.Minute); len(r) != 2 {
		t.Fatalf("reminders %+v, want the warning and the urgent one", r)
	}
	acked, first, err := b.Acknowledge(a.ID, "Dr Doc", t0.Add(3*time.Minute))
	if err != nil || !first || acked.Ack == nil || acked.Ack.By != "Dr Doc" || !acked.Active() {
		t.Fatalf("acknowledge: %+v %v %v", acked, first, err)
	}
	if _, first, _ := b.Acknowledge(a.ID, "Dr Other", t0.Add(4*time.Minute)); first {
		t.Fatal("a second acknowledgement replaced the first")
	}
	if got, _ := b.Get("threshold:8867-4:high"); got.Ack.By != "Dr Doc" || !got.Active() {
		t.Fatalf("after two acknowledgements: %+v", got)
	}
	r := b.Reminders(t0.Add(10*time.Minute), 2*time.Minute)
	if len(r) != 1 || r[0].Rule != RuleParameter {
		t.Fatalf("reminders after the acknowledgement: %+v", r)
	}
	if _, _, err := b.Acknowledge("nope", "x", t0); !errors.Is(err, ErrUnknownAlert) {
		t.Fatalf("unknown id: %v", err)
	}

	// Clearing moves it to the recent list, where it can still be acked.
	cleared, ok := b.Clear(t0.Add(11*time.Minute), "news2:pulse")
	if !ok || cleared.Active() || len(b.Active()) != 2 {
		t.Fatalf("clear: %+v, active %d", cleared, len(b.Active()))
	}
	if _, first, err := b.Acknowledge(cleared.ID, "Dr Doc", t0.Add(12*time.Minute)); err != nil || !first {
		t.Fatalf("acknowledge a cleared alert: %v", err)
	}
	if _, ok := b.Clear(t0, "news2:pulse"); ok {
		t.Fatal("cleared twice")
	}
	n := b.Notice(t0.Add(time.Hour), "news2-band", Alert{Rule: RuleBand, Direction: "down"})
	if n.Active() || !n.Raised.Equal(n.Cleared) {
		t.Fatalf("notice %+v", n)
	}
	if got := b.ClearPrefix(t0.Add(2*time.Hour), "threshold:"); len(got) != 1 || len(b.Active()) != 1 {
		t.Fatalf("ClearPrefix: %+v", got)
	}

	// The recent list is bounded.
	small := Board{Keep: 3}
	for i := range 10 {
		small.Notice(t0.Add(time.Duration(i)*time.Second), "k", Alert{})
	}
	if len(small.recent) != 3 || !small.recent[0].Raised.Equal(t0.Add(7*time.Second)) {
		t.Fatalf("recent %+v", small.recent)
	}
}

// TestLogValueHidesTheValue: logging an alert never writes the patient's
// value or its title.
func TestLogValueHidesTheValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("alert raised", "alert", Alert{ID: "x@1", Rule: RuleThreshold, Severity: Warning, Title: "Heart rate above 120 /min", Value: ptr(187)})
	if s := buf.String(); strings.Contains(s, "187") || strings.Contains(s, "Heart rate") || !strings.Contains(s, "alert.id=x@1") {
		t.Fatalf("logged %s", s)
	}
}
