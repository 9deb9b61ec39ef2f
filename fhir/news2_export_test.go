package fhir

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// exportedNEWS2 fetches the visit's $everything as Grace and returns its
// derived NEWS2 Observation.
func exportedNEWS2(t *testing.T, f *fixture, visitID int64) Observation {
	t.Helper()
	r := f.do(t, "GET", fmt.Sprintf("Encounter/%d/$everything", visitID), "physician", "").want(t, http.StatusOK)
	var b struct {
		Entry []struct {
			FullURL  string
			Resource json.RawMessage
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Entry {
		if strings.HasPrefix(e.FullURL, "urn:uuid:") {
			var o Observation
			if err := json.Unmarshal(e.Resource, &o); err != nil {
				t.Fatal(err)
			}
			return o
		}
	}
	t.Fatal("the export holds no NEWS2")
	return Observation{}
}

// componentScores writes each component as "title=points" or
// "title=absent".
func componentScores(o Observation) string {
	var out []string
	for _, c := range o.Component {
		switch {
		case c.ValueInteger != nil:
			out = append(out, fmt.Sprintf("%s=%d", c.Code.Text, *c.ValueInteger))
		case c.DataAbsentReason != nil && c.DataAbsentReason.Coding[0].Code == "not-performed":
			out = append(out, c.Code.Text+"=absent")
		default:
			out = append(out, c.Code.Text+"=?")
		}
	}
	return strings.Join(out, ", ")
}

func TestNEWS2ExportUsesEntries(t *testing.T) {
	// Ada's visit ran 10:02 to 10:32; seedVitals stored sparse readings
	// from 10:05 to 10:10. At 10:20 a full round of readings arrives,
	// seconds apart, and Grace enters what no device measures.
	at := func(min, sec int) time.Time {
		return monday.Add(10*time.Hour + time.Duration(min)*time.Minute + time.Duration(sec)*time.Second)
	}
	round := func(t *testing.T, f *fixture, s vitalsSeed, spo2 float64) {
		t.Helper()
		o := func(seq int64, code string, v float64, unit string, sec int) store.Observation {
			return store.Observation{PatientID: f.ada.ID, DeviceID: s.dev.ID, Seq: seq, Code: code, Value: v, Unit: unit,
				EffectiveAt: at(20, sec), ReceivedAt: at(20, sec+1)}
		}
		if err := f.st.AppendObservations(t.Context(), s.dev.ID, 12, []store.Observation{
			o(8, "8867-4", 95, "/min", 0),               // pulse 91-110: 1
			o(9, "59408-5", spo2, "%", 1),               // see each case
			o(10, "9279-1", 18, "/min", 2),              // 12-20: 0
			o(11, "8310-5", 38.4, "Cel", 3),             // 38.1-39.0: 1
			o(12, store.CodeSystolic, 105, "mm[Hg]", 4), // 101-110: 1
			o(12, store.CodeDiastolic, 70, "mm[Hg]", 4),
		}); err != nil {
			t.Fatal(err)
		}
	}
	enter := func(t *testing.T, f *fixture, kind, text string, when time.Time) {
		t.Helper()
		if _, err := f.st.AppendNEWS2Entry(t.Context(), store.NEWS2Entry{PatientID: f.ada.ID, AppointmentID: f.appt1.ID,
			Kind: kind, Text: text, By: f.grace.ID, At: when}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("complete is final", func(t *testing.T) {
		f := newFixture(t)
		s := seedVitals(t, f)
		enter(t, f, store.NEWS2Consciousness, "confusion", at(19, 0)) // 3
		enter(t, f, store.NEWS2Oxygen, "oxygen", at(19, 30))          // 2
		enter(t, f, store.NEWS2Oxygen, "air", at(40, 0))              // after the visit: not counted
		round(t, f, s, 95)                                            // scale 1, 94-95: 1
		o := exportedNEWS2(t, f, s.visit.ID)
		if o.Status != "final" || o.ValueInteger == nil || *o.ValueInteger != 9 {
			t.Fatalf("NEWS2 %s %v, want final 9: %s", o.Status, o.ValueInteger, o.Note[0].Text)
		}
		want := "Respiration rate score=0, SpO2 score=1, Air or oxygen score=2, Systolic blood pressure score=1, Pulse score=1, Consciousness score=3, Temperature score=1"
		if got := componentScores(o); got != want {
			t.Errorf("components: %s\nwant: %s", got, want)
		}
		if n := o.Note[0].Text; !strings.Contains(n, "Entered by the physician: Air or oxygen, Consciousness.") || strings.Contains(n, "Incomplete") {
			t.Errorf("note: %q", n)
		}
		if o.EffectiveDateTime != preciseInstant(at(20, 4)) || len(o.DerivedFrom) != 5 {
			t.Errorf("effective %s, derived from %v", o.EffectiveDateTime, o.DerivedFrom)
		}
	})

	t.Run("scale 2", func(t *testing.T) {
		f := newFixture(t)
		s := seedVitals(t, f)
		enter(t, f, store.NEWS2Consciousness, "alert", at(19, 0))
		enter(t, f, store.NEWS2Oxygen, "air", at(19, 0))
		enter(t, f, store.NEWS2Scale2, "on", at(19, 0))
		round(t, f, s, 89) // scale 2, 88-92: 0 (scale 1 would score 3)
		o := exportedNEWS2(t, f, s.visit.ID)
		if o.Status != "final" || *o.ValueInteger != 3 || !strings.Contains(componentScores(o), "SpO2 score=0") ||
			!strings.Contains(o.Note[0].Text, "SpO2 scale 2.") {
			t.Errorf("NEWS2 %s %d %s: %s", o.Status, *o.ValueInteger, componentScores(o), o.Note[0].Text)
		}
	})

	t.Run("stale and missing entries are preliminary", func(t *testing.T) {
		f := newFixture(t)
		s := seedVitals(t, f)
		enter(t, f, store.NEWS2Consciousness, "alert", at(-120, 0)) // two hours before: stale
		round(t, f, s, 95)
		o := exportedNEWS2(t, f, s.visit.ID)
		n := o.Note[0].Text
		if o.Status != "preliminary" || !strings.Contains(n, "Neither measured nor entered: Air or oxygen.") ||
			!strings.Contains(n, "Stale, counted at their last value: Consciousness (last at 2026-11-23T08:00:00.000Z).") {
			t.Errorf("NEWS2 %s: %q", o.Status, n)
		}
		if got := componentScores(o); !strings.Contains(got, "Air or oxygen score=absent") || !strings.Contains(got, "Consciousness score=0") {
			t.Errorf("components: %s", got)
		}
	})
}
