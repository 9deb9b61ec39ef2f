package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
	"github.com/bedside-health/bedside/vitals/monitor"
	"github.com/bedside-health/bedside/vitals/news2"
)

// TestDeterioratingThroughTheMonitor feeds the deteriorating patient's
// readings, once a second over the ramp and after it, to the clinical
// monitor as the server validates them, with the physician's entries: the
// NEWS2 band rises to high step by step, each band's alert fires once,
// each parameter's red score alerts once, and nothing flaps.
func TestDeterioratingThroughTheMonitor(t *testing.T) {
	for _, seed := range []uint64{11, 12, 13} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			start := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			ramp := 10 * time.Minute
			p := newPatient(physiologies["deteriorating"], seed, start, ramp)
			m := monitor.New(monitor.Config{})
			var log []monitor.AlertEvent
			keep := func(evs []monitor.Event) {
				for _, e := range evs {
					if a, ok := e.(monitor.AlertEvent); ok {
						log = append(log, a)
					}
				}
			}
			keep(m.SetOxygen(start, false))
			evs, _ := m.SetConsciousness(start, news2.Alert)
			keep(evs)
			for now := start; now.Before(start.Add(ramp + 5*time.Minute)); now = now.Add(time.Second) {
				keep(m.Tick(now))
				for _, msg := range p.numerics(now) {
					parsed, err := vitals.ParseObservation(msg.Observation)
					if err != nil {
						t.Fatalf("%v: %v", now, err)
					}
					for _, r := range parsed.Readings {
						keep(m.Observe(now, r))
					}
				}
			}
			if sc := m.Score(); sc.Band != news2.High || !sc.Complete() {
				t.Fatalf("after the ramp: %+v", sc)
			}
			var bands []string
			raised := map[string]int{}
			for _, a := range log {
				if a.State != "raised" {
					continue
				}
				key := a.ID[:strings.Index(a.ID, "@")]
				if a.Rule == alert.RuleBand {
					bands = append(bands, a.Band)
					key += ":" + a.Band
				}
				raised[key]++
			}
			t.Logf("band alerts %v; raised %v", bands, raised)
			for i := 1; i < len(bands); i++ {
				if bandRank(bands[i]) <= bandRank(bands[i-1]) {
					t.Fatalf("band alerts %v do not only rise", bands)
				}
			}
			if len(bands) == 0 || bands[len(bands)-1] != "high" {
				t.Fatalf("band alerts %v, want the last at high", bands)
			}
			for key, n := range raised {
				if n != 1 {
					t.Errorf("%s raised %d times", key, n)
				}
			}
			// These end well past their chart's red edge; pulse (132) and
			// temperature (39.4, which scores 2) need not.
			for _, param := range []string{"respiration-rate", "spo2", "systolic"} {
				if raised["news2:"+param] != 1 {
					t.Errorf("no red-score alert for %s", param)
				}
			}
		})
	}
}

func bandRank(b string) int {
	return strings.Index("low low-medium medium high", b)
}
