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

// Appointment is a visit as a FHIR Appointment.
type Appointment struct {
	ResourceType      string            `json:"resourceType"`
	ID                string            `json:"id"`
	Meta              Meta              `json:"meta"`
	Extension         []Extension       `json:"extension,omitempty"`
	Status            string            `json:"status"`
	CancelationReason *CodeableConcept  `json:"cancelationReason,omitempty"`
	ServiceType       []CodeableConcept `json:"serviceType,omitempty"`
	Start             string            `json:"start"`
	End               string            `json:"end"`
	MinutesDuration   int               `json:"minutesDuration"`
	Created           string            `json:"created"`
	Slot              []Reference       `json:"slot,omitempty"`
	Participant       []Participant     `json:"participant"`
}

// Meta is a resource's version and time of its last change.
type Meta struct {
	VersionID   string `json:"versionId,omitempty"`
	LastUpdated string `json:"lastUpdated,omitempty"`
}

// Extension is a FHIR extension; Bedside writes only code values.
type Extension struct {
	URL       string `json:"url"`
	ValueCode string `json:"valueCode,omitempty"`
}

// timezoneExtension names the IANA zone a visit was booked in (the FHIR
// core extension for a resource's time zone).
const timezoneExtension = "http://hl7.org/fhir/StructureDefinition/timezone"

// Participant is a person taking part in an Appointment.
type Participant struct {
	Actor  Reference `json:"actor"`
	Status string    `json:"status"`
}

// names looks up display names for one request, each user once.
type names struct {
	h     *handler
	cache map[int64]string
}

func (h *handler) names() *names { return &names{h: h, cache: make(map[int64]string)} }

func (n *names) of(ctx context.Context, id int64) (string, error) {
	if name, ok := n.cache[id]; ok {
		return name, nil
	}
	u, err := n.h.Store.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		err = nil
	}
	if err != nil {
		return "", fmt.Errorf("name of user %d: %w", id, err)
	}
	n.cache[id] = u.Name
	return u.Name, nil
}

// appointmentResource renders a as an Appointment. Its versionId is its
// Sequence + 1: it changes when the visit moves or ends.
func appointmentResource(ctx context.Context, n *names, a scheduling.Appointment) (Appointment, error) {
	patient, err := n.of(ctx, a.PatientID)
	if err != nil {
		return Appointment{}, err
	}
	physician, err := n.of(ctx, a.PhysicianID)
	if err != nil {
		return Appointment{}, err
	}
	out := Appointment{
		ResourceType:    kindAppointment,
		ID:              strconv.FormatInt(a.ID, 10),
		Meta:            Meta{VersionID: strconv.Itoa(a.Sequence + 1), LastUpdated: instant(a.UpdatedAt)},
		Status:          string(a.Status),
		Start:           instant(a.Start),
		End:             instant(a.End),
		MinutesDuration: int(a.End.Sub(a.Start) / time.Minute),
		Created:         instant(a.CreatedAt),
		Slot:            []Reference{{Reference: kindSlot + "/" + slotID{a.PhysicianID, a.Start, a.VisitType}.String()}},
		Participant: []Participant{
			{Actor: Reference{Reference: ref(kindPatient, a.PatientID), Display: patient}, Status: "accepted"},
			{Actor: Reference{Reference: ref(kindPractitioner, a.PhysicianID), Display: physician}, Status: "accepted"},
		},
	}
	if a.UpdatedAt.IsZero() {
		out.Meta.LastUpdated = ""
	}
	if a.Zone != "" {
		out.Extension = []Extension{{URL: timezoneExtension, ValueCode: a.Zone}}
	}
	if a.CancelReason != "" {
		out.CancelationReason = &CodeableConcept{Text: a.CancelReason}
	}
	if a.VisitType != "" {
		out.ServiceType = []CodeableConcept{{Coding: []Coding{{System: visitTypeSystem, Code: a.VisitType}}}}
	}
	return out, nil
}

// appointmentOf loads the appointment an ID names, if the caller may see it.
func (h *handler) appointmentOf(ctx context.Context, c *caller, rawID string) (scheduling.Appointment, error) {
	id, ok := parseID(rawID)
	if !ok {
		return scheduling.Appointment{}, notFound(kindAppointment, rawID)
	}
	a, err := h.Store.AppointmentByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return a, notFound(kindAppointment, rawID)
	}
	if err != nil {
		return a, fmt.Errorf("appointment %d: %w", id, err)
	}
	return a, h.check(ctx, c, actRead, target{kind: kindAppointment, appt: a})
}

// writeAppointment answers with a as an Appointment.
func (h *handler) writeAppointment(w http.ResponseWriter, r *http.Request, status int, a scheduling.Appointment) error {
	res, err := appointmentResource(r.Context(), h.names(), a)
	if err != nil {
		return err
	}
	h.write(w, r, status, res)
	return nil
}

// readAppointment answers GET /Appointment/{id}.
func (h *handler) readAppointment(w http.ResponseWriter, r *http.Request, c *caller) error {
	a, err := h.appointmentOf(r.Context(), c, r.PathValue("id"))
	if err == nil {
		err = h.writeAppointment(w, r, http.StatusOK, a)
	}
	h.recordAppointment(r, c, audit.ActionRead, a, err)
	return err
}

// recordAppointment records an action on a, unless a was never loaded
// (an unknown appointment is nobody's data).
func (h *handler) recordAppointment(r *http.Request, c *caller, action string, a scheduling.Appointment, err error) {
	if a.ID != 0 {
		h.record(r, c, action, a.PatientID, ref(kindAppointment, a.ID), err)
	}
}

// searchAppointments answers GET /Appointment.
func (h *handler) searchAppointments(w http.ResponseWriter, r *http.Request, c *caller) error {
	return h.searchBooked(w, r, c, kindAppointment, appointmentParams, nil,
		func(ctx context.Context, n *names, a scheduling.Appointment) (any, error) {
			return appointmentResource(ctx, n, a)
		})
}

// searchBooked answers a search for resources made from appointments
// (Appointment, Encounter): those in statuses (nil: any) matching the
// query that the caller may see, each turned into its resource by res.
func (h *handler) searchBooked(w http.ResponseWriter, r *http.Request, c *caller, kind string, params []searchParam,
	statuses []scheduling.Status, res func(context.Context, *names, scheduling.Appointment) (any, error)) error {
	ctx := r.Context()
	q, err := parseQuery(kind, r.URL.Query(), params)
	if err != nil {
		return err
	}
	aq, none, err := appointmentQuery(q)
	if err != nil {
		return err
	}
	if statuses != nil {
		aq.Statuses = statuses
	}
	asked := aq.PatientID
	exact := true
	if !none {
		exact, none = narrowAppointments(c, &aq)
	}
	var page []scheduling.Appointment
	total := 0
	if !none {
		fetch := func(limit, offset int) ([]scheduling.Appointment, int, error) {
			aq.Limit, aq.Offset = limit, offset
			return h.Store.SearchAppointments(ctx, aq)
		}
		keep := func(a scheduling.Appointment) (bool, error) {
			return h.visible(ctx, c, target{kind: kind, appt: a})
		}
		page, total, err = pageOf(q, exact, fetch, keep)
		if err = h.scoped(ctx, kind, err); err != nil {
			return err
		}
	}
	n := h.names()
	entries := make([]entry, len(page))
	found := make([]recordRef, len(page))
	for i, a := range page {
		v, err := res(ctx, n, a)
		if err != nil {
			return err
		}
		entries[i] = entry{ref(kind, a.ID), v}
		found[i] = recordRef{id: a.ID, patient: a.PatientID}
	}
	h.writeBundle(w, r, q, total, entries)
	h.recordFound(r, c, kind, asked, found)
	return nil
}

// appointmentQuery turns Appointment search parameters into a store
// query; none reports conditions that nothing can meet.
func appointmentQuery(q query) (aq store.AppointmentQuery, none bool, err error) {
	set := func(field *int64, id int64) {
		if *field != 0 && *field != id {
			none = true
		}
		*field = id
	}
	if v := q.first("patient"); v != "" {
		_, id, err := parseRef("patient", v, kindPatient)
		if err != nil {
			return aq, false, err
		}
		set(&aq.PatientID, id)
	}
	if v := q.first("practitioner"); v != "" {
		_, id, err := parseRef("practitioner", v, kindPractitioner)
		if err != nil {
			return aq, false, err
		}
		set(&aq.PhysicianID, id)
	}
	if v := q.first("actor"); v != "" {
		kind, id, err := parseRef("actor", v, kindPatient, kindPractitioner)
		if err != nil {
			return aq, false, err
		}
		if kind == kindPatient {
			set(&aq.PatientID, id)
		} else {
			set(&aq.PhysicianID, id)
		}
	}
	var b bounds
	for _, v := range q.values["date"] {
		if err := b.and("date", v); err != nil {
			return aq, false, err
		}
	}
	if b.empty() {
		none = true
	}
	aq.From, aq.To = b.from, b.to
	if v := q.first("status"); v != "" {
		for _, s := range tokens(v) {
			st := scheduling.Status(s)
			if !st.Valid() {
				return aq, false, badRequest(codeValue, "status: %q is not an appointment status Bedside uses; use booked, arrived, fulfilled, cancelled, noshow or entered-in-error", s)
			}
			aq.Statuses = append(aq.Statuses, st)
		}
	}
	return aq, none, nil
}
