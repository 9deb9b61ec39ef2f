package main

import (
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/bedside-health/bedside/vitals"
)

func TestSimulatedPatientIsValidAndNormal(t *testing.T) {
	p := newPatient(1, time.Now())
	start := time.Now()
	counts := map[string]int{}
	normal := map[string][2]float64{
		"8867-4": {55, 95}, "59408-5": {95, 100}, "9279-1": {12, 18},
		"8310-5": {36.3, 37.3}, "8480-6": {100, 140}, "8462-4": {60, 95},
	}
	for i := range 600 { // ten minutes at 1 Hz
		for _, obs := range p.observations(start.Add(time.Duration(i) * time.Second)) {
			parsed, err := vitals.ParseObservation(json.RawMessage(obs))
			if err != nil {
				t.Fatalf("round %d: %v\n%s", i, err, obs)
			}
			for _, r := range parsed.Readings {
				counts[r.Code]++
				lo, hi := normal[r.Code][0], normal[r.Code][1]
				if r.Value < lo || r.Value > hi {
					t.Fatalf("%s = %v is not a normal adult's (%v-%v)", r.Code, r.Value, lo, hi)
				}
			}
		}
	}
	if counts["8867-4"] != 600 || counts["8480-6"] != 4 {
		t.Fatalf("counts %v: want 600 heart rates and a blood pressure every 3 minutes (4)", counts)
	}
}

func TestOutboxAck(t *testing.T) {
	var b outbox
	for range 5 {
		b.add(`{}`)
	}
	b.ack(3)
	if len(b.pending) != 2 || b.pending[0].Seq != 4 {
		t.Fatalf("pending after ack 3: %+v", b.pending)
	}
}

func TestFlagsErrors(t *testing.T) {
	env := func(string) string { return "" }
	for _, args := range [][]string{{}, {"--token", "x", "--scenario", "fever"}, {"--token", "x", "--rate", "0s"}} {
		if _, err := parse(args, env, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
