package fhir

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals"
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
// Devices, and a NEWS2 Observation derived from the last reading of each
// measured parameter. The caller must see both the visit and the
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
	var devices []int64
	seen := map[int64]bool{}
	var obs []entry
	for _, rd := range readings {
		obs = append(obs, entry{ref(kindObservation, rd.ID), observationResource(rd, &v)})
		if id := rd.DeviceID; id != 0 && !seen[id] {
			seen[id] = true
			devices = append(devices, id)
		}
	}
	for _, id := range devices {
		d, err := h.Store.CredentialByID(ctx, store.CredentialDevice, id)
		if err != nil {
			return b, fmt.Errorf("device %d: %w", id, err)
		}
		add(ref(kindDevice, id), deviceResource(d, h), "include")
	}
	for _, e := range obs {
		add(e.ref, e.resource, "include")
	}
	if score, ok := news2Observation(readings, v); ok {
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
// the readings they are scored from.
var news2Params = map[news2.Param][]string{
	news2.RespirationRate: {vitals.CodeRespRate},
	news2.SpO2:            {vitals.CodeSpO2, vitals.CodeSpO2Alt},
	news2.SystolicBP:      {vitals.CodeSystolic},
	news2.Pulse:           {vitals.CodeHeartRate},
	news2.Temperature:     {vitals.CodeTemperature},
}

// news2Observation derives the visit's NEWS2 from the last reading of each
// measured parameter that is not doubtful (SpO2 scale 1). Air or oxygen
// and consciousness are not measured by devices: left out, the score is
// incomplete and the Observation preliminary, saying what is missing. ok
// is false when no parameter was measured.
func news2Observation(readings []reading, v visit) (Observation, bool) {
	var in news2.Inputs
	var from [news2.NumParams]*reading
	var last time.Time
	for i := range readings {
		rd := &readings[i]
		if (vitals.Reading{Flags: rd.Flags}).Doubtful() {
			continue
		}
		for p, codes := range news2Params {
			for _, code := range codes {
				if rd.Code == code {
					in.Params[p] = news2.Input{Source: news2.Measured, Value: rd.Value, Time: rd.EffectiveAt}
					from[p] = rd
				}
			}
		}
	}
	var derived []Reference
	var components []ObservationComponent
	for p := range news2.NumParams {
		if from[p] == nil {
			continue
		}
		derived = append(derived, Reference{Reference: ref(kindObservation, from[p].ID)})
		if from[p].EffectiveAt.After(last) {
			last = from[p].EffectiveAt
		}
	}
	if len(derived) == 0 {
		return Observation{}, false
	}
	s := news2.Compute(in)
	for p := range news2.NumParams {
		if s.Sources[p] == news2.Missing {
			continue
		}
		pts := s.Points[p]
		components = append(components, ObservationComponent{Code: CodeableConcept{Text: p.Title() + " score"}, ValueInteger: &pts})
	}
	total := s.Total
	res := Observation{
		ResourceType:      kindObservation,
		Status:            "final",
		Category:          []CodeableConcept{{Coding: []Coding{{System: categorySystem, Code: "survey", Display: "Survey"}}}},
		Code:              CodeableConcept{Coding: []Coding{{System: snomedSystem, Code: news2Code, Display: news2Display}}, Text: "NEWS2"},
		Subject:           Reference{Reference: ref(kindPatient, v.appt.PatientID)},
		Encounter:         &Reference{Reference: ref(kindEncounter, v.appt.ID)},
		EffectiveDateTime: preciseInstant(last),
		ValueInteger:      &total,
		Interpretation:    []CodeableConcept{{Text: s.Response().Risk + " clinical risk (" + s.Response().Trigger + ")"}},
		DerivedFrom:       derived,
		Component:         components,
	}
	if !s.Complete() {
		res.Status = "preliminary"
		var missing []string
		for _, p := range s.Missing() {
			missing = append(missing, p.Title())
		}
		res.Note = []Annotation{{Text: "Incomplete: computed from the measured readings of the visit (SpO2 scale 1); not measured: " + strings.Join(missing, ", ") + "."}}
	}
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
