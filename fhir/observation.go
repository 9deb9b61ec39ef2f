package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals"
)

// Code systems of Observation elements.
const (
	ucumSystem           = vitals.SystemUCUM
	loincSystem          = vitals.SystemLOINC
	categorySystem       = "http://terminology.hl7.org/CodeSystem/observation-category"
	interpretationSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
)

// Observation is a stored reading (or a blood-pressure panel of two) as a
// FHIR R4 Observation.
type Observation struct {
	ResourceType      string                 `json:"resourceType"`
	ID                string                 `json:"id,omitempty"`
	Status            string                 `json:"status"`
	Category          []CodeableConcept      `json:"category"`
	Code              CodeableConcept        `json:"code"`
	Subject           Reference              `json:"subject"`
	Encounter         *Reference             `json:"encounter,omitempty"`
	EffectiveDateTime string                 `json:"effectiveDateTime"`
	Issued            string                 `json:"issued,omitempty"`
	ValueQuantity     *Quantity              `json:"valueQuantity,omitempty"`
	ValueInteger      *int                   `json:"valueInteger,omitempty"`
	Interpretation    []CodeableConcept      `json:"interpretation,omitempty"`
	Note              []Annotation           `json:"note,omitempty"`
	Method            *CodeableConcept       `json:"method,omitempty"`
	Device            *Reference             `json:"device,omitempty"`
	DerivedFrom       []Reference            `json:"derivedFrom,omitempty"`
	Component         []ObservationComponent `json:"component,omitempty"`
}

// ObservationComponent is one part of a panel, such as the systolic
// pressure of a blood-pressure reading.
type ObservationComponent struct {
	Code          CodeableConcept `json:"code"`
	ValueQuantity *Quantity       `json:"valueQuantity,omitempty"`
	ValueInteger  *int            `json:"valueInteger,omitempty"`
	// DataAbsentReason says why a component has no value.
	DataAbsentReason *CodeableConcept  `json:"dataAbsentReason,omitempty"`
	Interpretation   []CodeableConcept `json:"interpretation,omitempty"`
}

// Quantity is a measured amount in a UCUM unit.
type Quantity struct {
	Value  float64 `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	System string  `json:"system,omitempty"`
	Code   string  `json:"code,omitempty"`
}

// Annotation is a note on a resource.
type Annotation struct {
	Text string `json:"text"`
}

// reading is what one Observation resource shows: one stored row, or a
// blood-pressure panel's systolic row with its diastolic partner.
type reading struct {
	store.Observation
	diastolic *store.Observation
}

// preciseInstant writes t as a FHIR instant in UTC, to the millisecond, as
// the store keeps readings.
func preciseInstant(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func loinc(code, display string) CodeableConcept {
	return CodeableConcept{Coding: []Coding{{System: loincSystem, Code: code, Display: display}}, Text: display}
}

func quantity(v float64, unit string) *Quantity {
	return &Quantity{Value: v, Unit: unit, System: ucumSystem, Code: unit}
}

// category is an Observation's category: vital signs, or laboratory for
// glucose.
func category(code string) []CodeableConcept {
	c := Coding{System: categorySystem, Code: "vital-signs", Display: "Vital Signs"}
	if code == vitals.CodeGlucoseMass || code == vitals.CodeGlucoseMol {
		c = Coding{System: categorySystem, Code: "laboratory", Display: "Laboratory"}
	}
	return []CodeableConcept{{Coding: []Coding{c}}}
}

// doubtful is the interpretation of a reading whose flags cast doubt on
// its value: indeterminate. Every flag is also kept as a note.
func doubtful(flags []string) []CodeableConcept {
	if !(vitals.Reading{Flags: flags}).Doubtful() {
		return nil
	}
	return []CodeableConcept{{Coding: []Coding{{System: interpretationSystem, Code: "IND", Display: "Indeterminate"}},
		Text: "doubtful: the device reported a problem or the value is improbable"}}
}

func notes(flags ...[]string) []Annotation {
	var out []Annotation
	for _, fs := range flags {
		for _, f := range fs {
			out = append(out, Annotation{Text: f})
		}
	}
	return out
}

// observationResource renders a reading; enc is the held visit it was
// taken during, if any.
func observationResource(rd reading, enc *visit) Observation {
	o := rd.Observation
	res := Observation{
		ResourceType:      kindObservation,
		ID:                strconv.FormatInt(o.ID, 10),
		Status:            "final",
		Category:          category(o.Code),
		Subject:           Reference{Reference: ref(kindPatient, o.PatientID)},
		EffectiveDateTime: preciseInstant(o.EffectiveAt),
		Issued:            preciseInstant(o.ReceivedAt),
	}
	if o.ReceivedAt.IsZero() {
		res.Issued = ""
	}
	if enc != nil {
		res.Encounter = &Reference{Reference: ref(kindEncounter, enc.appt.ID)}
	}
	switch {
	case o.Relayed != 0: // measured by a Bluetooth device its relay paired
		res.Device = &Reference{Reference: relayedRef(o.DeviceID, o.Relayed)}
	case o.DeviceID != 0:
		res.Device = &Reference{Reference: ref(kindDevice, o.DeviceID)}
	default:
		res.Method = &CodeableConcept{Text: "entered by hand"}
	}
	if d := rd.diastolic; d != nil {
		res.Code = loinc(vitals.CodeBPPanel, "Blood pressure panel with all children optional")
		res.Component = []ObservationComponent{
			{Code: loinc(vitals.CodeSystolic, "Systolic blood pressure"), ValueQuantity: quantity(o.Value, o.Unit), Interpretation: doubtful(o.Flags)},
			{Code: loinc(vitals.CodeDiastolic, "Diastolic blood pressure"), ValueQuantity: quantity(d.Value, d.Unit), Interpretation: doubtful(d.Flags)},
		}
		res.Interpretation = doubtful(append(append([]string(nil), o.Flags...), d.Flags...))
		res.Note = notes(o.Flags, d.Flags)
		return res
	}
	res.Code = loinc(o.Code, displayOf(o.Code))
	res.ValueQuantity = quantity(o.Value, o.Unit)
	res.Interpretation = doubtful(o.Flags)
	res.Note = notes(o.Flags)
	return res
}

// displayOf is a LOINC code's name with a capital, as Bedside shows it.
func displayOf(code string) string {
	name := vitals.Name(code)
	if name == "" {
		return code
	}
	if name == "SpO2" {
		return "Oxygen saturation (SpO2)"
	}
	return strings.ToUpper(name[:1]) + name[1:]
}

// linker finds, for one request, each reading's panel partner and the
// held visit it was taken during.
type linker struct {
	h      *handler
	visits map[int64][]visit // by patient
}

func (h *handler) linker() *linker { return &linker{h: h, visits: make(map[int64][]visit)} }

// panel returns o with its diastolic partner when o is a systolic reading
// that has one (same patient, device, sequence and time).
func (l *linker) panel(ctx context.Context, o store.Observation) (reading, error) {
	rd := reading{Observation: o}
	if o.Code != store.CodeSystolic {
		return rd, nil
	}
	same, err := l.h.Store.ObservationsBetween(ctx, o.PatientID, o.EffectiveAt, o.EffectiveAt.Add(time.Millisecond))
	if err != nil {
		return rd, fmt.Errorf("panel of observation %d: %w", o.ID, err)
	}
	for _, p := range same {
		if p.Code == store.CodeDiastolic && p.DeviceID == o.DeviceID && p.Seq == o.Seq && p.EffectiveAt.Equal(o.EffectiveAt) {
			rd.diastolic = &p
			break
		}
	}
	return rd, nil
}

// partnerOf finds the systolic reading a diastolic one is panelled with;
// ok false if it stands alone.
func (l *linker) partnerOf(ctx context.Context, o store.Observation) (int64, bool, error) {
	if o.Code != store.CodeDiastolic {
		return 0, false, nil
	}
	same, err := l.h.Store.ObservationsBetween(ctx, o.PatientID, o.EffectiveAt, o.EffectiveAt.Add(time.Millisecond))
	if err != nil {
		return 0, false, fmt.Errorf("panel of observation %d: %w", o.ID, err)
	}
	for _, p := range same {
		if p.Code == store.CodeSystolic && p.DeviceID == o.DeviceID && p.Seq == o.Seq && p.EffectiveAt.Equal(o.EffectiveAt) {
			return p.ID, true, nil
		}
	}
	return 0, false, nil
}

// visitAt is the held visit of the patient during which a reading made at
// t was taken, or nil.
func (l *linker) visitAt(ctx context.Context, patientID int64, t time.Time) (*visit, error) {
	vs, ok := l.visits[patientID]
	if !ok {
		page, _, err := l.h.Store.SearchAppointments(ctx, store.AppointmentQuery{PatientID: patientID, Limit: 1000,
			Statuses: []scheduling.Status{scheduling.StatusArrived, scheduling.StatusFulfilled}})
		if err != nil {
			return nil, fmt.Errorf("visits of patient %d: %w", patientID, err)
		}
		for _, a := range page {
			v, err := l.h.visitOf(ctx, a)
			if err != nil {
				return nil, err
			}
			vs = append(vs, v)
		}
		l.visits[patientID] = vs
	}
	now := l.h.Now()
	for i := range vs {
		if vs[i].contains(t, now) {
			return &vs[i], nil
		}
	}
	return nil, nil
}

// resource renders a stored row, with its partner and visit.
func (l *linker) resource(ctx context.Context, o store.Observation) (Observation, error) {
	rd, err := l.panel(ctx, o)
	if err != nil {
		return Observation{}, err
	}
	v, err := l.visitAt(ctx, o.PatientID, o.EffectiveAt)
	if err != nil {
		return Observation{}, err
	}
	return observationResource(rd, v), nil
}

// readObservation answers GET /Observation/{id}. The diastolic reading of
// a blood-pressure panel is found as the panel, under its systolic
// reading's id; its own id answers 404 naming the panel.
func (h *handler) readObservation(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	raw := r.PathValue("id")
	id, ok := parseID(raw)
	if !ok {
		return notFound(kindObservation, raw)
	}
	o, err := h.Store.ObservationByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound(kindObservation, raw)
	}
	if err != nil {
		return fmt.Errorf("observation %d: %w", id, err)
	}
	err = h.check(ctx, c, actRead, target{kind: kindObservation, id: o.PatientID, rid: raw})
	h.record(r, c, audit.ActionRead, o.PatientID, ref(kindObservation, o.ID), err)
	if err != nil {
		return err
	}
	l := h.linker()
	if sys, ok, err := l.partnerOf(ctx, o); err != nil {
		return err
	} else if ok {
		return newError(http.StatusNotFound, codeNotFound, "Observation/%d is the diastolic part of the blood-pressure panel Observation/%d", o.ID, sys)
	}
	res, err := l.resource(ctx, o)
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, res)
	return nil
}

var observationParams = []searchParam{
	{Name: "patient", Type: "reference", Doc: "Patient/{id}; a physician must name one (a patient they have a visit with)."},
	{Name: "device", Type: "reference", Doc: "Device/{id}: the readings that device measured, those whose device it is: a relayed Bluetooth device's ({relay}-{id}) its own; a relay's (the patient's browser, a hub) those it measured itself and those it relayed before Bedside kept which device measured them, not its Bluetooth devices'."},
	{Name: "code", Type: "token", Doc: "LOINC codes separated by commas ({code} or http://loinc.org|{code}); 85354-9, 8480-6 and 8462-4 each find blood-pressure panels."},
	{Name: "date", Type: "date", Doc: "The effective time: a day or an instant, with prefix eq (default), ge, gt, le or lt; repeat to give a range; a date without a time is a UTC day.", Repeat: true},
}

// observationQuery turns Observation search parameters into a store query
// (panels joined); none reports conditions nothing can meet.
func observationQuery(q query) (oq store.ObservationQuery, none bool, err error) {
	oq.Panels = true
	if v := q.first("patient"); v != "" {
		_, id, err := parseRef("patient", v, kindPatient)
		if err != nil {
			return oq, false, err
		}
		oq.PatientID = id
	}
	if v := q.first("device"); v != "" {
		relay, relayed, err := parseDeviceRef(v)
		if err != nil {
			return oq, false, err
		}
		// The readings whose Observation.device is this Device: a relay's
		// own are those that name no relayed device.
		oq.DeviceID, oq.Relayed = relay, relayed
		if relayed == 0 {
			oq.Relayed = store.NotRelayed
		}
	}
	if v := q.first("code"); v != "" {
		for _, t := range tokens(v) {
			system, code, found := strings.Cut(t, "|")
			if !found {
				code, system = system, loincSystem
			}
			if system != loincSystem || code == "" {
				return oq, false, badRequest(codeValue, "code: %q: want a LOINC code, {code} or %s|{code}", t, loincSystem)
			}
			switch code {
			case vitals.CodeBPPanel, store.CodeSystolic, store.CodeDiastolic:
				oq.Codes = append(oq.Codes, store.CodeSystolic, store.CodeDiastolic)
			default:
				oq.Codes = append(oq.Codes, code)
			}
		}
	}
	var b bounds
	for _, v := range q.values["date"] {
		if err := b.and("date", v); err != nil {
			return oq, false, err
		}
	}
	oq.From, oq.To = b.from, b.to
	return oq, b.empty(), nil
}

// searchObservations answers GET /Observation. A search is narrowed to one
// patient the caller may see before it reaches the store: a patient's own,
// the patient (or device's patient) a physician names, anyone's for an
// admin; a scheduler is refused.
func (h *handler) searchObservations(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	q, err := parseQuery(kindObservation, r.URL.Query(), observationParams)
	if err != nil {
		return err
	}
	oq, none, err := observationQuery(q)
	if err != nil {
		return err
	}
	if c.user.Role == store.RoleScheduler {
		err := forbidden("a scheduler does not see vitals or devices")
		h.record(r, c, audit.ActionSearch, oq.PatientID, kindObservation, err)
		return err
	}
	if oq.DeviceID != 0 {
		dev, err := h.Store.CredentialByID(ctx, store.CredentialDevice, oq.DeviceID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			none = true
		case err != nil:
			return fmt.Errorf("device %d: %w", oq.DeviceID, err)
		case oq.PatientID != 0 && oq.PatientID != dev.UserID:
			none = true
		default:
			oq.PatientID = dev.UserID
		}
	}
	if oq.Relayed > 0 && !none {
		rd, err := h.Store.RelayedDeviceByID(ctx, oq.Relayed)
		switch {
		case errors.Is(err, store.ErrNotFound):
			none = true
		case err != nil:
			return fmt.Errorf("relayed device %d: %w", oq.Relayed, err)
		case rd.RelayID != oq.DeviceID:
			none = true
		}
	}
	asked := oq.PatientID
	switch c.user.Role {
	case store.RolePatient:
		if oq.PatientID != 0 && oq.PatientID != c.user.ID {
			none = true
		}
		oq.PatientID = c.user.ID
	case store.RolePhysician:
		if oq.PatientID == 0 && !none {
			return badRequest(codeRequired, "patient: a physician searches the Observations of one patient at a time; name the patient (Patient/{id}) or the device")
		}
	}
	var page []store.Observation
	total := 0
	if oq.PatientID != 0 && !none {
		ok, err := h.visible(ctx, c, target{kind: kindObservation, id: oq.PatientID})
		if err != nil {
			return err
		}
		none = !ok
	}
	if !none {
		fetch := func(limit, offset int) ([]store.Observation, int, error) {
			oq.Limit, oq.Offset = limit, offset
			return h.Store.SearchObservations(ctx, oq)
		}
		keep := func(o store.Observation) (bool, error) {
			return h.visible(ctx, c, target{kind: kindObservation, id: o.PatientID})
		}
		page, total, err = pageOf(q, true, fetch, keep)
		if err = h.scoped(ctx, kindObservation, err); err != nil {
			return err
		}
	}
	l := h.linker()
	entries := make([]entry, len(page))
	found := make([]recordRef, len(page))
	for i, o := range page {
		res, err := l.resource(ctx, o)
		if err != nil {
			return err
		}
		entries[i] = entry{ref(kindObservation, o.ID), res}
		found[i] = recordRef{id: o.ID, patient: o.PatientID}
	}
	h.writeBundle(w, r, q, total, entries)
	h.recordFound(r, c, kindObservation, asked, found)
	return nil
}
