package web

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/alert"
)

// maxNote bounds a visit note, in characters.
const maxNote = 20000

// ownVisit loads the {id} appointment and answers 403 (recorded) unless c
// is its physician.
func (s *server) ownVisit(w http.ResponseWriter, r *http.Request, c caller, action, what string) (scheduling.Appointment, bool) {
	a, ok := s.appointmentParam(w, r)
	if !ok {
		return a, false
	}
	if c.User.Role != store.RolePhysician || a.PhysicianID != c.User.ID {
		s.auditDenied(r, c, action, a.PatientID, audit.Ref("Appointment", a.ID)+what)
		s.forbidden(w, r, "this visit is not yours")
		return a, false
	}
	return a, true
}

// heldPeriod is when a visit ran (start zero: it was not held).
func (s *server) heldPeriod(ctx context.Context, a scheduling.Appointment) (start, end time.Time, err error) {
	if a.Status != scheduling.StatusArrived && a.Status != scheduling.StatusFulfilled {
		return time.Time{}, time.Time{}, nil
	}
	hist, err := s.Store.AppointmentHistory(ctx, a.ID)
	if err != nil {
		return start, end, fmt.Errorf("history of visit %d: %w", a.ID, err)
	}
	start, end = store.VisitPeriod(a, hist)
	return start, end, nil
}

// handleVisitRecord is the physician's record of a visit after the call:
// when and how long it ran, the note, and the vitals timeline.
func (s *server) handleVisitRecord(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	a, ok := s.ownVisit(w, r, c, audit.ActionRead, "/record")
	if !ok {
		return
	}
	v, err := s.recordView(ctx, c, a)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.audited(r, c, audit.ActionRead, a.PatientID, audit.Ref("Appointment", a.ID)+"/record")
	switch {
	case r.URL.Query().Get("saved") == "1":
		v.Flash = "The note is saved."
	case r.URL.Query().Get("completed") == "1":
		v.Flash = "The visit is marked completed."
	}
	s.render(w, r, http.StatusOK, templates.RecordPage(v))
}

// recordView gathers the visit record.
func (s *server) recordView(ctx context.Context, c caller, a scheduling.Appointment) (templates.RecordView, error) {
	loc := viewerZone(c.User)
	id := strconv.FormatInt(a.ID, 10)
	v := templates.RecordView{
		Page:          page("Visit record", c),
		AppointmentID: a.ID,
		PatientName:   s.userNameCtx(ctx, a.PatientID),
		Scheduled:     formatWhen(a.Start, loc),
		Status:        statusLabel(a.Status),
		ExportURL:     "/visits/" + id + "/record/fhir",
		ChartURL:      "/patients/" + strconv.FormatInt(a.PatientID, 10) + "/chart",
		NoteURL:       "/visits/" + id + "/notes",
	}
	start, end, err := s.heldPeriod(ctx, a)
	if err != nil || start.IsZero() {
		return v, err
	}
	v.Held = true
	if a.Status == scheduling.StatusArrived {
		v.CompleteURL = "/visits/" + id + "/complete"
	}
	v.Started = formatWhen(start, loc)
	until := end
	if end.IsZero() {
		v.Ended = "still going on"
		until = s.Now()
	} else {
		v.Ended = formatWhen(end, loc)
		v.Duration = duration(end.Sub(start))
	}
	switch n, err := s.Store.VisitNote(ctx, a.ID); {
	case err == nil:
		v.Note = n.Text
		v.NoteUpdated = formatWhen(n.UpdatedAt, loc)
	case !isNotFound(err):
		return v, fmt.Errorf("note of visit %d: %w", a.ID, err)
	}
	// To stay readable (and fast) over a long visit, the timeline keeps,
	// for each measure, the last reading of each minute, and every flagged
	// one.
	obs, total, err := s.Store.SampleObservations(ctx, a.PatientID, start, until.Add(time.Millisecond), time.Minute)
	if err != nil {
		return v, fmt.Errorf("readings of visit %d: %w", a.ID, err)
	}
	events, err := s.Store.DeviceEventsBetween(ctx, a.PatientID, start, until.Add(time.Millisecond))
	if err != nil {
		return v, fmt.Errorf("device events of visit %d: %w", a.ID, err)
	}
	alerts, err := s.Store.AlertEventsBetween(ctx, a.PatientID, start, until.Add(time.Millisecond))
	if err != nil {
		return v, fmt.Errorf("alerts of visit %d: %w", a.ID, err)
	}
	relayed, err := s.relayedNames(ctx, a.PatientID, obs)
	if err != nil {
		return v, err
	}
	v.Readings = total
	v.Timeline = timeline(obs, relayed, events, s.alertEntries(ctx, alerts, loc), loc)
	return v, nil
}

// throughRelay names a Bluetooth device that a relay (the patient's
// browser, a hub) paired, as the timeline shows its events and readings.
func throughRelay(device, relay string) string { return device + " (through " + relay + ")" }

// relayedNames names, by ID, the relayed devices that measured some of
// obs (throughRelay); nil, and no look-up, when none did.
func (s *server) relayedNames(ctx context.Context, patientID int64, obs []store.Observation) (map[int64]string, error) {
	if !slices.ContainsFunc(obs, func(o store.Observation) bool { return o.Relayed != 0 }) {
		return nil, nil
	}
	list, err := s.Store.RelayedDevices(ctx, patientID)
	if err != nil {
		return nil, fmt.Errorf("relayed devices of patient %d: %w", patientID, err)
	}
	names := make(map[int64]string, len(list))
	for _, d := range list {
		names[d.ID] = throughRelay(d.Name, d.Relay)
	}
	return names, nil
}

// ruleNames say in words which rule raised an alert.
var ruleNames = map[string]string{
	string(alert.RuleParameter): "NEWS2: one parameter scores 3",
	string(alert.RuleBand):      "NEWS2 band change",
	string(alert.RuleThreshold): "your threshold",
}

// alertEntries writes a visit's alert events as timeline lines, naming
// who acknowledged each (looked up once per person).
func (s *server) alertEntries(ctx context.Context, evs []store.AlertEvent, loc *time.Location) []timed {
	out := make([]timed, 0, len(evs))
	names := map[string]string{}
	for _, e := range evs {
		state := e.State
		switch e.State {
		case "raised":
			state = "raised, " + e.Severity
		case "notice":
			state = "noted"
		case "acknowledged":
			name, ok := names[e.By]
			if !ok {
				name = "someone"
				if id, err := strconv.ParseInt(strings.TrimPrefix(e.By, "User/"), 10, 64); err == nil && strings.HasPrefix(e.By, "User/") {
					name = s.userNameCtx(ctx, id)
				}
				names[e.By] = name
			}
			state = "acknowledged by " + name
		}
		rule := ruleNames[e.Rule]
		if rule == "" {
			rule = e.Rule
		}
		out = append(out, timed{e.At, templates.TimelineEntry{When: e.At.In(loc).Format("15:04:05"), Kind: "alert",
			What: e.Title, Value: state, Flags: rule, Severity: e.Severity}})
	}
	return out
}

// timed is a timeline line with the instant it sorts by.
type timed struct {
	at time.Time
	e  templates.TimelineEntry
}

// timeline merges readings, device events and alert lines (each in time
// order) in time order; at the same instant, a reading comes first, as
// an alert it raised follows it. A relayed reading names its device from
// relayed (relayedNames).
func timeline(obs []store.Observation, relayed map[int64]string, events []store.DeviceEvent, alerts []timed, loc *time.Location) []templates.TimelineEntry {
	out := make([]templates.TimelineEntry, 0, len(obs)+len(events)+len(alerts))
	ei, ai := 0, 0
	flush := func(before time.Time) {
		for {
			evOK := ei < len(events) && (before.IsZero() || events[ei].At.Before(before))
			alOK := ai < len(alerts) && (before.IsZero() || alerts[ai].at.Before(before))
			switch {
			case evOK && (!alOK || !alerts[ai].at.Before(events[ei].At)):
				e := events[ei]
				what := e.Device
				if e.Relay != "" { // a Bluetooth device, not the relay's socket
					what = throughRelay(e.Device, e.Relay)
				}
				out = append(out, templates.TimelineEntry{When: e.At.In(loc).Format("15:04:05"), Kind: "device",
					What: what, Value: e.Kind})
				ei++
			case alOK:
				out = append(out, alerts[ai].e)
				ai++
			default:
				return
			}
		}
	}
	// A visit has a handful of codes, whose devices send them together
	// and often repeat a value: each code's name and last value, and the
	// last second, are written once and reused.
	type written struct {
		name, unit, value string
		v                 float64
	}
	codes := map[string]*written{}
	lastSec, when := int64(0), ""
	for _, o := range obs {
		c, ok := codes[o.Code]
		if !ok {
			c = &written{name: measureName(o.Code)}
			codes[o.Code] = c
		}
		if c.value == "" || math.Float64bits(c.v) != math.Float64bits(o.Value) || c.unit != o.Unit {
			c.v, c.unit, c.value = o.Value, o.Unit, formatValue(o.Value, o.Unit)
		}
		if sec := o.EffectiveAt.Unix(); when == "" || sec != lastSec {
			lastSec, when = sec, o.EffectiveAt.In(loc).Format("15:04:05")
		}
		doubtful := vitals.Reading{Flags: o.Flags}.Doubtful()
		flush(o.EffectiveAt)
		e := templates.TimelineEntry{When: when, Kind: "reading",
			What: c.name, Value: c.value, Doubtful: doubtful}
		e.Device = relayed[o.Relayed] // "" for a direct device's (0)
		if len(o.Flags) > 0 {
			e.Flags = strings.Join(o.Flags, ", ")
		}
		out = append(out, e)
	}
	flush(time.Time{})
	return out
}

// measureName names a LOINC code as the pages do.
func measureName(code string) string {
	if n := vitals.Name(code); n != "" {
		return strings.ToUpper(n[:1]) + n[1:]
	}
	return code
}

// unitNames writes UCUM units as people read them.
var unitNames = map[string]string{"/min": "/min", "%": "%", "mm[Hg]": " mmHg", "Cel": " °C", "[degF]": " °F"}

// formatValue writes a reading with its unit as people read it.
func formatValue(v float64, unit string) string {
	u, ok := unitNames[unit]
	if !ok {
		u = " " + unit
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + u
}

// duration writes a visit's length to the minute.
func duration(d time.Duration) string {
	m := int(d.Round(time.Minute) / time.Minute)
	if m < 60 {
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d h %02d min", m/60, m%60)
}

// handleSaveNote saves the physician's note on a held visit.
func (s *server) handleSaveNote(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	a, ok := s.ownVisit(w, r, c, audit.ActionUpdate, "/note")
	if !ok {
		return
	}
	if a.Status != scheduling.StatusArrived && a.Status != scheduling.StatusFulfilled {
		http.Error(w, "a note is written on a visit that took place; this one has not", http.StatusConflict)
		return
	}
	text := strings.TrimSpace(strings.ReplaceAll(r.PostFormValue("note"), "\r\n", "\n"))
	if !utf8.ValidString(text) || utf8.RuneCountInString(text) > maxNote {
		http.Error(w, fmt.Sprintf("the note must be text of at most %d characters", maxNote), http.StatusBadRequest)
		return
	}
	if _, err := s.Store.SaveVisitNote(ctx, store.VisitNote{AppointmentID: a.ID, AuthorID: c.User.ID, Text: text, UpdatedAt: s.Now()}); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.audited(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID)+"/note")
	http.Redirect(w, r, "/visits/"+strconv.FormatInt(a.ID, 10)+"/record?saved=1", http.StatusSeeOther)
}

// handleCompleteVisit is the physician ending their visit once it is over:
// checked in becomes completed, which closes the record (its end, duration
// and timeline) and the FHIR encounter. Leaving the call does not, since a
// physician may leave and come back; without this only a scheduler could.
func (s *server) handleCompleteVisit(w http.ResponseWriter, r *http.Request, c caller) {
	a, ok := s.ownVisit(w, r, c, audit.ActionUpdate, "")
	if !ok || !s.readForm(w, r) {
		return
	}
	if a.Status != scheduling.StatusArrived {
		http.Error(w, "only a visit that is under way (checked in) can be marked completed; this one is "+statusLabel(a.Status), http.StatusConflict)
		return
	}
	_, err := s.Store.SetAppointmentStatus(r.Context(), a.ID, scheduling.StatusFulfilled, store.Change{ActorID: c.User.ID, At: s.Now()})
	if errors.Is(err, scheduling.ErrTransition) {
		http.Error(w, "this visit can no longer be marked completed", http.StatusConflict)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.Log.InfoContext(r.Context(), "appointment status changed", "appointment", a.ID, "status", scheduling.StatusFulfilled, "by", c.User.ID)
	s.audited(r, c, audit.ActionUpdate, a.PatientID, audit.Ref("Appointment", a.ID))
	http.Redirect(w, r, "/visits/"+strconv.FormatInt(a.ID, 10)+"/record?completed=1", http.StatusSeeOther)
}

// handleRecordExport downloads the visit as FHIR: the Bundle of GET
// /fhir/Encounter/{id}/$everything, for the physician's session.
// export is fhir.VisitExport, which checks and records the export again.
func (s *server) handleRecordExport(export func(http.ResponseWriter, *http.Request, store.User, string)) func(http.ResponseWriter, *http.Request, caller) {
	return func(w http.ResponseWriter, r *http.Request, c caller) {
		a, ok := s.ownVisit(w, r, c, audit.ActionExport, "")
		if !ok {
			return
		}
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="visit-%d.fhir.json"`, a.ID))
		export(w, r, c.User, strconv.FormatInt(a.ID, 10))
	}
}

// userNameCtx is a user's name, or "unknown".
func (s *server) userNameCtx(ctx context.Context, id int64) string {
	u, err := s.Store.UserByID(ctx, id)
	if err != nil {
		return "unknown"
	}
	return u.Name
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
