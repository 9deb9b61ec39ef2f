package web

import (
	"strings"
	"testing"

	"github.com/bedside-health/bedside/vitals/ward"
)

// FuzzDecodeNEWS2Input feeds request bodies to decodeNEWS2Input. It must
// never panic; an error says something; an input it accepts is one the
// monitor takes (ward.Check).
func FuzzDecodeNEWS2Input(f *testing.F) {
	for _, s := range []string{
		`{"kind":"consciousness","text":"voice"}`, `{"kind":"oxygen","text":"air"}`, `{"kind":"scale2","text":"on"}`,
		`{"kind":"value","code":"9279-1","value":23}`, `{"kind":"value","code":"8867-4","value":1e400}`, `{"kind":"mood"}`, `{}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := decodeNEWS2Input(b)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := ward.Check(in); err != nil {
			t.Fatalf("accepted %+v that the monitor refuses: %v", in, err)
		}
	})
}

// FuzzDecodeThresholds feeds request bodies to decodeThresholds. It must
// never panic; accepted thresholds are normalized, one per code, each with
// a limit.
func FuzzDecodeThresholds(f *testing.F) {
	for _, s := range []string{
		`{"thresholds":[{"code":"8867-4","low":40,"high":130}]}`, `{"thresholds":[{"code":"8310-5","high":38},{"code":"8310-5","low":35}]}`,
		`{"thresholds":[{"code":"x"}]}`, `{"thresholds":[]}`, `{"thresholds":[{"code":"59408-5","low":-1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := decodeThresholds(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, th := range ts {
			if seen[th.Code] || (th.Low == nil && th.High == nil) {
				t.Fatalf("accepted %+v", ts)
			}
			seen[th.Code] = true
			if n, err := th.Normalize(); err != nil || n.Code != th.Code {
				t.Fatalf("accepted %+v that does not normalize to itself: %v", th, err)
			}
		}
	})
}
