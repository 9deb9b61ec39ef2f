package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// physiology is the resting state a simulated patient's measurements vary
// around.
type physiology struct {
	hr, spo2, rr, temp, sys, dia float64
}

// scenario is one simulated patient: its physiology (which, when it
// deteriorates, moves from base to worse over the ramp), its heart rhythm,
// and how its device and its network link behave.
type scenario struct {
	base physiology
	// worse, if set, is where the physiology arrives at the end of the ramp.
	worse *physiology
	// afib makes the heart rhythm irregularly irregular, without P waves.
	afib bool
	// flaky drops the link now and then and comes back after an outage.
	flaky bool
	// faulty makes the device send, now and then, a value the server must
	// refuse (impossible, in the wrong unit, not a number, a garbled frame)
	// or keep only as doubtful (a cuff the device reports too loose).
	faulty bool
}

// physiologies are the patients; behaviours change the device or link and
// combine with any of them ("deteriorating+flaky").
var (
	physiologies = map[string]scenario{
		"normal":  {base: physiology{hr: 72, spo2: 98, rr: 15, temp: 36.8, sys: 118, dia: 76}},
		"fever":   {base: physiology{hr: 104, spo2: 96, rr: 21, temp: 38.9, sys: 112, dia: 70}},
		"hypoxia": {base: physiology{hr: 108, spo2: 89, rr: 25, temp: 37.0, sys: 126, dia: 82}},
		// Atrial fibrillation with a fast ventricular response.
		"afib": {base: physiology{hr: 112, spo2: 96, rr: 18, temp: 36.9, sys: 124, dia: 80}, afib: true},
		// A patient becoming septic: NEWS2 climbs from 0 to high (7+) over
		// the ramp, each parameter worsening in turn.
		"deteriorating": {
			base:  physiology{hr: 78, spo2: 97, rr: 16, temp: 37.0, sys: 122, dia: 78},
			worse: &physiology{hr: 132, spo2: 89, rr: 28, temp: 39.4, sys: 86, dia: 52},
		},
	}
	behaviours = map[string]func(*scenario){
		"flaky":  func(s *scenario) { s.flaky = true },
		"faulty": func(s *scenario) { s.faulty = true },
	}
)

// scenarioNames lists what --scenario accepts.
func scenarioNames() string {
	var names []string
	for n := range physiologies {
		names = append(names, n)
	}
	for n := range behaviours {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// parseScenario reads a scenario name, or several joined by "+": at most
// one physiology (normal if none) and any behaviours, e.g. "flaky",
// "deteriorating+flaky", "afib+faulty".
func parseScenario(name string) (scenario, error) {
	sc := physiologies["normal"]
	var phys string
	for part := range strings.SplitSeq(name, "+") {
		part = strings.TrimSpace(part)
		if p, ok := physiologies[part]; ok {
			if phys != "" {
				return scenario{}, fmt.Errorf("scenario %q names two patients (%s and %s); combine one with behaviours such as flaky or faulty", name, phys, part)
			}
			phys = part
			flaky, faulty := sc.flaky, sc.faulty
			sc = p
			sc.flaky, sc.faulty = flaky, faulty
			continue
		}
		if b, ok := behaviours[part]; ok {
			b(&sc)
			continue
		}
		return scenario{}, fmt.Errorf("unknown scenario %q; choose one of %s, or combine a patient with behaviours, e.g. deteriorating+flaky", part, scenarioNames())
	}
	return sc, nil
}

// at is the physiology after elapsed of a ramp lasting ramp: the base,
// or for a deteriorating patient a smooth move from base to worse.
func (s scenario) at(elapsed, ramp time.Duration) physiology {
	if s.worse == nil || ramp <= 0 {
		return s.base
	}
	f := math.Min(1, math.Max(0, elapsed.Seconds()/ramp.Seconds()))
	f = f * f * (3 - 2*f) // smoothstep: slow to start, steady, then settling
	mix := func(a, b float64) float64 { return a + (b-a)*f }
	w := *s.worse
	return physiology{
		hr: mix(s.base.hr, w.hr), spo2: mix(s.base.spo2, w.spo2), rr: mix(s.base.rr, w.rr),
		temp: mix(s.base.temp, w.temp), sys: mix(s.base.sys, w.sys), dia: mix(s.base.dia, w.dia),
	}
}
