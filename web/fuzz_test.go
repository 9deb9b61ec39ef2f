package web

import (
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/bedside-health/bedside/store"
)

// Fuzz targets for the form parsing helpers. Seeds are in
// testdata/fuzz/<target>; f.Add adds the examples of the tests beside them.

// fuzzZones are the physician zones FuzzParseAvailability picks from: UTC,
// the tests' zones, and zones with odd offsets or transitions (a 30-minute
// DST shift, DST at midnight, a skipped day, a 45-minute offset).
var fuzzZones = []string{"UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe",
	"America/Santiago", "Pacific/Apia", "Asia/Kathmandu", "America/St_Johns"}

// FuzzParseAvailability feeds the availability editor's fields to
// parseAvailability. It must never panic; errors are keyed by a field (or
// "all") and say something; and a form it accepts gives an Availability in
// the physician's zone that passes Validate and reads the same after
// formatAvailability writes it back into the editor.
func FuzzParseAvailability(f *testing.F) {
	f.Add("30", "10", "2", "90", "Mon 09:00-12:30 13:30-17:00\r\n# lunch is not bookable\nFriday 08:00-12:00\n",
		"2026-12-24 off\n2026-12-27 10:00-14:00 15:00-17:00", "2026-12-20 09:00 - 2026-12-22 17:00",
		"new 60 New patient\nfu 20 Follow-up call", uint8(1))
	f.Add("30", "", "", "", "Mon 09:00-12:00", "2026-12-24 off\n2026-12-24 10:00-11:00", "", "", uint8(0))
	f.Add("30", "", "", "", "Sun 00:00-24:00\nSat 00:00-24:00", "", "2026-11-01 01:30 - 2026-11-01 01:45", "", uint8(1))
	locs := make([]*time.Location, len(fuzzZones))
	for i, name := range fuzzZones {
		loc, err := time.LoadLocation(name)
		if err != nil {
			f.Fatal(err)
		}
		locs[i] = loc
	}
	f.Fuzz(func(t *testing.T, slot, buffer, notice, horizon, weekly, overrides, timeoff, types string, zone uint8) {
		loc := locs[int(zone)%len(locs)]
		form := map[string]string{"slot": slot, "buffer": buffer, "notice": notice, "horizon": horizon,
			"weekly": weekly, "overrides": overrides, "timeoff": timeoff, "types": types}
		a, errs := parseAvailability(func(k string) string { return form[k] }, loc)
		for k, msg := range errs {
			if _, field := form[k]; !field && k != "all" || msg == "" {
				t.Fatalf("error %q under %q", msg, k)
			}
		}
		if len(errs) > 0 {
			return
		}
		if a.Zone != loc {
			t.Fatalf("zone %v, want %v", a.Zone, loc)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted %+v, which does not validate: %v", a, err)
		}
		v := formatAvailability(a, loc)
		written := map[string]string{"slot": v.Slot, "buffer": v.Buffer, "notice": v.Notice, "horizon": v.Horizon,
			"weekly": v.Weekly, "overrides": v.Overrides, "timeoff": v.TimeOff, "types": v.Types}
		again, errs := parseAvailability(func(k string) string { return written[k] }, loc)
		if len(errs) > 0 || fmt.Sprint(again) != fmt.Sprint(a) {
			t.Fatalf("written as %q and read again:\n%+v\nwant\n%+v (%v)", written, again, a, errs)
		}
	})
}

// FuzzParseSpan checks parseSpan and parseClock, which read the hours of
// every weekly and override line: what they accept is minutes within a
// day, exactly the hours and minutes written, and clock writes it back.
func FuzzParseSpan(f *testing.F) {
	for _, s := range []string{"09:00-12:30", "00:00-24:00", "9-12", "12:00-09:00", "9:00-17:00", "+9:00-10:00", "08:00-24:01", "-1:00-02:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkClock(t, s)
		b, ok := parseSpan(s)
		if !ok {
			return
		}
		if b.Start < 0 || b.End > 24*60 || b.Start >= b.End {
			t.Fatalf("parseSpan(%q) = %+v", s, b)
		}
		from, to, _ := strings.Cut(s, "-")
		checkClock(t, strings.TrimSpace(from))
		checkClock(t, strings.TrimSpace(to))
		if again, ok := parseSpan(clock(b.Start) + "-" + clock(b.End)); !ok || again != b {
			t.Fatalf("parseSpan(%q) = %+v, but its clocks read back as %+v, %v", s, b, again, ok)
		}
	})
}

// checkClock checks what parseClock makes of s: if it accepts s, the result
// is hours×60+minutes in exact arithmetic, from 0 to 24:00.
func checkClock(t *testing.T, s string) {
	t.Helper()
	m, ok := parseClock(s)
	if !ok {
		return
	}
	h, mm, _ := strings.Cut(s, ":")
	hb, ok1 := new(big.Int).SetString(h, 10)
	mb, ok2 := new(big.Int).SetString(mm, 10)
	if !ok1 || !ok2 {
		t.Fatalf("parseClock(%q) = %d, but %q and %q are not numbers", s, m, h, mm)
	}
	want := new(big.Int).Add(new(big.Int).Mul(hb, big.NewInt(60)), mb)
	if want.Cmp(big.NewInt(int64(m))) != 0 || m < 0 || m > 24*60 {
		t.Fatalf("parseClock(%q) = %d minutes, but it says %s", s, m, want)
	}
	if again, ok := parseClock(clock(m)); !ok || again != m {
		t.Fatalf("parseClock(%q) = %d, but clock writes %q, read as %d, %v", s, m, clock(m), again, ok)
	}
}

// fuzzNow is the clock of FuzzPatientForm, fixed so that failures repeat.
var fuzzNow = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

// FuzzPatientForm posts the new-patient form and reads it with
// readPatientForm. It must never panic; errors are keyed by a field and say
// something; and a form it accepts has a name, an email address that
// net/mail reads back as itself, a date of birth (if any) that parses and
// is not in the future, a phone made of phone characters and a time zone
// that loads, and becomes exactly that patient.
func FuzzPatientForm(f *testing.F) {
	f.Add("Ana Beatriz Costa", "Ana.Costa@Example.org", "1984-02-29", "+351 21 123 4567", "Europe/Lisbon")
	f.Add("", "not-an-email", "2999-01-01", "call me", "Mars/Olympus")
	fields := map[string]bool{"name": true, "email": true, "birth_date": true, "phone": true, "time_zone": true}
	f.Fuzz(func(t *testing.T, name, email, birth, phone, zone string) {
		body := url.Values{"name": {name}, "email": {email}, "birth_date": {birth}, "phone": {phone}, "time_zone": {zone}}.Encode()
		r := httptest.NewRequest(http.MethodPost, "/patients", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if err := r.ParseForm(); err != nil {
			t.Fatalf("the form %q does not parse: %v", body, err)
		}
		p := readPatientForm(r, fuzzNow)
		for k, msg := range p.Errors {
			if !fields[k] || msg == "" {
				t.Fatalf("error %q under %q", msg, k)
			}
		}
		if len(p.Errors) > 0 {
			return
		}
		if p.Name == "" || len(p.Name) > 200 || p.Name != strings.TrimSpace(name) {
			t.Fatalf("accepted name %q", p.Name)
		}
		if a, err := mail.ParseAddress(p.Email); err != nil || a.Address != p.Email || len(p.Email) > 254 || p.Email != strings.ToLower(p.Email) {
			t.Fatalf("accepted email %q: %v", p.Email, err)
		}
		if p.BirthDate != "" {
			d, err := time.Parse(dateLayout, p.BirthDate)
			if err != nil || d.After(fuzzNow) || d.Year() < 1880 {
				t.Fatalf("accepted date of birth %q (%v, %v)", p.BirthDate, d, err)
			}
		}
		if len(p.Phone) > 32 || strings.IndexFunc(p.Phone, func(r rune) bool { return !unicode.IsDigit(r) && !strings.ContainsRune("+-() .", r) }) >= 0 {
			t.Fatalf("accepted phone %q", p.Phone)
		}
		if loc, err := time.LoadLocation(p.Zone); err != nil || p.Zone == "" || p.Zone == "Local" || loc.String() != p.Zone {
			t.Fatalf("accepted time zone %q: %v", p.Zone, err)
		}
		want := store.User{Name: p.Name, Email: p.Email, Role: store.RolePatient, TimeZone: p.Zone, BirthDate: p.BirthDate, Phone: p.Phone}
		if !reflect.DeepEqual(p.user, want) {
			t.Fatalf("accepted %+v as %+v", p.NewPatientView, p.user)
		}
	})
}

// FuzzWeekRequest reads a query string as the week view does, with
// weekRequestFrom, then asks the real server for that week as a scheduler.
// Reading must never panic and must take the numbers and texts as given;
// the page must always render (200, never a server error), showing the
// week of the date asked for, or this week if it is no date.
func FuzzWeekRequest(f *testing.F) {
	fx := schedFixture(f)
	c := fx.signIn(f, "sched@example.org")
	cookies := c.Jar.Cookies(mustURL(fx.srv.URL))
	h := fx.srv.Config.Handler
	f.Add(fmt.Sprintf("physician=%d&patient=%d&week=2026-11-25", fx.doc.ID, fx.pat.ID))
	f.Add(fmt.Sprintf("physician=%d&visit_type=new&week=2026-03-29", fx.doc.ID))
	f.Add("q=beatriz")
	f.Add("week=0000-01-01")
	f.Add("week=9999-12-31")
	london, err := time.LoadLocation("Europe/London") // the scheduler's zone
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, _ := url.ParseQuery(query) // as r.URL.Query does
		wr := weekRequestFrom(q)
		id := func(k string) int64 { n, _ := strconv.ParseInt(q.Get(k), 10, 64); return n }
		if wr.physicianID != id("physician") || wr.patientID != id("patient") || wr.visitType != q.Get("visit_type") ||
			wr.week != q.Get("week") || wr.query != q.Get("q") || wr.status != http.StatusOK || wr.reschedule.ID != 0 {
			t.Fatalf("weekRequestFrom(%q) = %+v", query, wr)
		}

		before := weekLabel(weekStart(time.Now(), london))
		req := httptest.NewRequest(http.MethodGet, "/schedule?"+q.Encode(), nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("GET /schedule?%s: %d %s", q.Encode(), w.Code, w.Body)
		}
		body := w.Body.String()
		want := []string{before, weekLabel(weekStart(time.Now(), london))}
		if d, err := time.Parse(dateLayout, wr.week); err == nil {
			// The Monday on or before d, by the calendar alone.
			want = []string{weekLabel(d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7)))}
		}
		for _, l := range want {
			if strings.Contains(body, `<strong id="week-label">`+l+`</strong>`) {
				return
			}
		}
		i := strings.Index(body, `id="week-label"`)
		t.Fatalf("week %q: page shows %.80q, want %q", wr.week, body[max(i, 0):], want)
	})
}

func weekLabel(monday time.Time) string { return "Week of " + monday.Format("Mon 2 Jan 2006") }

// FuzzCheckOffer feeds WHIP and WHEP request bodies to checkOffer. It must
// never panic; a refusal says what is wrong; and a body it accepts is SDP
// with an audio or video section that names VP8, H.264 or Opus.
func FuzzCheckOffer(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"))
	f.Add([]byte("hello"))
	f.Fuzz(func(t *testing.T, body []byte) {
		err := checkOffer(body)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "the ") {
				t.Fatalf("refusal %q does not say what is wrong", err)
			}
			return
		}
		low := strings.ToLower(string(body))
		if !strings.Contains(low, "m=audio") && !strings.Contains(low, "m=video") {
			t.Fatalf("accepted a body with no audio or video section: %q", body)
		}
		if !strings.Contains(low, "vp8/90000") && !strings.Contains(low, "opus/48000") &&
			!(strings.Contains(low, "h264/90000") && strings.Contains(low, "packetization-mode=1")) {
			t.Fatalf("accepted a body with neither VP8, H.264 in packetization mode 1, nor Opus: %q", body)
		}
	})
}
