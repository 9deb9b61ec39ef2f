package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/scheduling"
)

func TestAvailabilityTextRoundTrip(t *testing.T) {
	zone, _ := time.LoadLocation("America/New_York")
	form := map[string]string{
		"slot": "30", "buffer": "10", "notice": "2", "horizon": "90",
		"weekly":    "Mon 09:00-12:30 13:30-17:00\r\n# lunch is not bookable\nFriday 08:00-12:00\n",
		"overrides": "2026-12-24 off\n2026-12-27 10:00-14:00 15:00-17:00",
		"timeoff":   "2026-12-20 09:00 - 2026-12-22 17:00",
		"types":     "new 60 New patient\nfu 20 Follow-up call",
	}
	a, errs := parseAvailability(func(k string) string { return form[k] }, zone)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if a.SlotLength != 30*time.Minute || a.Buffer != 10*time.Minute || a.MinNotice != 2*time.Hour || a.Horizon != 90*24*time.Hour ||
		len(a.Weekly) != 3 || a.Weekly[1] != (scheduling.WeeklyHours{Weekday: time.Monday, Start: 13*60 + 30, End: 17 * 60}) ||
		len(a.Overrides) != 2 || len(a.Overrides[0].Blocks) != 0 || len(a.Overrides[1].Blocks) != 2 ||
		len(a.VisitTypes) != 2 || a.VisitTypes[1].Name != "Follow-up call" || a.VisitTypes[1].Duration != 20*time.Minute {
		t.Fatalf("parsed %+v", a)
	}
	// Time off is in the physician's zone: 09:00 in New York in December is 14:00 UTC.
	if want := time.Date(2026, 12, 20, 14, 0, 0, 0, time.UTC); !a.TimeOff[0].Start.Equal(want) {
		t.Errorf("time off starts %v, want %v", a.TimeOff[0].Start, want)
	}
	v := formatAvailability(a, zone)
	again, errs := parseAvailability(func(k string) string {
		return map[string]string{"slot": v.Slot, "buffer": v.Buffer, "notice": v.Notice, "horizon": v.Horizon,
			"weekly": v.Weekly, "overrides": v.Overrides, "timeoff": v.TimeOff, "types": v.Types}[k]
	}, zone)
	if len(errs) > 0 || fmt.Sprint(again) != fmt.Sprint(a) {
		t.Errorf("written and read again:\n%+v\nwant\n%+v (%v)", again, a, errs)
	}
}

func TestAvailabilityTextErrors(t *testing.T) {
	for _, c := range []struct {
		field, value, want string
	}{
		{"slot", "", "slot length"},
		{"slot", "thirty", "whole number"},
		{"weekly", "Mon 9-12", `line 1: "9-12"`},
		{"weekly", "Funday 09:00-12:00", "line 1"},
		{"weekly", "Mon 12:00-09:00", `"12:00-09:00"`},
		{"overrides", "24/12/2026 off", "line 1"},
		{"timeoff", "2026-12-22 17:00 - 2026-12-20 09:00", "a later end"},
		{"types", "new sixty New patient", "code, minutes and a name"},
		{"all", "", "two overrides"},
	} {
		form := map[string]string{"slot": "30", "weekly": "Mon 09:00-12:00"}
		if c.field == "all" {
			form["overrides"] = "2026-12-24 off\n2026-12-24 10:00-11:00"
		} else {
			form[c.field] = c.value
		}
		_, errs := parseAvailability(func(k string) string { return form[k] }, time.UTC)
		if !strings.Contains(errs[c.field], c.want) {
			t.Errorf("%s %q: errors %v, want %q under %s", c.field, c.value, errs, c.want, c.field)
		}
	}
}

func TestAvailabilityEditor(t *testing.T) {
	f := schedFixture(t)
	u := fmt.Sprintf("%s/physicians/%d/availability", f.srv.URL, f.doc.ID)
	sched := f.signIn(t, "sched@example.org")
	day := tomorrowAt(0, 0).Format(dateLayout)
	status, body := getPage(t, sched, u)
	if status != http.StatusOK || !strings.Contains(body, "Sun 00:00-24:00") || !strings.Contains(body, "new 60 New patient") {
		t.Fatalf("editor: %d", status)
	}
	// A bad line saves nothing.
	before, _ := f.st.Availability(t.Context(), f.doc.ID)
	form := url.Values{"slot": {"30"}, "weekly": {"Mon 09:00-17:00\nTue 9 to 5"}}
	if st, body := post(t, sched, u, form); st != http.StatusUnprocessableEntity || !strings.Contains(body, `id="weekly-error"`) {
		t.Fatalf("bad hours: %d", st)
	}
	if after, _ := f.st.Availability(t.Context(), f.doc.ID); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("a refused form changed the availability")
	}
	// A day off makes that day bookable no more.
	var week []string
	for _, d := range weekdayNames {
		week = append(week, d+" 00:00-24:00")
	}
	form = url.Values{"slot": {"30"}, "weekly": {strings.Join(week, "\n")}, "overrides": {day + " off"}}
	if st, _ := post(t, sched, u, form); st != http.StatusOK {
		t.Fatalf("save: %d", st)
	}
	if st, _ := post(t, sched, f.srv.URL+"/appointments", bookForm(f, tomorrowAt(10, 0), "")); st != http.StatusUnprocessableEntity {
		t.Errorf("booking on the day off: %d, want 422", st)
	}
	// The physician edits their own hours only; patients none.
	doc := f.signIn(t, "doc@example.org")
	if st, _ := getPage(t, doc, u); st != http.StatusOK {
		t.Errorf("physician on own hours: %d", st)
	}
	if st, _ := getPage(t, doc, fmt.Sprintf("%s/physicians/%d/availability", f.srv.URL, f.doc2.ID)); st != http.StatusForbidden {
		t.Errorf("physician on another's hours: %d, want 403", st)
	}
	if st, _ := post(t, doc, fmt.Sprintf("%s/physicians/%d/availability", f.srv.URL, f.doc2.ID), form); st != http.StatusForbidden {
		t.Errorf("physician saving another's hours: %d, want 403", st)
	}
	if st, _ := getPage(t, f.joinClient(t, f.visit), u); st != http.StatusForbidden {
		t.Errorf("patient on the editor: %d, want 403", st)
	}
}

func TestClockRefusesOverflowAndSigns(t *testing.T) {
	for _, s := range []string{"307445734561825861:00", "307445734561825860:00", "+9:00", "10:+5", "9:5", "123:00", "24:01", "-1:00"} {
		if m, ok := parseClock(s); ok {
			t.Errorf("parseClock(%q) = %d, true; want refused", s, m)
		}
	}
	for s, want := range map[string]int{"0:00": 0, "09:30": 570, "24:00": 1440, "9:05": 545} {
		if m, ok := parseClock(s); !ok || m != want {
			t.Errorf("parseClock(%q) = %d, %v; want %d", s, m, ok, want)
		}
	}
}

func TestPatientZoneNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"Europe/London": true, "America/Argentina/Buenos_Aires": true, "UTC": true, "Etc/UTC": true,
		"Local": false, "localtime": false, "posixrules": false, "Factory": false, "right/UTC": false,
		"posix/Europe/London": false, "Europe//London": false, "./UTC": false, "Europe/./London": false, "Mars/Olympus": false, "": false,
	} {
		if got := account.ValidZone(name); got != ok {
			t.Errorf("account.ValidZone(%q) = %v, want %v", name, got, ok)
		}
	}
}
