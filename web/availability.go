package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
)

// The availability editor writes each kind of rule as lines of text, one
// rule a line, which is quick to type, to read back, and to use from a
// keyboard or a screen reader:
//
//	weekly hours   Mon 09:00-12:30
//	date override  2026-12-24 off   |   2026-12-27 10:00-14:00 15:00-17:00
//	time off       2026-12-20 09:00 - 2026-12-22 17:00   (physician's zone)
//	visit types    new 60 New patient   (code, minutes, name)

var weekdayNames = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

func parseWeekday(s string) (time.Weekday, bool) {
	for i, n := range weekdayNames {
		if strings.EqualFold(s, n) || strings.EqualFold(s, time.Weekday(i).String()) {
			return time.Weekday(i), true
		}
	}
	return 0, false
}

// parseClock reads 09:00 (or 24:00) as minutes after midnight.
func parseClock(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !allDigits(h) || !allDigits(m) {
		return 0, false // also keeps hh*60 far from overflowing
	}
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	if mm > 59 || hh*60+mm > 24*60 {
		return 0, false
	}
	return hh*60 + mm, true
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// parseSpan reads 09:00-12:30.
func parseSpan(s string) (scheduling.Block, bool) {
	a, b, ok := strings.Cut(s, "-")
	start, ok1 := parseClock(strings.TrimSpace(a))
	end, ok2 := parseClock(strings.TrimSpace(b))
	return scheduling.Block{Start: start, End: end}, ok && ok1 && ok2 && start < end
}

// lines yields the non-empty, trimmed lines of a text area with their numbers.
func lines(text string) (out []struct {
	n    int
	line string
}) {
	for i, l := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, struct {
				n    int
				line string
			}{i + 1, l})
		}
	}
	return out
}

// parseAvailability reads the editor's form in the physician's zone. The
// errors are by field, each naming the line that is wrong.
func parseAvailability(get func(string) string, zone *time.Location) (scheduling.Availability, map[string]string) {
	var a scheduling.Availability
	errs := map[string]string{}
	minutes := func(field, what string, max int) time.Duration {
		v := strings.TrimSpace(get(field))
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > max {
			errs[field] = fmt.Sprintf("Enter the %s as a whole number from 0 to %d.", what, max)
		}
		return time.Duration(n) * time.Minute
	}
	a.SlotLength = minutes("slot", "slot length in minutes", 480)
	if a.SlotLength == 0 && errs["slot"] == "" {
		errs["slot"] = "Enter the slot length in minutes, e.g. 30."
	}
	a.Buffer = minutes("buffer", "buffer in minutes", 240)
	a.MinNotice = minutes("notice", "notice in hours", 24*60) * 60
	a.Horizon = minutes("horizon", "horizon in days", 3650) * 60 * 24

	var bad []string
	for _, l := range lines(get("weekly")) {
		f := strings.Fields(l.line)
		wd, ok := parseWeekday(f[0])
		if !ok || len(f) < 2 {
			bad = append(bad, fmt.Sprintf("line %d %q: write a day and hours, e.g. Mon 09:00-12:30", l.n, l.line))
			continue
		}
		for _, sp := range f[1:] {
			b, ok := parseSpan(sp)
			if !ok {
				bad = append(bad, fmt.Sprintf("line %d: %q is not hours such as 09:00-12:30", l.n, sp))
				continue
			}
			a.Weekly = append(a.Weekly, scheduling.WeeklyHours{Weekday: wd, Start: b.Start, End: b.End})
		}
	}
	if len(bad) > 0 {
		errs["weekly"] = strings.Join(bad, "; ")
	}
	bad = nil
	for _, l := range lines(get("overrides")) {
		f := strings.Fields(l.line)
		d, err := scheduling.ParseDate(f[0])
		if err != nil || len(f) < 2 {
			bad = append(bad, fmt.Sprintf("line %d %q: write a date and hours or off, e.g. 2026-12-24 off", l.n, l.line))
			continue
		}
		o := scheduling.Override{Date: d}
		if !(len(f) == 2 && strings.EqualFold(f[1], "off")) {
			for _, sp := range f[1:] {
				b, ok := parseSpan(sp)
				if !ok {
					bad = append(bad, fmt.Sprintf("line %d: %q is not hours such as 10:00-14:00", l.n, sp))
					continue
				}
				o.Blocks = append(o.Blocks, b)
			}
		}
		a.Overrides = append(a.Overrides, o)
	}
	if len(bad) > 0 {
		errs["overrides"] = strings.Join(bad, "; ")
	}
	bad = nil
	for _, l := range lines(get("timeoff")) {
		from, to, ok := strings.Cut(l.line, " - ")
		start, err1 := time.ParseInLocation("2006-01-02 15:04", strings.TrimSpace(from), zone)
		end, err2 := time.ParseInLocation("2006-01-02 15:04", strings.TrimSpace(to), zone)
		if !ok || err1 != nil || err2 != nil || !end.After(start) {
			bad = append(bad, fmt.Sprintf("line %d %q: write a start and a later end, e.g. 2026-12-20 09:00 - 2026-12-22 17:00", l.n, l.line))
			continue
		}
		a.TimeOff = append(a.TimeOff, scheduling.Interval{Start: start.UTC(), End: end.UTC()})
	}
	if len(bad) > 0 {
		errs["timeoff"] = strings.Join(bad, "; ")
	}
	bad = nil
	for _, l := range lines(get("types")) {
		f := strings.Fields(l.line)
		n := 0
		if len(f) >= 3 {
			n, _ = strconv.Atoi(f[1])
		}
		if len(f) < 3 || n <= 0 || n > 480 {
			bad = append(bad, fmt.Sprintf("line %d %q: write a code, minutes and a name, e.g. new 60 New patient", l.n, l.line))
			continue
		}
		a.VisitTypes = append(a.VisitTypes, scheduling.VisitType{Code: f[0], Name: strings.Join(f[2:], " "), Duration: time.Duration(n) * time.Minute})
	}
	if len(bad) > 0 {
		errs["types"] = strings.Join(bad, "; ")
	}
	if len(errs) == 0 {
		a.Zone = zone
		if err := a.Validate(); err != nil {
			errs["all"] = err.Error()
		}
	}
	return a, errs
}

// formatAvailability writes a as the editor's fields.
func formatAvailability(a scheduling.Availability, zone *time.Location) templates.AvailabilityView {
	v := templates.AvailabilityView{
		Slot:    strconv.Itoa(int(a.SlotLength / time.Minute)),
		Buffer:  strconv.Itoa(int(a.Buffer / time.Minute)),
		Notice:  strconv.Itoa(int(a.MinNotice / time.Hour)),
		Horizon: strconv.Itoa(int(a.Horizon / (24 * time.Hour))),
	}
	var b strings.Builder
	for _, h := range a.Weekly {
		fmt.Fprintf(&b, "%s %s-%s\n", weekdayNames[h.Weekday], clock(h.Start), clock(h.End))
	}
	v.Weekly, b = b.String(), strings.Builder{}
	for _, o := range a.Overrides {
		b.WriteString(o.Date.String())
		if len(o.Blocks) == 0 {
			b.WriteString(" off")
		}
		for _, bl := range o.Blocks {
			fmt.Fprintf(&b, " %s-%s", clock(bl.Start), clock(bl.End))
		}
		b.WriteString("\n")
	}
	v.Overrides, b = b.String(), strings.Builder{}
	for _, iv := range a.TimeOff {
		fmt.Fprintf(&b, "%s - %s\n", iv.Start.In(zone).Format("2006-01-02 15:04"), iv.End.In(zone).Format("2006-01-02 15:04"))
	}
	v.TimeOff, b = b.String(), strings.Builder{}
	for _, t := range a.VisitTypes {
		fmt.Fprintf(&b, "%s %d %s\n", t.Code, int(t.Duration/time.Minute), t.Name)
	}
	v.Types = b.String()
	return v
}

// physicianParam loads the {id} physician; false means an answer was sent.
// A physician may only open their own.
func (s *server) physicianParam(w http.ResponseWriter, r *http.Request, c caller) (store.User, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "no such physician", http.StatusNotFound)
		return store.User{}, false
	}
	if c.User.Role == store.RolePhysician && c.User.ID != id {
		s.auditRefusal(r, c)
		s.forbidden(w, r, "you may change only your own hours")
		return store.User{}, false
	}
	p, err := s.Store.UserByID(r.Context(), id)
	if err != nil || p.Role != store.RolePhysician {
		http.Error(w, "no such physician", http.StatusNotFound)
		return store.User{}, false
	}
	return p, true
}

func (s *server) handleAvailability(w http.ResponseWriter, r *http.Request, c caller) {
	p, ok := s.physicianParam(w, r, c)
	if !ok {
		return
	}
	a, err := s.Store.Availability(r.Context(), p.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.serverError(w, r, err)
		return
	}
	zone := zoneOf(p.TimeZone)
	v := formatAvailability(a, zone)
	s.renderAvailability(w, r, c, p, v, http.StatusOK, "")
}

func (s *server) handleSetAvailability(w http.ResponseWriter, r *http.Request, c caller) {
	p, ok := s.physicianParam(w, r, c)
	if !ok || !s.readForm(w, r) {
		return
	}
	zone := zoneOf(p.TimeZone)
	a, errs := parseAvailability(r.PostFormValue, zone)
	v := templates.AvailabilityView{Slot: r.PostFormValue("slot"), Buffer: r.PostFormValue("buffer"), Notice: r.PostFormValue("notice"),
		Horizon: r.PostFormValue("horizon"), Weekly: r.PostFormValue("weekly"), Overrides: r.PostFormValue("overrides"),
		TimeOff: r.PostFormValue("timeoff"), Types: r.PostFormValue("types"), Errors: errs}
	if len(errs) > 0 {
		s.renderAvailability(w, r, c, p, v, http.StatusUnprocessableEntity, "")
		return
	}
	if err := s.Store.SetAvailability(r.Context(), p.ID, a); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "availability changed", "physician", p.ID, "by", c.User.ID)
	s.renderAvailability(w, r, c, p, formatAvailability(a, zone), http.StatusOK,
		"Saved. Visits already booked keep their times; new bookings follow these hours.")
}

func (s *server) renderAvailability(w http.ResponseWriter, r *http.Request, c caller, p store.User, v templates.AvailabilityView, status int, flash string) {
	v.Page = page("Hours of "+p.Name, c)
	v.PhysicianID, v.Name, v.Zone, v.Flash = p.ID, p.Name, zoneOf(p.TimeZone).String(), flash
	s.render(w, r, status, templates.AvailabilityPage(v))
}
