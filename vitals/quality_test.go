package vitals

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestImprobableEdges checks each usual range at its edges: the edge itself
// is probable, a step beyond is improbable, and impossible stays impossible.
func TestImprobableEdges(t *testing.T) {
	cases := []struct {
		code                string
		lowOK, low          float64 // lowest probable, and just below it
		highOK, high        float64 // highest probable, and just above it
		impossibleLo, impHi float64
	}{
		{CodeHeartRate, 30, 29.9, 220, 220.1, 0, 300},
		{CodeSpO2, 70, 69.9, 100, 100.1, 0, 100.1},
		{CodeSpO2Alt, 70, 69, 100, 100.5, 0, 101},
		{CodeTemperature, 33, 32.99, 42, 42.01, 10, 50},
		{CodeRespRate, 6, 5.9, 45, 45.1, 0, 70},
		{CodeSystolic, 60, 59, 250, 251, 0, 400},
		{CodeDiastolic, 30, 29, 150, 151, 0, 300},
		{CodeWeight, 2, 1.9, 350, 351, 0, 700},
		{CodeGlucoseMass, 20, 19, 600, 601, 0, 3000},
		{CodeGlucoseMol, 1.1, 1.0, 33.3, 33.4, 0, 170},
	}
	for _, c := range cases {
		if Improbable(c.code, c.lowOK) || Improbable(c.code, c.highOK) {
			t.Errorf("%s: %v or %v flagged improbable", c.code, c.lowOK, c.highOK)
		}
		if !Improbable(c.code, c.low) {
			t.Errorf("%s: %v not improbable", c.code, c.low)
		}
		if Plausible(c.code, c.high) != Improbable(c.code, c.high) {
			t.Errorf("%s: %v: a possible value above the usual range must be improbable", c.code, c.high)
		}
		for _, v := range []float64{c.impossibleLo, c.impHi} {
			if Plausible(c.code, v) || Improbable(c.code, v) {
				t.Errorf("%s: %v is impossible, not improbable", c.code, v)
			}
		}
	}
	if Improbable("1234-5", 1) {
		t.Error("an unknown code is improbable")
	}
}

// TestImprobableIsKeptAndFlagged sends improbable values by each path: they
// are stored with the flag, published with it, and never rejected.
func TestImprobableIsKeptAndFlagged(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	handle(t, in, env(1, quantityObs(CodeHeartRate, 25, "/min")))
	handle(t, in, env(2, quantityObs(CodeTemperature, 108.5, "[degF]"))) // 42.5 Cel
	handle(t, in, env(3, bpObs(255, 90)))
	// A chest strap without skin contact reporting 240 /min.
	r := handle(t, in, gattEnv(4, gattMsg("2a37", "04 F0")))
	if r.ack != 4 || len(r.errs) != 0 {
		t.Fatalf("improbable values refused: %+v", r)
	}
	want := map[string][]string{
		CodeHeartRate: {FlagImprobable}, CodeTemperature: {FlagImprobable}, CodeSystolic: {FlagImprobable}, CodeDiastolic: nil,
	}
	if st.count() != 5 {
		t.Fatalf("stored %d readings, want 5", st.count())
	}
	for i, row := range st.rows[:4] {
		if !slices.Equal(row.Reading.Flags, want[row.Reading.Code]) {
			t.Errorf("row %d %s flags %q, want %q", i, row.Reading.Code, row.Reading.Flags, want[row.Reading.Code])
		}
	}
	if f := st.rows[4].Reading.Flags; !slices.Equal(f, []string{FlagImprobable, "poor skin contact"}) {
		t.Errorf("relayed heart rate flags %q", f)
	}
	var lr LiveReading
	if err := json.Unmarshal(pub.msgs[patientID][0], &lr); err != nil || !slices.Equal(lr.Flags, []string{FlagImprobable}) {
		t.Fatalf("live message %s: %v", pub.msgs[patientID][0], err)
	}
	// A usual value carries no flag.
	p, err := ParseObservation([]byte(hrObs))
	if err != nil || p.Readings[0].Flags != nil {
		t.Fatalf("a usual heart rate: %+v %v", p, err)
	}
}

func TestDoubtful(t *testing.T) {
	for _, c := range []struct {
		flags []string
		want  bool
	}{
		{nil, false},
		{[]string{"device clock not set"}, false},
		{[]string{"device battery low", "device clock not set"}, false},
		{[]string{FlagImprobable}, true},
		{[]string{"device clock not set", "cuff too loose"}, true},
		{[]string{"poor skin contact"}, true},
	} {
		if got := (Reading{Flags: c.flags}).Doubtful(); got != c.want {
			t.Errorf("%q: doubtful %v, want %v", c.flags, got, c.want)
		}
	}
	// The informational flags are the words the Bluetooth parser uses.
	p, err := ParseGATT([]byte(gattMsg("2a5e", "10 62 00 48 00")))
	if err != nil || !slices.Equal(p.Readings[0].Flags, []string{"device clock not set"}) || p.Readings[0].Doubtful() {
		t.Fatalf("spot check without a clock: %+v %v", p, err)
	}
	p, err = ParseGATT([]byte(gattMsg("2a18", "0B 01 00 EA 07 0C 04 08 00 00 0F 00 5F B0 11 01 00")))
	if err != nil || !slices.Contains(p.Readings[0].Flags, "device battery low") || p.Readings[0].Doubtful() {
		t.Fatalf("glucose with a low battery: %+v %v", p, err)
	}
}

func TestFreshness(t *testing.T) {
	def := DefaultFreshness()
	for code, want := range map[string]time.Duration{
		CodeHeartRate: 30 * time.Second, CodeSpO2: 30 * time.Second, CodeSpO2Alt: 30 * time.Second, CodeRespRate: time.Minute,
		CodeSystolic: 15 * time.Minute, CodeDiastolic: 15 * time.Minute, CodeTemperature: 30 * time.Minute,
		CodeGlucoseMass: 8 * time.Hour, CodeGlucoseMol: 8 * time.Hour, CodeWeight: 24 * time.Hour,
	} {
		if def[code] != want || DefaultStaleAfter(code) != want || Freshness(nil).StaleAfter(code) != want {
			t.Errorf("%s: default window %s, want %s", code, def[code], want)
		}
	}
	if len(def) != len(catalogue) {
		t.Errorf("%d defaults for %d codes", len(def), len(catalogue))
	}
	def[CodeHeartRate] = time.Hour // a copy: the defaults stay
	if DefaultStaleAfter(CodeHeartRate) != 30*time.Second {
		t.Fatal("changing DefaultFreshness's map changed the defaults")
	}
	f := Freshness{CodeHeartRate: 10 * time.Second, CodeSystolic: -time.Second}
	if f.StaleAfter(CodeHeartRate) != 10*time.Second || f.StaleAfter(CodeSystolic) != 15*time.Minute || f.StaleAfter(CodeSpO2) != 30*time.Second {
		t.Fatalf("overrides: %s %s %s", f.StaleAfter(CodeHeartRate), f.StaleAfter(CodeSystolic), f.StaleAfter(CodeSpO2))
	}
	if f.StaleAfter("1234-5") != 0 || strings.Contains(FlagImprobable, "\n") {
		t.Fatal("an unknown code has a window")
	}
}
