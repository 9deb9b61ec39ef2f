package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

func testNEWS2Records(t *testing.T, st store.Store) {
	ctx := context.Background()
	pat := user(t, st, "news2-pat@example.org", store.RolePatient)
	doc := user(t, st, "news2-doc@example.org", store.RolePhysician)
	when := odd(t)

	// Entries come back oldest first, from since on.
	ins := []store.NEWS2Entry{
		{PatientID: pat.ID, AppointmentID: 7, Kind: store.NEWS2Oxygen, Text: "oxygen", By: doc.ID, At: when},
		{PatientID: pat.ID, Kind: store.NEWS2Value, Code: "9279-1", Value: 23.5, By: doc.ID, At: when.Add(2 * time.Minute)},
		{PatientID: pat.ID, Kind: store.NEWS2Consciousness, Text: "voice", By: doc.ID, At: when.Add(time.Minute)},
	}
	for i, e := range ins {
		got, err := st.AppendNEWS2Entry(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID == 0 || !sameInstant(e.At, got.At) {
			t.Fatalf("entry %d stored as %+v", i, got)
		}
	}
	if _, err := st.AppendNEWS2Entry(ctx, store.NEWS2Entry{PatientID: 99999, Kind: store.NEWS2Oxygen, Text: "air", By: doc.ID, At: when}); err == nil {
		t.Error("an entry for an unknown patient was stored")
	} else {
		wantErr(t, "entry for an unknown patient", err, store.ErrNotFound)
	}
	got, err := st.NEWS2EntriesSince(ctx, pat.ID, when.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != store.NEWS2Consciousness || got[0].Text != "voice" ||
		got[1].Kind != store.NEWS2Value || got[1].Code != "9279-1" || got[1].Value != 23.5 || got[1].By != doc.ID ||
		!sameInstant(when.Add(2*time.Minute), got[1].At) {
		t.Fatalf("entries since: %+v", got)
	}
	if all, _ := st.NEWS2EntriesSince(ctx, pat.ID, time.Time{}); len(all) != 3 || all[0].AppointmentID != 7 || all[0].Text != "oxygen" {
		t.Fatalf("all entries: %+v", all)
	}

	// Thresholds are replaced as a whole.
	low, high := 50.0, 120.0
	if err := st.SetAlertThresholds(ctx, pat.ID, []store.AlertThreshold{
		{Code: "8867-4", Low: &low, High: &high, By: doc.ID, At: when},
		{Code: "59408-5", Low: &low, By: doc.ID, At: when},
	}); err != nil {
		t.Fatal(err)
	}
	ts, err := st.AlertThresholds(ctx, pat.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Code != "59408-5" || ts[0].High != nil || ts[0].Low == nil || *ts[0].Low != 50 ||
		ts[1].Code != "8867-4" || *ts[1].High != 120 || ts[1].By != doc.ID || !sameInstant(when, ts[1].At) {
		t.Fatalf("thresholds: %+v", ts)
	}
	if err := st.SetAlertThresholds(ctx, pat.ID, []store.AlertThreshold{{Code: "8310-5", High: &high, By: doc.ID, At: when}}); err != nil {
		t.Fatal(err)
	}
	if ts, _ := st.AlertThresholds(ctx, pat.ID); len(ts) != 1 || ts[0].Code != "8310-5" {
		t.Fatalf("thresholds after replacing: %+v", ts)
	}
	// A duplicate code fails and leaves the thresholds as they were.
	if err := st.SetAlertThresholds(ctx, pat.ID, []store.AlertThreshold{{Code: "8867-4", High: &high, At: when}, {Code: "8867-4", Low: &low, At: when}}); err == nil {
		t.Error("two thresholds of one code were stored")
	}
	if ts, _ := st.AlertThresholds(ctx, pat.ID); len(ts) != 1 || ts[0].Code != "8310-5" {
		t.Fatalf("thresholds after a refused write: %+v", ts)
	}
	wantErr(t, "thresholds of an unknown patient", st.SetAlertThresholds(ctx, 99999, nil), store.ErrNotFound)
	if err := st.SetAlertThresholds(ctx, pat.ID, nil); err != nil {
		t.Fatal(err)
	}
	if ts, _ := st.AlertThresholds(ctx, pat.ID); len(ts) != 0 {
		t.Fatalf("thresholds after clearing: %+v", ts)
	}

	// The alert timeline.
	evs := []store.AlertEvent{
		{AlertID: "news2-band@1", State: "raised", Rule: "news2-band", Severity: "urgent", Title: "NEWS2 band rose to medium", At: when},
		{AlertID: "news2-band@1", State: "acknowledged", Rule: "news2-band", Severity: "urgent", Title: "NEWS2 band rose to medium", By: "User/5", At: when.Add(time.Minute)},
	}
	if err := st.AppendAlertEvents(ctx, pat.ID, evs); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendAlertEvents(ctx, pat.ID, []store.AlertEvent{{AlertID: "x", State: "exploded", Rule: "r", Severity: "info", Title: "t", At: when}}); err == nil {
		t.Error("an alert event of an unknown state was stored")
	}
	wantErr(t, "alert events of an unknown patient", st.AppendAlertEvents(ctx, 99999, evs), store.ErrNotFound)
	tl, err := st.AlertEventsBetween(ctx, pat.ID, when.Add(-time.Second), when.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(tl) != 2 || tl[0].State != "raised" || tl[0].PatientID != pat.ID || tl[1].State != "acknowledged" || tl[1].By != "User/5" ||
		!sameInstant(when.Add(time.Minute), tl[1].At) || tl[1].Title != evs[1].Title {
		t.Fatalf("alert timeline: %+v", tl)
	}
}
