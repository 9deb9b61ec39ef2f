package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/calendar"
	"github.com/bedside-health/bedside/joinlink"
	"github.com/bedside-health/bedside/notify"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

var (
	linkRE     = regexp.MustCompile(`id="join-link"[^>]*value="([^"]+)"`)
	slotRE     = regexp.MustCompile(`name="start" value="([^"]+)" class="slot free"`)
	altRE      = regexp.MustCompile(`name="start" value="([^"]+)" class="button secondary"`)
	matchRE    = regexp.MustCompile(`patient=(\d+)">([^<]+)</a>`)
	weekSlotRE = regexp.MustCompile(`aria-label="(\w{3} \d+ \w{3})"><h2>[^<]*</h2><ul class="slots"><li><button type="submit" name="start" value="[^"]+" class="slot free" aria-label="[^"]+">(\d\d:\d\d)<`)
)

// schedFixture is a fixture whose server emails through a real notifier
// (mail kept in the outbox) and whose physician works every day, all day,
// in 30-minute slots, with a one-hour "new patient" visit type.
func schedFixture(t testing.TB) *fixture {
	t.Helper()
	f := newFixtureWith(t, func(d *Deps) {
		d.Notifier = &notify.Notifier{Store: d.Store, Links: joinlink.Links{Store: d.Store, Key: d.Secret}, PublicURL: "https://clinic.example", From: "visits@clinic.example"}
	})
	var week []scheduling.WeeklyHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		week = append(week, scheduling.WeeklyHours{Weekday: d, Start: 0, End: 24 * 60})
	}
	if err := f.st.SetAvailability(t.Context(), f.doc.ID, scheduling.Availability{Weekly: week, SlotLength: 30 * time.Minute,
		VisitTypes: []scheduling.VisitType{{Code: "new", Name: "New patient", Duration: time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// tomorrowAt is an instant on the grid a day or two ahead: 10:00 UTC (the
// physician's zone is Europe/London, so this is on the grid winter and summer).
func tomorrowAt(h, m int) time.Time {
	d := time.Now().UTC().AddDate(0, 0, 2)
	return time.Date(d.Year(), d.Month(), d.Day(), h, m, 0, 0, time.UTC)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getPage(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func bookForm(f *fixture, start time.Time, visitType string) url.Values {
	return url.Values{"physician": {strconv.FormatInt(f.doc.ID, 10)}, "patient": {strconv.FormatInt(f.pat.ID, 10)},
		"start": {start.Format(time.RFC3339)}, "visit_type": {visitType}}
}

// liveAppointments are the physician's live visits from tomorrow on.
func liveAppointments(t *testing.T, f *fixture) []scheduling.Appointment {
	t.Helper()
	// From tomorrow: the fixture's own visit is within the hour.
	list, err := f.st.AppointmentsBetween(t.Context(), f.doc.ID, 0, time.Now().Add(24*time.Hour), time.Now().AddDate(0, 0, 7))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// race posts n bookings at once with the i-th form and counts the answers;
// each refusal must offer free alternatives.
func raceBookings(t *testing.T, f *fixture, n int, form func(i int) url.Values) (created, taken int) {
	t.Helper()
	c := f.signIn(t, "sched@example.org")
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := c.PostForm(f.srv.URL+"/appointments", form(i))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case resp.StatusCode == http.StatusCreated:
				created++
			case resp.StatusCode == http.StatusConflict && strings.Contains(string(b), "That time was just taken"):
				// The answer offers free times nearby, never the one taken.
				alts := altRE.FindAllStringSubmatch(string(b), -1)
				if len(alts) == 0 {
					t.Errorf("booking %d: taken, but no alternatives offered", i)
				}
				for _, alt := range alts {
					if alt[1] == form(i).Get("start") {
						t.Errorf("booking %d: the taken time %s offered as an alternative", i, alt[1])
					}
				}
				taken++
			default:
				t.Errorf("booking %d: status %d", i, resp.StatusCode)
			}
		}()
	}
	close(start)
	wg.Wait()
	return created, taken
}

func TestConcurrentBookingsOverHTTP(t *testing.T) {
	t.Run("200 on one slot", func(t *testing.T) {
		f := schedFixture(t)
		at := tomorrowAt(10, 0)
		created, taken := raceBookings(t, f, 200, func(int) url.Values { return bookForm(f, at, "") })
		if n := len(liveAppointments(t, f)); created != 1 || taken != 199 || n != 1 {
			t.Fatalf("%d created, %d told it was taken, %d stored; want 1, 199, 1", created, taken, n)
		}
	})
	t.Run("overlapping durations", func(t *testing.T) {
		f := schedFixture(t)
		// One-hour visits at 10:00 and 10:30 and half-hour ones at 10:30 and 11:00 all contend.
		forms := []url.Values{bookForm(f, tomorrowAt(10, 0), "new"), bookForm(f, tomorrowAt(10, 30), ""),
			bookForm(f, tomorrowAt(10, 30), "new"), bookForm(f, tomorrowAt(10, 0), "")}
		created, taken := raceBookings(t, f, 100, func(i int) url.Values { return forms[i%len(forms)] })
		list := liveAppointments(t, f)
		for i := range list {
			for j := i + 1; j < len(list); j++ {
				if (scheduling.Interval{Start: list[i].Start, End: list[i].End}).Overlaps(scheduling.Interval{Start: list[j].Start, End: list[j].End}) {
					t.Errorf("stored visits overlap: %v-%v and %v-%v", list[i].Start, list[i].End, list[j].Start, list[j].End)
				}
			}
		}
		if created+taken != 100 || created != len(list) || created < 1 || created > 2 {
			t.Fatalf("%d created, %d taken, %d stored", created, taken, len(list))
		}
	})
}

func TestBookRescheduleCancel(t *testing.T) {
	f := schedFixture(t)
	c := f.signIn(t, "sched@example.org")
	ctx := context.Background()

	status, body := post(t, c, f.srv.URL+"/appointments", bookForm(f, tomorrowAt(9, 0), ""))
	m := linkRE.FindStringSubmatch(body)
	if status != http.StatusCreated || m == nil {
		t.Fatalf("book: %d, link %v", status, m)
	}
	first := m[1]
	list := liveAppointments(t, f)
	var a scheduling.Appointment
	for _, x := range list {
		if x.Start.Equal(tomorrowAt(9, 0)) {
			a = x
		}
	}
	apptURL := fmt.Sprintf("%s/appointments/%d", f.srv.URL, a.ID)

	// Taken: another booking sits at 11:00; moving onto it is refused with alternatives.
	if st, _ := post(t, c, f.srv.URL+"/appointments", url.Values{"physician": {strconv.FormatInt(f.doc.ID, 10)},
		"patient": {strconv.FormatInt(f.other.ID, 10)}, "start": {tomorrowAt(11, 0).Format(time.RFC3339)}}); st != http.StatusCreated {
		t.Fatalf("second booking: %d", st)
	}
	status, body = post(t, c, apptURL+"/reschedule", url.Values{"start": {tomorrowAt(11, 0).Format(time.RFC3339)}})
	alts := altRE.FindAllStringSubmatch(body, -1)
	if status != http.StatusConflict || len(alts) != 3 {
		t.Fatalf("moving onto a taken time: %d with %d alternatives, want 409 with 3", status, len(alts))
	}
	for _, alt := range alts {
		at, _ := time.Parse(time.RFC3339, alt[1])
		if d := at.Sub(tomorrowAt(11, 0)).Abs(); d > time.Hour || d == 0 {
			t.Errorf("alternative %s is not one of the nearest free times", alt[1])
		}
	}
	if got, _ := f.st.AppointmentByID(ctx, a.ID); !got.Start.Equal(tomorrowAt(9, 0)) {
		t.Fatalf("a refused move changed the visit: %+v", got)
	}

	// Moved: a new link, the old one replaced.
	status, body = post(t, c, apptURL+"/reschedule", url.Values{"start": {tomorrowAt(13, 30).Format(time.RFC3339)}})
	m = linkRE.FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || m[1] == first {
		t.Fatalf("move: %d, link %v (first %s)", status, m, first)
	}
	second := m[1]
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if st, _ := getPage(t, anon, first); st != http.StatusGone {
		t.Errorf("the link of before the move: %d, want 410", st)
	}
	// The new link is live (it opens a day before the visit).
	if cred, err := f.st.CredentialByHash(ctx, store.CredentialJoin, auth.HashToken(second[strings.LastIndex(second, "/")+1:])); err != nil || !cred.RevokedAt.IsZero() || cred.AppointmentID != a.ID {
		t.Errorf("the new link: %+v, %v; want a live link of the visit", cred, err)
	}

	// Cancelling needs a reason; then the link is dead too.
	if st, _ := post(t, c, apptURL+"/cancel", url.Values{"reason": {"  "}}); st != http.StatusUnprocessableEntity {
		t.Errorf("cancel without a reason: %d, want 422", st)
	}
	status, body = post(t, c, apptURL+"/cancel", url.Values{"reason": {"patient asked"}})
	if status != http.StatusOK || !strings.Contains(body, `data-status="cancelled"`) {
		t.Fatalf("cancel: %d", status)
	}
	if st, _ := getPage(t, anon, second); st != http.StatusGone {
		t.Errorf("the link after cancelling: %d, want 410", st)
	}
	if st, _ := post(t, c, apptURL+"/reschedule", url.Values{"start": {tomorrowAt(15, 0).Format(time.RFC3339)}}); st != http.StatusConflict {
		t.Errorf("moving a cancelled visit: %d, want 409", st)
	}

	// The page shows the history, and the patient was emailed three times: invite, update, cancellation.
	_, body = getPage(t, c, apptURL)
	for _, want := range []string{"Booked for", "Moved from", "Changed from booked to cancelled", "patient asked"} {
		if !strings.Contains(body, want) {
			t.Errorf("visit page lacks %q", want)
		}
	}
	msgs, err := f.st.ListMessages(ctx, a.ID, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, m := range msgs {
		kinds = append(kinds, m.Kind)
	}
	if fmt.Sprint(kinds) != "[cancel update invite]" {
		t.Errorf("emails %v, want cancel, update, invite (newest first)", kinds)
	}
	token := func(link string) string { return link[strings.LastIndex(link, "/join/"):] }
	if !strings.Contains(msgs[1].Text, token(second)) || strings.Contains(msgs[1].Text, token(first)) {
		t.Errorf("the update should carry the new link only:\n%s", msgs[1].Text)
	}
}

func TestStatusChanges(t *testing.T) {
	f := schedFixture(t)
	c := f.signIn(t, "sched@example.org")
	u := fmt.Sprintf("%s/appointments/%d/status", f.srv.URL, f.visit.ID)
	for _, step := range []struct {
		status string
		reason string
		want   int
	}{
		{"fulfilled", "", http.StatusOK}, // booked → fulfilled is allowed (a visit held off-line)
		{"arrived", "", http.StatusConflict},
		{"entered-in-error", "", http.StatusUnprocessableEntity},
		{"entered-in-error", "booked for the wrong patient", http.StatusOK},
		{"cancelled", "x", http.StatusBadRequest}, // cancelling has its own form
		{"bogus", "", http.StatusBadRequest},
	} {
		if st, _ := post(t, c, u, url.Values{"status": {step.status}, "reason": {step.reason}}); st != step.want {
			t.Errorf("status %s: %d, want %d", step.status, st, step.want)
		}
	}
	if a, _ := f.st.AppointmentByID(t.Context(), f.visit.ID); a.Status != scheduling.StatusEnteredInError {
		t.Errorf("status %s, want entered-in-error", a.Status)
	}
}

func TestPatientsCreateAndSearch(t *testing.T) {
	f := schedFixture(t)
	c := f.signIn(t, "sched@example.org")
	before, _, _ := f.st.SearchUsers(t.Context(), store.UserQuery{Role: store.RolePatient})
	status, body := post(t, c, f.srv.URL+"/patients", url.Values{"name": {""}, "email": {"not-an-email"}, "birth_date": {"2999-01-01"},
		"phone": {"call me"}, "time_zone": {"Mars/Olympus"}})
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("bad patient: %d, want 422", status)
	}
	for _, field := range []string{"name-error", "email-error", "birth_date-error", "phone-error", "time_zone-error"} {
		if !strings.Contains(body, `id="`+field+`"`) {
			t.Errorf("no message for %s", field)
		}
	}
	if after, _, _ := f.st.SearchUsers(t.Context(), store.UserQuery{Role: store.RolePatient}); len(after) != len(before) {
		t.Fatalf("a refused patient was stored")
	}
	form := url.Values{"name": {"Ana Beatriz Costa"}, "email": {"Ana.Costa@Example.org"}, "birth_date": {"1984-02-29"},
		"phone": {"+351 21 123 4567"}, "time_zone": {"Europe/Lisbon"}}
	resp, err := c.PostForm(f.srv.URL+"/patients", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/schedule?patient=") {
		t.Fatalf("create: %d %q", resp.StatusCode, loc)
	}
	if st, _ := post(t, c, f.srv.URL+"/patients", form); st != http.StatusUnprocessableEntity {
		t.Errorf("the same email again: %d, want 422", st)
	}
	// Found by part of the name from the booking page, and booked for.
	_, body = getPage(t, c, f.srv.URL+"/schedule?q=beatriz")
	m := matchRE.FindStringSubmatch(body)
	if m == nil || "/schedule?patient="+m[1] != loc || !strings.Contains(m[2], "born 1984-02-29") || !strings.Contains(m[2], "ana.costa@example.org") {
		t.Fatalf("search from the schedule: %v", m)
	}
	_, body = getPage(t, c, f.srv.URL+loc)
	if !strings.Contains(body, `id="booking-for">Ana Beatriz Costa, born 1984-02-29`) {
		t.Errorf("the schedule does not say who it books for")
	}
	_, body = getPage(t, c, f.srv.URL+"/patients?q=costa")
	if !strings.Contains(body, "Ana Beatriz Costa") || strings.Contains(body, f.pat.Email) {
		t.Errorf("patient search: wrong results")
	}
}

func TestSchedulingPagesNeedAScheduler(t *testing.T) {
	f := schedFixture(t)
	paths := []string{"/schedule", "/schedule/day", "/patients", "/patients/new", fmt.Sprintf("/patients/%d", f.pat.ID), "/outbox",
		fmt.Sprintf("/appointments/%d", f.visit.ID), fmt.Sprintf("/appointments/%d/reschedule", f.visit.ID)}
	posts := []string{"/appointments", "/patients", fmt.Sprintf("/appointments/%d/cancel", f.visit.ID),
		fmt.Sprintf("/appointments/%d/status", f.visit.ID), fmt.Sprintf("/appointments/%d/reschedule", f.visit.ID),
		fmt.Sprintf("/appointments/%d/link", f.visit.ID)}
	for who, c := range map[string]*http.Client{
		"physician": f.signIn(t, "doc@example.org"),
		"patient":   f.joinClient(t, f.visit),
	} {
		for _, p := range paths {
			if st, _ := getPage(t, c, f.srv.URL+p); st != http.StatusForbidden {
				t.Errorf("%s GET %s: %d, want 403", who, p, st)
			}
		}
		for _, p := range posts {
			if st, _ := post(t, c, f.srv.URL+p, url.Values{"reason": {"x"}, "status": {"arrived"}}); st != http.StatusForbidden {
				t.Errorf("%s POST %s: %d, want 403", who, p, st)
			}
		}
	}
	if a, _ := f.st.AppointmentByID(t.Context(), f.visit.ID); a.Status != scheduling.StatusBooked {
		t.Errorf("refused requests changed the visit to %s", a.Status)
	}
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range paths {
		resp, err := anon.Get(f.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("anonymous GET %s: %d, want a redirect to sign in", p, resp.StatusCode)
		}
	}
}

// TestWeekViewAcrossDST: a New York physician's 13:00 shows, to a London
// scheduler, at 18:00, then at 17:00 in the weeks between the two
// countries' clock changes, then at 18:00 again.
func TestWeekViewAcrossDST(t *testing.T) {
	now := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
	f := newFixtureWith(t, func(d *Deps) { d.Now = func() time.Time { return now } })
	ny, _ := f.st.CreateUser(t.Context(), store.User{Email: "ny@example.org", Name: "Dr NY", Role: store.RolePhysician, TimeZone: "America/New_York"})
	var week []scheduling.WeeklyHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		week = append(week, scheduling.WeeklyHours{Weekday: d, Start: 13 * 60, End: 14 * 60})
	}
	if err := f.st.SetAvailability(t.Context(), ny.ID, scheduling.Availability{Weekly: week, SlotLength: time.Hour}); err != nil {
		t.Fatal(err)
	}
	c := f.signIn(t, "sched@example.org") // Europe/London
	firstSlots := func(week string) string {
		_, body := getPage(t, c, fmt.Sprintf("%s/schedule?physician=%d&week=%s", f.srv.URL, ny.ID, week))
		if !strings.Contains(body, "Europe/London") || !strings.Contains(body, "America/New_York") {
			t.Errorf("week %s does not name both zones", week)
		}
		var out []string
		for _, m := range weekSlotRE.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1]+" "+m[2])
		}
		return strings.Join(out, ", ")
	}
	if got, want := firstSlots("2027-03-08"), "Mon 8 Mar 18:00, Tue 9 Mar 18:00, Wed 10 Mar 18:00, Thu 11 Mar 18:00, Fri 12 Mar 18:00, Sat 13 Mar 18:00, Sun 14 Mar 17:00"; got != want {
		t.Errorf("week of 8 March:\n got %s\nwant %s", got, want)
	}
	if got, want := firstSlots("2027-03-22"), "Mon 22 Mar 17:00, Tue 23 Mar 17:00, Wed 24 Mar 17:00, Thu 25 Mar 17:00, Fri 26 Mar 17:00, Sat 27 Mar 17:00, Sun 28 Mar 18:00"; got != want {
		t.Errorf("week of 22 March:\n got %s\nwant %s", got, want)
	}
}

// TestBookAndMoveAcrossDST is a scheduler's day across the spring change:
// a New York physician's 13:00 visit is booked for the week after the US
// clocks change and then moved to the week before, for a patient in London
// (whose clocks change three weeks later). The calendar invite, its update
// and the visit page each carry the instant the physician's 13:00 is on
// that day, and the patient's email gives the patient's own time.
func TestBookAndMoveAcrossDST(t *testing.T) {
	now := time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	f := newFixtureWith(t, func(d *Deps) {
		d.Now = clock
		d.Notifier = &notify.Notifier{Store: d.Store, Links: joinlink.Links{Store: d.Store, Key: d.Secret},
			PublicURL: "https://clinic.example", From: "visits@clinic.example", Now: clock}
	})
	ny, err := f.st.CreateUser(t.Context(), store.User{Email: "ny@example.org", Name: "Dr NY", Role: store.RolePhysician, TimeZone: "America/New_York"})
	if err != nil {
		t.Fatal(err)
	}
	var week []scheduling.WeeklyHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		week = append(week, scheduling.WeeklyHours{Weekday: d, Start: 13 * 60, End: 15 * 60})
	}
	if err := f.st.SetAvailability(t.Context(), ny.ID, scheduling.Availability{Weekly: week, SlotLength: 30 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	c := f.signIn(t, "sched@example.org")
	after := time.Date(2027, 3, 15, 17, 0, 0, 0, time.UTC) // Monday 13:00 EDT (UTC-4)
	before := time.Date(2027, 3, 8, 18, 0, 0, 0, time.UTC) // Monday 13:00 EST (UTC-5)

	status, _ := post(t, c, f.srv.URL+"/appointments", url.Values{"physician": {strconv.FormatInt(ny.ID, 10)},
		"patient": {strconv.FormatInt(f.pat.ID, 10)}, "start": {after.Format(time.RFC3339)}})
	if status != http.StatusCreated {
		t.Fatalf("book 13:00 New York on 15 March: %d", status)
	}
	list, err := f.st.AppointmentsBetween(t.Context(), ny.ID, 0, now, now.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].Start.Equal(after) {
		t.Fatalf("stored %+v, want one visit at %v", list, after)
	}
	a := list[0]
	// The scheduler (London) sees the physician's 13:00 and their own 17:00.
	_, page := getPage(t, c, fmt.Sprintf("%s/appointments/%d", f.srv.URL, a.ID))
	for _, want := range []string{"Mon 15 Mar 2027, 13:00 EDT (America/New_York)", "Mon 15 Mar 2027, 17:00 GMT (Europe/London)"} {
		if !strings.Contains(page, want) {
			t.Errorf("visit page lacks %q", want)
		}
	}

	status, _ = post(t, c, fmt.Sprintf("%s/appointments/%d/reschedule", f.srv.URL, a.ID), url.Values{"start": {before.Format(time.RFC3339)}})
	if status != http.StatusOK {
		t.Fatalf("move to 13:00 New York on 8 March: %d", status)
	}
	_, page = getPage(t, c, fmt.Sprintf("%s/appointments/%d", f.srv.URL, a.ID))
	for _, want := range []string{"Mon 8 Mar 2027, 13:00 EST (America/New_York)", "Mon 8 Mar 2027, 18:00 GMT (Europe/London)"} {
		if !strings.Contains(page, want) {
			t.Errorf("visit page after the move lacks %q", want)
		}
	}

	msgs, err := f.st.ListMessages(t.Context(), a.ID, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(msgs) // oldest first
	if len(msgs) != 2 {
		t.Fatalf("%d emails, want the invite and its update", len(msgs))
	}
	for i, want := range []struct {
		start time.Time
		seq   int
		text  string
	}{{after, 0, "Monday 15 March 2027, 17:00 (Europe/London)"}, {before, 1, "Monday 8 March 2027, 18:00 (Europe/London)"}} {
		ev, err := calendar.Decode(msgs[i].Calendar)
		if err != nil {
			t.Fatal(err)
		}
		if !ev.Start.Equal(want.start) || ev.Sequence != want.seq || ev.End.Sub(ev.Start) != 30*time.Minute {
			t.Errorf("email %d: calendar starts %v (sequence %d), want %v (sequence %d)", i, ev.Start, ev.Sequence, want.start, want.seq)
		}
		if !strings.Contains(msgs[i].Text, want.text) {
			t.Errorf("email %d does not give the patient's time %q:\n%s", i, want.text, msgs[i].Text)
		}
	}
}

// TestDayViewBooksAcrossPhysicians: on the day view a scheduler finds the
// patient, sees every physician's visits and free times in their own zone,
// and books one physician's free time with one press; the day then shows
// the visit in that physician's column and the time no longer free.
func TestDayViewBooksAcrossPhysicians(t *testing.T) {
	f := schedFixture(t)
	var week []scheduling.WeeklyHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		week = append(week, scheduling.WeeklyHours{Weekday: d, Start: 9 * 60, End: 12 * 60})
	}
	if err := f.st.SetAvailability(t.Context(), f.doc2.ID, scheduling.Availability{Weekly: week, SlotLength: time.Hour}); err != nil {
		t.Fatal(err)
	}
	c := f.signIn(t, "sched@example.org")
	london, _ := time.LoadLocation("Europe/London")
	day := time.Now().In(london).AddDate(0, 0, 2)
	date := day.Format("2006-01-02")

	_, page := getPage(t, c, f.srv.URL+"/schedule/day?date="+date)
	if strings.Contains(page, `class="slot free"`) || !strings.Contains(page, "find a patient above to book") {
		t.Fatalf("with no patient chosen the day offers times to book:\n%s", page)
	}
	_, page = getPage(t, c, f.srv.URL+"/schedule/day?date="+date+"&q=pat")
	if m := matchRE.FindStringSubmatch(page); m == nil || m[1] != strconv.FormatInt(f.pat.ID, 10) {
		t.Fatalf("searching the day view for the patient found %v", m)
	}

	dayURL := fmt.Sprintf("%s/schedule/day?date=%s&patient=%d", f.srv.URL, date, f.pat.ID)
	_, page = getPage(t, c, dayURL)
	doc2Slot := regexp.MustCompile(`value="([^"]+)" class="slot free" aria-label="Book (\d\d:\d\d) with doc2@example.org"`)
	free := doc2Slot.FindAllStringSubmatch(page, -1)
	if !strings.Contains(page, "Booking for") || len(free) != 3 || free[0][2] != "09:00" ||
		!strings.Contains(page, `aria-label="Book 00:00 with doc@example.org"`) {
		t.Fatalf("the day view does not offer both physicians' free times (doc2: %v):\n%s", free, page)
	}
	start := free[1][1] // 10:00 London

	status, body := post(t, c, f.srv.URL+"/appointments", url.Values{"physician": {strconv.FormatInt(f.doc2.ID, 10)},
		"patient": {strconv.FormatInt(f.pat.ID, 10)}, "week": {date}, "start": {start}})
	if status != http.StatusCreated || !strings.Contains(body, "Booked.") {
		t.Fatalf("booking from the day view: %d\n%s", status, body)
	}
	want, _ := time.Parse(time.RFC3339, start)
	list, err := f.st.AppointmentsBetween(t.Context(), f.doc2.ID, 0, want.Add(-time.Hour), want.Add(time.Hour))
	if err != nil || len(list) != 1 || !list[0].Start.Equal(want) || list[0].PatientID != f.pat.ID || !list[0].End.Equal(want.Add(time.Hour)) {
		t.Fatalf("doc2's visits around %s: %+v, %v; want the one booked", want, list, err)
	}

	_, page = getPage(t, c, dayURL)
	free = doc2Slot.FindAllStringSubmatch(page, -1)
	if len(free) != 2 || free[0][2] != "09:00" || free[1][2] != "11:00" {
		t.Errorf("after booking 10:00, doc2's free times are %v; want 09:00 and 11:00", free)
	}
	if !strings.Contains(page, fmt.Sprintf(`<a href="/appointments/%d">10:00–11:00 pat@example.org</a>`, list[0].ID)) {
		t.Errorf("the day view does not list the new visit in doc2's column:\n%s", page)
	}
}

// TestVisitKeepsTheZoneItWasBookedIn: a physician who changes zone after a
// booking still sees the time that was agreed, on the clock it was agreed
// on, beside the same instant on their new clock.
func TestVisitKeepsTheZoneItWasBookedIn(t *testing.T) {
	f := schedFixture(t)
	ctx := t.Context()
	c := f.signIn(t, "sched@example.org")
	start := tomorrowAt(9, 0)
	if status, _ := post(t, c, f.srv.URL+"/appointments", bookForm(f, start, "")); status != http.StatusCreated {
		t.Fatalf("book: %d", status)
	}
	var a scheduling.Appointment
	for _, x := range liveAppointments(t, f) {
		if x.Start.Equal(start) {
			a = x
		}
	}
	if a.ID == 0 || a.Zone != "Europe/London" {
		t.Fatalf("booked visit %+v; want it stored with the physician's zone Europe/London", a)
	}
	// The physician moves to Tokyo; the scheduler reads from Chicago.
	for email, zone := range map[string]string{"doc@example.org": "Asia/Tokyo", "sched@example.org": "America/Chicago"} {
		u, err := f.st.UserByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		u.TimeZone = zone
		if _, err := f.st.UpdateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	status, body := getPage(t, c, fmt.Sprintf("%s/appointments/%d", f.srv.URL, a.ID))
	if status != http.StatusOK {
		t.Fatalf("visit page: %d", status)
	}
	zone := func(name string) *time.Location {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	for _, want := range []string{
		`<dd id="when">` + start.In(zone("America/Chicago")).Format("Mon 2 Jan 2006, 15:04 MST") + " (America/Chicago)",
		start.In(zone("Asia/Tokyo")).Format("Mon 2 Jan 2006, 15:04 MST") + " (Asia/Tokyo)",
		`<dd id="booked-when">` + start.In(zone("Europe/London")).Format("Mon 2 Jan 2006, 15:04 MST") + " (Europe/London)",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("visit page lacks %q", want)
		}
	}
}

// TestBookingSaysWhereTheInvitationWent: without a mail server the scheduler
// is told the invitation waits in the Outbox, not that the patient is being
// emailed; with one, that the patient is being emailed. Cancelling says the
// same of its email.
func TestBookingSaysWhereTheInvitationWent(t *testing.T) {
	for _, mail := range []bool{false, true} {
		f := schedFixture(t)
		if mail {
			f = newFixtureWith(t, func(d *Deps) {
				d.Notifier = &notify.Notifier{Store: d.Store, Links: joinlink.Links{Store: d.Store, Key: d.Secret}, PublicURL: "https://clinic.example", From: "visits@clinic.example"}
				d.MailConfigured = true
			})
			var week []scheduling.WeeklyHours
			for d := time.Sunday; d <= time.Saturday; d++ {
				week = append(week, scheduling.WeeklyHours{Weekday: d, Start: 0, End: 24 * 60})
			}
			if err := f.st.SetAvailability(t.Context(), f.doc.ID, scheduling.Availability{Weekly: week, SlotLength: 30 * time.Minute}); err != nil {
				t.Fatal(err)
			}
		}
		c := f.signIn(t, "sched@example.org")
		status, body := post(t, c, f.srv.URL+"/appointments", bookForm(f, tomorrowAt(10, 0), ""))
		emailed, outbox := strings.Contains(body, "The patient is being emailed"), strings.Contains(body, "the email waits in the Outbox")
		if status != http.StatusCreated || emailed != mail || outbox == mail {
			t.Fatalf("mail server %v: booking answered %d, says emailed %v, outbox %v:\n%s", mail, status, emailed, outbox, body)
		}
		list := liveAppointments(t, f)
		if len(list) != 1 {
			t.Fatalf("%d visits booked", len(list))
		}
		status, body = post(t, c, fmt.Sprintf("%s/appointments/%d/cancel", f.srv.URL, list[0].ID), url.Values{"reason": {"unwell"}})
		emailed, outbox = strings.Contains(body, "the patient is being emailed the cancellation"), strings.Contains(body, "the email waits in the Outbox")
		if status != http.StatusOK || emailed != mail || outbox == mail {
			t.Fatalf("mail server %v: cancelling answered %d, says emailed %v, outbox %v:\n%s", mail, status, emailed, outbox, body)
		}
	}
}

// TestWeekSaysTodayIsOver: late in a day whose hours have all passed, the
// week says there are no more times today, not that the physician has no
// hours; days before say Past, days after offer their times.
func TestWeekSaysTodayIsOver(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	d := time.Now().In(london).AddDate(0, 0, 1)
	late := time.Date(d.Year(), d.Month(), d.Day(), 23, 50, 0, 0, london)
	f := newFixtureWith(t, func(d *Deps) { d.Now = func() time.Time { return late } })
	var week []scheduling.WeeklyHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		week = append(week, scheduling.WeeklyHours{Weekday: d, Start: 9 * 60, End: 17 * 60})
	}
	if err := f.st.SetAvailability(t.Context(), f.doc.ID, scheduling.Availability{Weekly: week, SlotLength: 30 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	c := f.signIn(t, "sched@example.org")
	_, page := getPage(t, c, fmt.Sprintf("%s/schedule?physician=%d", f.srv.URL, f.doc.ID))
	if !strings.Contains(page, "No more times today") {
		t.Errorf("at %s today's column does not say its times are over:\n%s", late, page)
	}
	if late.Weekday() != time.Sunday && !strings.Contains(page, "slot free") {
		t.Errorf("the days after %s offer no times", late)
	}
}
