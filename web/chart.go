package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/templates"
	"github.com/bedside-health/bedside/vitals"
)

// The patient chart shows the readings of the last chartWindow that
// arrived outside visits (remote monitoring), sampled: for each measure the
// last of each chartWindow/sparkPoints, and every flagged one.
const (
	chartWindow = 7 * 24 * time.Hour
	chartRecent = 30  // readings listed under the trends
	sparkWidth  = 240 // the sparkline's viewBox, in user units
	sparkHeight = 48
	sparkPoints = 120 // at most this many points per sparkline
)

// handleChart is a patient's chart for a physician who has a visit with
// them: trends of the readings that arrived between visits.
func (s *server) handleChart(w http.ResponseWriter, r *http.Request, c caller) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "no such patient", http.StatusNotFound)
		return
	}
	resource := audit.Ref("Patient", id) + "/chart"
	_, treats, err := s.Store.SearchAppointments(ctx, store.AppointmentQuery{PhysicianID: c.User.ID, PatientID: id, Limit: 1})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if treats == 0 {
		s.auditDenied(r, c, audit.ActionRead, id, resource)
		s.forbidden(w, r, "you have no visit with this patient")
		return
	}
	v, err := s.chartView(ctx, c, id)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.audited(r, c, audit.ActionRead, id, resource)
	s.render(w, r, http.StatusOK, templates.ChartPage(v))
}

// chartView gathers the chart of a patient.
func (s *server) chartView(ctx context.Context, c caller, patientID int64) (templates.ChartView, error) {
	loc := viewerZone(c.User)
	now := s.Now()
	from := now.Add(-chartWindow)
	v := templates.ChartView{Page: page("Patient chart", c), PatientName: s.userNameCtx(ctx, patientID),
		Window: "the last 7 days", Zone: loc.String()}
	obs, total, err := s.Store.SampleObservations(ctx, patientID, from, now, chartWindow/sparkPoints)
	if err != nil {
		return v, fmt.Errorf("readings of patient %d: %w", patientID, err)
	}
	v.Sampled = total > len(obs)
	visits, _, err := s.Store.SearchAppointments(ctx, store.AppointmentQuery{PatientID: patientID, Limit: 1000,
		Statuses: []scheduling.Status{scheduling.StatusArrived, scheduling.StatusFulfilled}})
	if err != nil {
		return v, fmt.Errorf("visits of patient %d: %w", patientID, err)
	}
	type span struct{ from, to time.Time }
	var held []span
	for _, a := range visits {
		start, end, err := s.heldPeriod(ctx, a)
		if err != nil {
			return v, err
		}
		if end.IsZero() {
			end = now
		}
		held = append(held, span{start, end})
		if a.PhysicianID == c.User.ID {
			v.Visits = append(v.Visits, templates.ChartVisit{When: formatWhen(a.Start, loc), RecordURL: "/visits/" + strconv.FormatInt(a.ID, 10) + "/record"})
		}
	}
	remote := obs[:0:0]
	for _, o := range obs {
		if !slices.ContainsFunc(held, func(h span) bool { return !o.EffectiveAt.Before(h.from) && !o.EffectiveAt.After(h.to) }) {
			remote = append(remote, o)
		}
	}
	byCode := map[string][]store.Observation{}
	var codes []string
	for _, o := range remote {
		if _, ok := byCode[o.Code]; !ok {
			codes = append(codes, o.Code)
		}
		byCode[o.Code] = append(byCode[o.Code], o)
	}
	slices.Sort(codes)
	for _, code := range codes {
		v.Series = append(v.Series, series(code, byCode[code], from, now, loc))
	}
	recent := remote[max(0, len(remote)-chartRecent):]
	relayed, err := s.relayedNames(ctx, patientID, recent)
	if err != nil {
		return v, err
	}
	for i := len(recent) - 1; i >= 0; i-- {
		o := recent[i]
		e := templates.TimelineEntry{When: o.EffectiveAt.In(loc).Format("Mon 2 Jan 15:04"), Kind: "reading",
			What: measureName(o.Code), Value: formatValue(o.Value, o.Unit), Doubtful: vitals.Reading{Flags: o.Flags}.Doubtful(), Flags: strings.Join(o.Flags, ", ")}
		e.Device = relayed[o.Relayed] // "" for a direct device's (0)
		v.Recent = append(v.Recent, e)
	}
	return v, nil
}

// series summarises one measure's readings over [from, to) and draws its
// sparkline from the trustworthy ones: the last of each time bucket.
func series(code string, obs []store.Observation, from, to time.Time, loc *time.Location) templates.ChartSeries {
	last := obs[len(obs)-1]
	sr := templates.ChartSeries{Name: measureName(code), Count: len(obs),
		Latest: formatValue(last.Value, last.Unit), LatestAt: last.EffectiveAt.In(loc).Format("Mon 2 Jan 15:04")}
	var good []store.Observation
	for _, o := range obs {
		if (vitals.Reading{Flags: o.Flags}).Doubtful() {
			sr.Doubtful++
			continue
		}
		good = append(good, o)
	}
	if len(good) == 0 {
		return sr
	}
	lo, hi := good[0].Value, good[0].Value
	for _, o := range good {
		lo, hi = min(lo, o.Value), max(hi, o.Value)
	}
	sr.Range = formatValue(lo, last.Unit) + " to " + formatValue(hi, last.Unit)
	span := to.Sub(from)
	bucket := map[int]store.Observation{}
	var order []int
	for _, o := range good {
		b := int(float64(o.EffectiveAt.Sub(from)) / float64(span) * sparkPoints)
		if _, ok := bucket[b]; !ok {
			order = append(order, b)
		}
		bucket[b] = o
	}
	var pts []string
	for _, b := range order {
		o := bucket[b]
		x := float64(o.EffectiveAt.Sub(from)) / float64(span) * sparkWidth
		y := float64(sparkHeight) / 2
		if hi > lo {
			y = sparkHeight - 2 - (o.Value-lo)/(hi-lo)*(sparkHeight-4)
		}
		pts = append(pts, strconv.FormatFloat(x, 'f', 1, 64)+","+strconv.FormatFloat(y, 'f', 1, 64))
	}
	sr.Points = strings.Join(pts, " ")
	return sr
}
