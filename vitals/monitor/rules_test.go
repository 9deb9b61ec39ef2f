package monitor

import (
	"testing"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/news2"
)

// TestDeteriorating walks a patient from normal to a high score and back:
// each alert fires once, the band alert after the band has held.
func TestDeteriorating(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	mark := len(s.log)
	r := normal()
	r[vitals.CodeHeartRate] = 135 // pulse scores 3
	for range 4 {
		s.second(r)
	}
	if as := alerts(s.since(mark)); len(as) != 0 {
		t.Fatalf("alerted within 4 s: %s", brief(as))
	}
	for range 40 {
		s.second(r)
	}
	if got := brief(alerts(s.since(mark))); got != "raised news2-parameter:pulse, raised news2-band:low-medium" {
		t.Fatalf("after 44 s of pulse 135: %s", got)
	}
	as := alerts(s.since(mark))
	if *as[0].Value != 135 || as[0].Severity != alert.Urgent || as[1].Severity != alert.Urgent || *as[1].Value != 3 {
		t.Fatalf("alerts %+v", as)
	}
	// Worse: respiration 26 (3), SpO2 93 (2): total 8, high.
	mark = len(s.log)
	r[vitals.CodeRespRate], r[vitals.CodeSpO2] = 26, 93
	for range 40 {
		s.second(r)
	}
	if got := brief(alerts(s.since(mark))); got != "raised news2-parameter:respiration-rate, cleared news2-band:low-medium, raised news2-band:high" {
		t.Fatalf("getting worse: %s", got)
	}
	if sc := s.m.Score(); sc.Total != 8 || sc.Band != news2.High {
		t.Fatalf("score %+v", sc)
	}
	// Better again: all normal. Parameter alerts clear after 5 s, the band
	// alert after the band has held low for 30 s, with a notice.
	mark = len(s.log)
	for range 40 {
		s.second(normal())
	}
	if got := brief(alerts(s.since(mark))); got != "cleared news2-parameter:pulse, cleared news2-parameter:respiration-rate, cleared news2-band:high, notice news2-band:low" {
		t.Fatalf("recovering: %s", got)
	}
	if len(s.m.Alerts()) != 0 {
		t.Fatalf("still active: %+v", s.m.Alerts())
	}
}

// TestBandWaveringHoldsTheLowerBand: a score that wavers between medium
// and high every few seconds has held medium, and says so once.
func TestBandWaveringHoldsTheLowerBand(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	mark := len(s.log)
	for i := range 60 {
		r := normal()
		r[vitals.CodeHeartRate], r[vitals.CodeRespRate], r[vitals.CodeTemperature] = 115, 22, 38.5 // 2+2+1 = 5
		if i%6 < 3 {
			r[vitals.CodeSpO2] = 93 // +2: 7, high, for three seconds in six
		}
		s.second(r)
	}
	got := brief(alerts(s.since(mark)))
	if got != "raised news2-band:medium" {
		t.Fatalf("wavering between medium and high: %s", got)
	}
}

func TestScale2AndOxygen(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	r := normal()
	r[vitals.CodeSpO2] = 89
	mark := len(s.log)
	for range 6 {
		s.second(r)
	}
	if got := brief(alerts(s.since(mark))); got != "raised news2-parameter:spo2" {
		t.Fatalf("SpO2 89 on scale 1: %s", got)
	}
	// The clinician chooses scale 2: 89 % on air scores 0, at once.
	mark = len(s.log)
	evs := s.add(s.m.SetScale2(s.now, true))
	sc := scores(evs)
	if got := brief(alerts(s.since(mark))); got != "cleared news2-parameter:spo2" || len(sc) != 1 || sc[0].Scale != 2 || sc[0].Params[news2.SpO2].Score != 0 {
		t.Fatalf("scale 2: %s %+v", got, sc)
	}
	// On oxygen, scale 2 scores 97 % as 3, and oxygen itself 2.
	r[vitals.CodeSpO2] = 97
	s.second(r)
	mark = len(s.log)
	s.add(s.m.SetOxygen(s.now, true))
	if got := brief(alerts(s.since(mark))); got != "raised news2-parameter:spo2" || s.m.Score().Total != 5 {
		t.Fatalf("on oxygen: %s, score %+v", got, s.m.Score())
	}
}

// TestRedScoreDeadband: a respiration rate hovering at the chart's red
// edge (24 scores 2, 25 scores 3) raises once and does not clear until it
// is back by the margin (2 /min), however long it hovers.
func TestRedScoreDeadband(t *testing.T) {
	s := newSim(t, Config{})
	s.start()
	mark := len(s.log)
	// Six seconds at 26, then ten minutes of 24 and 25 in runs of one to
	// eight seconds: long enough, each way, to raise or clear without a
	// deadband.
	var rates []float64
	for v := 24.0; len(rates) < 600; {
		for _, n := range []int{6, 8, 2, 7, 1, 6, 3, 8, 5} {
			for range n {
				rates = append(rates, v)
			}
			v = 49 - v // 24, 25, 24, ...
		}
	}
	for i := range 606 {
		r := normal()
		r[vitals.CodeRespRate] = 26
		if i >= 6 {
			r[vitals.CodeRespRate] = rates[i-6]
		}
		s.second(r)
	}
	var got []AlertEvent
	for _, a := range alerts(s.since(mark)) {
		if a.State != "reminder" {
			got = append(got, a)
		}
	}
	if brief(got) != "raised news2-parameter:respiration-rate" {
		t.Fatalf("hovering at the edge: %s", brief(got))
	}
	mark = len(s.log)
	for range 10 {
		r := normal()
		r[vitals.CodeRespRate] = 23 // scores 2, but inside the deadband
		s.second(r)
	}
	for range 10 {
		r := normal()
		r[vitals.CodeRespRate] = 22
		s.second(r)
	}
	if got := brief(alerts(s.since(mark))); got != "cleared news2-parameter:respiration-rate" {
		t.Fatalf("recovering: %s", got)
	}
}
