package fhir

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/monitor"
	"github.com/bedside-health/bedside/vitals/news2"
)

// snomedSystem is SNOMED CT.
const snomedSystem = "http://snomed.info/sct"

// news2Code is the SNOMED CT (UK extension) concept NHS England and HL7 UK
// use for the Royal College of Physicians NEWS2 total score; LOINC has no
// code for NEWS2.
const (
	news2Code    = "1104051000000101"
	news2Display = "Royal College of Physicians National Early Warning Score 2 (NEWS2) total score"
)

// encounterEverything answers GET /Encounter/{id}/$everything: the visit
// record as one searchset Bundle (the type the FHIR $everything operations
// return). The Encounter is the match; included are its Patient and
// Practitioner, every reading taken during it (each linked to the
// Encounter and its Device; blood pressure as the 85354-9 panel), those
// Devices (a relayed Bluetooth device's after its relay's), and a NEWS2 Observation derived from the visit's readings and
// the physician's NEWS2 entries. The caller must see both the visit and the
// patient's vitals: a scheduler is refused.
func (h *handler) encounterEverything(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	v, err := h.encounterOf(ctx, c, r.PathValue("id"))
	if err == nil {
		err = h.check(ctx, c, actRead, target{kind: kindObservation, id: v.appt.PatientID, rid: r.PathValue("id")})
	}
	var b Bundle
	if err == nil {
		b, err = h.everything(r, v)
	}
	if v.appt.ID != 0 {
		h.record(r, c, audit.ActionExport, v.appt.PatientID, ref(kindEncounter, v.appt.ID), err)
	}
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, b)
	return nil
}

// everything builds the visit's Bundle.
func (h *handler) everything(r *http.Request, v visit) (Bundle, error) {
	ctx := r.Context()
	a := v.appt
	base := h.base(r)
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Total: 1,
		Link: []BundleLink{{Relation: "self", URL: base + "/" + ref(kindEncounter, a.ID) + "/$everything"}}}
	add := func(rf string, res any, mode string) {
		b.Entry = append(b.Entry, BundleEntry{FullURL: base + "/" + rf, Resource: res, Search: EntrySearch{Mode: mode}})
	}
	n := h.names()
	enc, err := encounterResource(ctx, n, v)
	if err != nil {
		return b, err
	}
	add(ref(kindEncounter, a.ID), enc, "match")
	for _, id := range []int64{a.PatientID, a.PhysicianID} {
		u, err := h.Store.UserByID(ctx, id)
		if err != nil {
			return b, fmt.Errorf("user %d: %w", id, err)
		}
		kind := kindPatient
		if id == a.PhysicianID {
			kind = kindPractitioner
		}
		add(ref(kind, id), personResource(kind, u), "include")
	}
	end := v.end
	if end.IsZero() {
		end = h.Now()
	}
	rows, err := h.Store.ObservationsBetween(ctx, a.PatientID, v.start, end.Add(time.Millisecond))
	if err != nil {
		return b, fmt.Errorf("readings of visit %d: %w", a.ID, err)
	}
	readings := panels(rows)
	// The Devices the readings reference, in the order first referenced:
	// a relayed Bluetooth device follows its relay (its parent), which is
	// included even if it measured none of them.
	type key struct{ device, relayed int64 }
	var devices []key
	seen := map[key]bool{}
	need := func(k key) {
		if !seen[k] {
			seen[k] = true
			devices = append(devices, k)
		}
	}
	var obs []entry
	for _, rd := range readings {
		obs = append(obs, entry{ref(kindObservation, rd.ID), observationResource(rd, &v)})
		if rd.DeviceID != 0 {
			need(key{rd.DeviceID, 0})
		}
		if rd.Relayed != 0 {
			need(key{rd.DeviceID, rd.Relayed})
		}
	}
	creds := map[int64]store.Credential{}
	for _, k := range devices {
		d, ok := creds[k.device]
		if !ok {
			if d, err = h.Store.CredentialByID(ctx, store.CredentialDevice, k.device); err != nil {
				return b, fmt.Errorf("device %d: %w", k.device, err)
			}
			creds[k.device] = d
		}
		if k.relayed == 0 {
			add(ref(kindDevice, k.device), deviceResource(d, h), "include")
			continue
		}
		rd, err := h.Store.RelayedDeviceByID(ctx, k.relayed)
		if err != nil {
			return b, fmt.Errorf("relayed device %d: %w", k.relayed, err)
		}
		add(relayedRef(k.device, k.relayed), relayedResource(rd, d, h), "include")
	}
	for _, e := range obs {
		add(e.ref, e.resource, "include")
	}
	entries, err := h.Store.NEWS2EntriesSince(ctx, a.PatientID, v.start.Add(-news2Window))
	if err != nil {
		return b, fmt.Errorf("news2 entries of visit %d: %w", a.ID, err)
	}
	if i := slices.IndexFunc(entries, func(e store.NEWS2Entry) bool { return !e.At.Before(end.Add(time.Millisecond)) }); i >= 0 {
		entries = entries[:i] // made after the visit
	}
	if score, ok := news2Observation(readings, entries, v); ok {
		b.Entry = append(b.Entry, BundleEntry{FullURL: derivedURN(a.ID), Resource: score, Search: EntrySearch{Mode: "include"}})
	}
	return b, nil
}

// panels joins each blood-pressure pair of rows (same device, sequence
// and time) into one reading, keeping the order of rows.
func panels(rows []store.Observation) []reading {
	type key struct {
		dev, seq int64
		at       time.Time
	}
	dia := map[key]int{}
	for i, o := range rows {
		if o.Code == store.CodeDiastolic {
			dia[key{o.DeviceID, o.Seq, o.EffectiveAt}] = i
		}
	}
	used := map[int]bool{}
	var out []reading
	for _, o := range rows {
		if i, ok := dia[key{o.DeviceID, o.Seq, o.EffectiveAt}]; ok && o.Code == store.CodeSystolic {
			used[i] = true
		}
	}
	for i, o := range rows {
		rd := reading{Observation: o}
		switch {
		case o.Code == store.CodeDiastolic && used[i]:
			continue
		case o.Code == store.CodeSystolic:
			if j, ok := dia[key{o.DeviceID, o.Seq, o.EffectiveAt}]; ok {
				d := rows[j]
				rd.diastolic = &d
			}
		}
		out = append(out, rd)
	}
	return out
}

// derivedURN names the NEWS2 Observation of a visit, which is computed
// for the export and not stored: a UUID fixed by the visit.
func derivedURN(visitID int64) string {
	s := sha256.Sum256(fmt.Appendf(nil, "bedside news2 encounter %d", visitID))
	s[6] = s[6]&0x0f | 0x50 // version 5 layout, as name-based UUIDs are
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// news2Params maps the measured NEWS2 parameters to the LOINC codes of
// the readings they are scored from, the first being the one whose
// staleness window applies.
var news2Params = map[news2.Param][]string{
	news2.RespirationRate: {vitals.CodeRespRate},
	news2.SpO2:            {vitals.CodeSpO2, vitals.CodeSpO2Alt},
	news2.SystolicBP:      {vitals.CodeSystolic},
	news2.Pulse:           {vitals.CodeHeartRate},
	news2.Temperature:     {vitals.CodeTemperature},
}

// news2Window is how far before a visit the physician's NEWS2 entries are
// looked for, as the live monitor restores them: older ones are long
// stale.
const news2Window = 24 * time.Hour

// dataAbsentSystem is FHIR's code system for why a value is missing.
const dataAbsentSystem = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

// news2Input is what one NEWS2 parameter was scored from.
type news2Input struct {
	measured *reading          // the last trustworthy reading, if any
	entered  *store.NEWS2Entry // the physician's last entry, if any
}

// news2Inputs gathers, for each NEWS2 parameter, the last trustworthy
// reading and the last entry, and whether SpO2 scale 2 is on; at is the
// latest of them (zero when there are none).
func news2Inputs(readings []reading, entries []store.NEWS2Entry) (ins [news2.NumParams]news2Input, scale2 bool, at time.Time) {
	for i := range readings {
		rd := &readings[i]
		if (vitals.Reading{Flags: rd.Flags}).Doubtful() {
			continue
		}
		for p, codes := range news2Params {
			if slices.Contains(codes, rd.Code) {
				ins[p].measured = rd
				if rd.EffectiveAt.After(at) {
					at = rd.EffectiveAt
				}
			}
		}
	}
	for i := range entries {
		e := &entries[i]
		p, ok := enteredParam(*e)
		switch {
		case e.Kind == store.NEWS2Scale2:
			scale2 = e.Text == "on"
		case ok:
			ins[p].entered = e
		default:
			continue // an entry this version cannot read
		}
		if e.At.After(at) {
			at = e.At
		}
	}
	return ins, scale2, at
}

// enteredParam is the NEWS2 parameter an entry gives a value for.
func enteredParam(e store.NEWS2Entry) (news2.Param, bool) {
	switch e.Kind {
	case store.NEWS2Consciousness:
		return news2.Consciousness, true
	case store.NEWS2Oxygen:
		return news2.AirOrOxygen, true
	case store.NEWS2Value:
		code := vitals.Canonical(e.Code)
		for p, codes := range news2Params {
			if codes[0] == code {
				return p, true
			}
		}
	}
	return 0, false
}

// entryValue is an entry's value on the NEWS2 chart; ok is false for
// one that cannot be scored.
func entryValue(p news2.Param, e store.NEWS2Entry) (float64, bool) {
	switch p {
	case news2.Consciousness:
		l, err := news2.ParseLevel(e.Text)
		return float64(l), err == nil
	case news2.AirOrOxygen:
		switch e.Text {
		case "air":
			return news2.OnAir, true
		case "oxygen":
			return news2.OnOxygen, true
		}
		return 0, false
	}
	return e.Value, true
}

// pick chooses, as the live monitor does, between a parameter's reading
// and entry at time at: the fresh one, or the newer if both or neither
// are fresh (then marked stale). A reading stays fresh for its code's
// window, an entry for an hour.
func (in news2Input) pick(p news2.Param, at time.Time) (news2.Input, *reading) {
	var mv, ev news2.Input
	if in.measured != nil {
		mv = news2.Input{Source: news2.Measured, Value: in.measured.Value, Time: in.measured.EffectiveAt}
	}
	if in.entered != nil {
		if v, ok := entryValue(p, *in.entered); ok {
			ev = news2.Input{Source: news2.Entered, Value: v, Time: in.entered.At}
		}
	}
	mFresh := mv.Source != news2.Missing && at.Sub(mv.Time) < vitals.DefaultStaleAfter(news2Params[p][0])
	eFresh := ev.Source != news2.Missing && at.Sub(ev.Time) < monitor.DefaultEnteredFor
	useEntered := ev.Source != news2.Missing && (mv.Source == news2.Missing || !ev.Time.Before(mv.Time))
	switch {
	case mFresh && !eFresh:
		useEntered = false
	case eFresh && !mFresh:
		useEntered = true
	}
	got, from := mv, in.measured
	if useEntered {
		got, from = ev, nil
	}
	if got.Source != news2.Missing && !mFresh && !eFresh {
		got.Source = news2.Stale
	}
	return got, from
}

// news2Observation derives the visit's NEWS2 as the live monitor scored
// it at the latest of its inputs: each parameter from its last reading
// that is not doubtful or the physician's last entry (consciousness, air
// or oxygen, a value measured by hand), on the SpO2 scale the physician
// chose. With every input present and fresh the Observation is final;
// otherwise it is preliminary, its note says which inputs are missing or
// stale, and each missing parameter's component says why it has no
// value. ok is false when there is no input at all.
func news2Observation(readings []reading, entries []store.NEWS2Entry, v visit) (Observation, bool) {
	ins, scale2, at := news2Inputs(readings, entries)
	if at.IsZero() {
		return Observation{}, false
	}
	in := news2.Inputs{Scale2: scale2}
	var derived []Reference
	for p := range news2.NumParams {
		var from *reading
		in.Params[p], from = ins[p].pick(p, at)
		if from != nil {
			derived = append(derived, Reference{Reference: ref(kindObservation, from.ID)})
		}
	}
	s := news2.Compute(in)
	var components []ObservationComponent
	var measured, entered []string
	for p := range news2.NumParams {
		c := ObservationComponent{Code: CodeableConcept{Text: p.Title() + " score"}}
		switch s.Sources[p] {
		case news2.Missing:
			c.DataAbsentReason = &CodeableConcept{Coding: []Coding{{System: dataAbsentSystem, Code: "not-performed", Display: "Not Performed"}},
				Text: "neither measured nor entered"}
		default:
			pts := s.Points[p]
			c.ValueInteger = &pts
		}
		switch in.Params[p].Source {
		case news2.Measured:
			measured = append(measured, p.Title())
		case news2.Entered:
			entered = append(entered, p.Title())
		}
		components = append(components, c)
	}
	total := s.Total
	res := Observation{
		ResourceType:      kindObservation,
		Status:            "final",
		Category:          []CodeableConcept{{Coding: []Coding{{System: categorySystem, Code: "survey", Display: "Survey"}}}},
		Code:              CodeableConcept{Coding: []Coding{{System: snomedSystem, Code: news2Code, Display: news2Display}}, Text: "NEWS2"},
		Subject:           Reference{Reference: ref(kindPatient, v.appt.PatientID)},
		Encounter:         &Reference{Reference: ref(kindEncounter, v.appt.ID)},
		EffectiveDateTime: preciseInstant(at),
		ValueInteger:      &total,
		Interpretation:    []CodeableConcept{{Text: s.Response().Risk + " clinical risk (" + s.Response().Trigger + ")"}},
		DerivedFrom:       derived,
		Component:         components,
	}
	note := fmt.Sprintf("SpO2 scale %d.", s.Scale)
	if len(measured) > 0 {
		note += " Measured: " + strings.Join(measured, ", ") + "."
	}
	if len(entered) > 0 {
		note += " Entered by the physician: " + strings.Join(entered, ", ") + "."
	}
	if !s.Complete() {
		res.Status = "preliminary"
		var missing, stale []string
		for _, p := range s.Missing() {
			missing = append(missing, p.Title())
		}
		for _, p := range s.Stale() {
			stale = append(stale, p.Title()+" (last at "+preciseInstant(in.Params[p].Time)+")")
		}
		note = "Incomplete. " + note
		if len(missing) > 0 {
			note += " Neither measured nor entered: " + strings.Join(missing, ", ") + "."
		}
		if len(stale) > 0 {
			note += " Stale, counted at their last value: " + strings.Join(stale, ", ") + "."
		}
	}
	res.Note = []Annotation{{Text: note}}
	return res, true
}

// VisitExport serves a held visit's Bundle, exactly as GET
// /fhir/Encounter/{id}/$everything would to user u (the same checks, the
// same audit event), for pages that authenticate by session rather than
// by bearer token. id is the appointment's id as written in the URL.
func VisitExport(d Deps) func(w http.ResponseWriter, r *http.Request, u store.User, id string) {
	h := newHandler(d)
	return func(w http.ResponseWriter, r *http.Request, u store.User, id string) {
		r.SetPathValue("id", id)
		w.Header().Set("Content-Type", contentType)
		if err := h.encounterEverything(w, r, &caller{user: u}); err != nil {
			h.fail(w, r, err)
		}
	}
}
