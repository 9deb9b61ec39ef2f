package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// actCodeSystem is HL7 v3 ActCode, which names an Encounter's class.
const actCodeSystem = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

// Encounter is a held visit as a FHIR Encounter. Its id is the
// Appointment's: a visit is held at most once.
type Encounter struct {
	ResourceType string                 `json:"resourceType"`
	ID           string                 `json:"id"`
	Status       string                 `json:"status"`
	Class        Coding                 `json:"class"`
	Subject      Reference              `json:"subject"`
	Participant  []EncounterParticipant `json:"participant"`
	Appointment  []Reference            `json:"appointment"`
	Period       Period                 `json:"period"`
	Length       *Quantity              `json:"length,omitempty"`
}

// EncounterParticipant is someone who took part in an Encounter.
type EncounterParticipant struct {
	Individual Reference `json:"individual"`
}

// visit is a held visit and when it ran: from the patient's arrival in the
// waiting room (the appointment's status becoming arrived) to its end (the
// status becoming fulfilled). End is zero while the visit goes on.
type visit struct {
	appt       scheduling.Appointment
	start, end time.Time
}

// held reports whether an appointment's visit took place (or is taking
// place): only those are Encounters.
func held(a scheduling.Appointment) bool {
	return a.Status == scheduling.StatusArrived || a.Status == scheduling.StatusFulfilled
}

// visitOf reads when a held appointment's visit ran from its history. A
// visit marked fulfilled without an arrival starts at its booked start.
func (h *handler) visitOf(ctx context.Context, a scheduling.Appointment) (visit, error) {
	hist, err := h.Store.AppointmentHistory(ctx, a.ID)
	if err != nil {
		return visit{}, fmt.Errorf("history of appointment %d: %w", a.ID, err)
	}
	v := visit{appt: a}
	v.start, v.end = store.VisitPeriod(a, hist)
	return v, nil
}

// contains reports whether an observation made at t was taken during v;
// an ongoing visit runs until now.
func (v visit) contains(t, now time.Time) bool {
	end := v.end
	if end.IsZero() {
		end = now
	}
	return !t.Before(v.start) && !t.After(end)
}

// encounterResource renders a held visit as an Encounter.
func encounterResource(ctx context.Context, n *names, v visit) (Encounter, error) {
	a := v.appt
	patient, err := n.of(ctx, a.PatientID)
	if err != nil {
		return Encounter{}, err
	}
	physician, err := n.of(ctx, a.PhysicianID)
	if err != nil {
		return Encounter{}, err
	}
	e := Encounter{
		ResourceType: kindEncounter,
		ID:           strconv.FormatInt(a.ID, 10),
		Status:       "in-progress",
		Class:        Coding{System: actCodeSystem, Code: "VR", Display: "virtual"},
		Subject:      Reference{Reference: ref(kindPatient, a.PatientID), Display: patient},
		Participant:  []EncounterParticipant{{Individual: Reference{Reference: ref(kindPractitioner, a.PhysicianID), Display: physician}}},
		Appointment:  []Reference{{Reference: ref(kindAppointment, a.ID)}},
		Period:       Period{Start: instant(v.start)},
	}
	if !v.end.IsZero() {
		e.Status = "finished"
		e.Period.End = instant(v.end)
		minutes := float64(v.end.Sub(v.start).Round(time.Minute) / time.Minute)
		e.Length = &Quantity{Value: minutes, Unit: "min", System: ucumSystem, Code: "min"}
	}
	return e, nil
}

// encounterOf loads the held visit an Encounter ID names, if the caller may
// see it.
func (h *handler) encounterOf(ctx context.Context, c *caller, rawID string) (visit, error) {
	id, ok := parseID(rawID)
	if !ok {
		return visit{}, notFound(kindEncounter, rawID)
	}
	a, err := h.Store.AppointmentByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !held(a) {
		return visit{appt: a}, notFound(kindEncounter, rawID)
	}
	if err != nil {
		return visit{}, fmt.Errorf("appointment %d: %w", id, err)
	}
	if err := h.check(ctx, c, actRead, target{kind: kindEncounter, appt: a}); err != nil {
		return visit{appt: a}, err
	}
	return h.visitOf(ctx, a)
}

// readEncounter answers GET /Encounter/{id}.
func (h *handler) readEncounter(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	v, err := h.encounterOf(ctx, c, r.PathValue("id"))
	var res Encounter
	if err == nil {
		res, err = encounterResource(ctx, h.names(), v)
	}
	if v.appt.ID != 0 {
		h.record(r, c, audit.ActionRead, v.appt.PatientID, ref(kindEncounter, v.appt.ID), err)
	}
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, res)
	return nil
}

var encounterParams = []searchParam{
	{Name: "patient", Type: "reference", Doc: "Patient/{id}."},
	{Name: "practitioner", Type: "reference", Doc: "Practitioner/{id}."},
	{Name: "date", Type: "date", Doc: "The visit's booked start: a day or an instant, with prefix eq (default), ge, gt, le or lt; repeat to give a range.", Repeat: true},
}

// searchEncounters answers GET /Encounter: the held visits (appointments
// arrived or fulfilled) the caller may see.
func (h *handler) searchEncounters(w http.ResponseWriter, r *http.Request, c *caller) error {
	return h.searchBooked(w, r, c, kindEncounter, encounterParams,
		[]scheduling.Status{scheduling.StatusArrived, scheduling.StatusFulfilled},
		func(ctx context.Context, n *names, a scheduling.Appointment) (any, error) {
			v, err := h.visitOf(ctx, a)
			if err != nil {
				return nil, err
			}
			return encounterResource(ctx, n, v)
		})
}
