package main

import (
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
)

// TestDemoVisitWithinVitalsWindow: at any hour, the demo clinic has a
// visit to book that starts within 30 minutes, the time before a visit
// from which its live vitals open (web's vitalsOpenBefore); so someone
// trying Bedside can hold a call with live vitals at once, and so can the
// browser tests, which book the first free slot, whatever the hour.
func TestDemoVisitWithinVitalsWindow(t *testing.T) {
	const vitalsOpenBefore = 30 * time.Minute
	var okafor *scheduling.Availability
	var zone string
	for _, d := range demoUsers {
		if d.email == "dr.okafor@demo.bedside.test" {
			okafor, zone = d.avail, d.tz
		}
	}
	if okafor == nil {
		t.Fatal("no Dr Okafor in the demo clinic")
	}
	a := *okafor
	var err error
	if a.Zone, err = time.LoadLocation(zone); err != nil {
		t.Fatal(err)
	}
	// A week without a clock change, every 7 minutes.
	start := time.Date(2027, 7, 5, 0, 0, 0, 0, time.UTC)
	for now := start; now.Before(start.Add(7 * 24 * time.Hour)); now = now.Add(7 * time.Minute) {
		slots := scheduling.Slots(a, scheduling.Query{From: now, To: now.Add(vitalsOpenBefore + time.Nanosecond), Now: now})
		if len(slots) == 0 {
			t.Fatalf("at %s (%s) no demo visit starts within %s: a visit booked now has no live vitals until later",
				now.Format(time.RFC3339), now.In(a.Zone).Format("Mon 15:04 MST"), vitalsOpenBefore)
		}
	}
}
