package fhir

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/fhir/fhirtime"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// booking is a checked request to book a slot.
type booking struct {
	slot           slotID
	patientID      int64
	physicianID    int64
	patientField   string // where the patient was named, for diagnostics
	physicianField string
	start, end     time.Time // as the client gave them; zero if not
	minutes        *int
}

// slotField is where a booking names its slot.
const slotField = "slot[0].reference"

// parseBooking checks a new Appointment as far as it can without the
// store: 422 naming the element for anything missing or wrong.
func parseBooking(res appointmentBody) (booking, error) {
	var bk booking
	switch res.Status {
	case "":
		return bk, unprocessable(codeRequired, "status: missing; a new appointment must have status booked")
	case string(scheduling.StatusBooked):
	default:
		return bk, unprocessable(codeValue, "status: a new appointment must be booked, not %q", res.Status)
	}
	if res.CancelationReason != nil {
		return bk, unprocessable(codeValue, "cancelationReason: a new appointment has no cancellation reason")
	}
	switch len(res.Slot) {
	case 0:
		return bk, unprocessable(codeRequired, "slot: missing; give one free Slot as slot[0].reference (search Slot to find one)")
	case 1:
	default:
		return bk, unprocessable(codeValue, "slot: give exactly one slot, not %d", len(res.Slot))
	}
	raw, ok := strings.CutPrefix(refPath(res.Slot[0].Reference), kindSlot+"/")
	if res.Slot[0].Reference == "" {
		return bk, unprocessable(codeRequired, "%s: missing; give the free Slot to book, as Slot/{id}", slotField)
	}
	if !ok {
		return bk, unprocessable(codeValue, "%s: want Slot/{id}, got %q", slotField, res.Slot[0].Reference)
	}
	if bk.slot, ok = parseSlotID(raw); !ok {
		return bk, unprocessable(codeValue, "%s: %q is not a Bedside slot id ({practitioner}-{start in Unix seconds}[-{visit type}]); search Slot for one", slotField, raw)
	}
	if len(res.Participant) == 0 {
		return bk, unprocessable(codeRequired, "participant: missing; give the Patient and the Practitioner as participant[].actor.reference")
	}
	for i, p := range res.Participant {
		field := fmt.Sprintf("participant[%d].actor.reference", i)
		if p.Actor == nil || p.Actor.Reference == "" {
			return bk, unprocessable(codeRequired, "%s: missing; give Patient/{id} or Practitioner/{id}", field)
		}
		switch p.Status {
		case "", "accepted", "needs-action", "tentative":
		default:
			return bk, unprocessable(codeValue, "participant[%d].status: %q; a booked participant is accepted", i, p.Status)
		}
		kind, id, err := parseRef(field, refPath(p.Actor.Reference), kindPatient, kindPractitioner)
		if err != nil {
			return bk, unprocessable(codeValue, "%s: want Patient/{id} or Practitioner/{id}, got %q", field, p.Actor.Reference)
		}
		into, name := &bk.patientID, &bk.patientField
		if kind == kindPractitioner {
			into, name = &bk.physicianID, &bk.physicianField
		}
		if *into != 0 {
			return bk, unprocessable(codeValue, "%s: a second %s; an appointment has one patient and one practitioner", field, kind)
		}
		*into, *name = id, field
	}
	if bk.patientID == 0 {
		return bk, unprocessable(codeRequired, "participant: no Patient actor; give the patient as participant[].actor.reference Patient/{id}")
	}
	if bk.physicianID == 0 {
		return bk, unprocessable(codeRequired, "participant: no Practitioner actor; give the slot's practitioner as participant[].actor.reference Practitioner/%d", bk.slot.physician)
	}
	if bk.physicianID != bk.slot.physician {
		return bk, unprocessable(codeValue, "%s: Practitioner/%d is not the practitioner of %s Slot/%s, which belongs to Practitioner/%d",
			bk.physicianField, bk.physicianID, slotField, bk.slot, bk.slot.physician)
	}
	for _, t := range []struct {
		name string
		raw  string
		into *time.Time
	}{{"start", res.Start, &bk.start}, {"end", res.End, &bk.end}} {
		if t.raw == "" {
			continue
		}
		v, err := fhirtime.Parse(t.raw)
		if err != nil {
			return bk, unprocessable(codeValue, "%s: %v", t.name, err)
		}
		*t.into = v
	}
	if !bk.start.IsZero() && !bk.start.Equal(bk.slot.start) {
		return bk, unprocessable(codeValue, "start: %s is not the start of the slot, %s", res.Start, instant(bk.slot.start))
	}
	bk.minutes = res.MinutesDuration
	if res.ServiceType != nil {
		code, err := visitTypeOf(res.ServiceType)
		if err != nil {
			return bk, err
		}
		if code != bk.slot.visitType {
			want := "no serviceType (a standard visit)"
			if bk.slot.visitType != "" {
				want = "serviceType " + bk.slot.visitType
			}
			return bk, unprocessable(codeValue, "serviceType: %q is not the slot's visit type; Slot/%s is for %s", code, bk.slot, want)
		}
	}
	return bk, nil
}

// visitTypeOf reads the visit type code of a serviceType element.
func visitTypeOf(st []CodeableConcept) (string, error) {
	if len(st) == 0 {
		return "", nil
	}
	if len(st) > 1 || len(st[0].Coding) != 1 {
		return "", unprocessable(codeValue, "serviceType: give one concept with one coding of system %s", visitTypeSystem)
	}
	c := st[0].Coding[0]
	if c.System != "" && c.System != visitTypeSystem {
		return "", unprocessable(codeValue, "serviceType[0].coding[0].system: want %s, got %q", visitTypeSystem, c.System)
	}
	if c.Code == "" {
		return "", unprocessable(codeRequired, "serviceType[0].coding[0].code: missing")
	}
	return c.Code, nil
}

// refPath is a reference without the server's address, if it has one:
// https://clinic.example/fhir/Slot/3-100 is read as Slot/3-100.
func refPath(reference string) string {
	if i := strings.Index(reference, "/fhir/"); i >= 0 && strings.Contains(reference[:i], "://") {
		return reference[i+len("/fhir/"):]
	}
	return reference
}

// createAppointment answers POST /Appointment: it books a free slot.
func (h *handler) createAppointment(w http.ResponseWriter, r *http.Request, c *caller) (err error) {
	ctx := r.Context()
	var patient int64
	resource := kindAppointment
	defer func() { h.record(r, c, audit.ActionCreate, patient, resource, err) }()
	if err := h.check(ctx, c, actBook, target{kind: kindAppointment}); err != nil {
		return err
	}
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	res, err := decodeAppointment(b)
	if err != nil {
		return err
	}
	bk, err := parseBooking(res)
	if err != nil {
		return err
	}
	patient = bk.patientID
	for _, p := range []struct {
		id    int64
		kind  string
		field string
	}{{bk.patientID, kindPatient, bk.patientField}, {bk.physicianID, kindPractitioner, bk.physicianField}} {
		if _, err := h.userOf(ctx, p.kind, strconv.FormatInt(p.id, 10)); err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				return unprocessable(codeValue, "%s: %s/%d is not known", p.field, p.kind, p.id)
			}
			return err
		}
	}
	slotRef := kindSlot + "/" + bk.slot.String()
	avail, err := h.Store.Availability(ctx, bk.physicianID)
	if errors.Is(err, store.ErrNotFound) {
		return unprocessable(codeValue, "%s: Practitioner/%d has no schedule, so %s is not a slot", slotField, bk.physicianID, slotRef)
	}
	if err != nil {
		return fmt.Errorf("availability of %d: %w", bk.physicianID, err)
	}
	now := h.Now()
	start := bk.slot.start
	if !start.After(now) {
		return unprocessable(codeProcessing, "%s: %s started at %s, which has passed; search Slot for a free one", slotField, slotRef, instant(start))
	}
	end, err := avail.Check(start, bk.slot.visitType, now)
	switch {
	case errors.Is(err, scheduling.ErrOutsideHours):
		return unprocessable(codeValue, "%s: %s is not a slot of Schedule/%d: %v", slotField, slotRef, bk.physicianID, err)
	case errors.Is(err, scheduling.ErrTimeOff), errors.Is(err, scheduling.ErrTooSoon), errors.Is(err, scheduling.ErrTooFar):
		return unprocessable(codeProcessing, "%s: %s cannot be booked: %v", slotField, slotRef, err)
	case err != nil:
		return fmt.Errorf("check slot %s: %w", slotRef, err)
	}
	if !bk.end.IsZero() && !bk.end.Equal(end) {
		return unprocessable(codeValue, "end: %s is not the end of the slot, %s", instant(bk.end), instant(end))
	}
	if m := int(end.Sub(start) / time.Minute); bk.minutes != nil && *bk.minutes != m {
		return unprocessable(codeValue, "minutesDuration: %d is not the slot's length, %d", *bk.minutes, m)
	}
	slot, ok, err := h.slotNow(ctx, bk.slot, avail)
	if err != nil {
		return err
	}
	if !ok {
		return unprocessable(codeValue, "%s: %s is not a slot of Schedule/%d now", slotField, slotRef, bk.physicianID)
	}
	if !slot.Free {
		return conflict("%s: %s is busy: another visit holds that time; search Slot with status=free for another", slotField, slotRef)
	}
	a, err := h.Store.BookAppointment(ctx, scheduling.Appointment{
		PhysicianID: bk.physicianID, PatientID: bk.patientID, Start: start, End: end,
		Status: scheduling.StatusBooked, VisitType: bk.slot.visitType,
	}, store.Change{ActorID: c.user.ID, At: now})
	if errors.Is(err, scheduling.ErrSlotTaken) {
		return conflict("%s: %s was just taken by another booking; search Slot with status=free for another", slotField, slotRef)
	}
	if err != nil {
		return fmt.Errorf("book %s: %w", slotRef, err)
	}
	resource = ref(kindAppointment, a.ID)
	h.Log.InfoContext(ctx, "appointment booked", "appointment", a.ID, "by", c.user.ID, "via", "fhir")
	h.changed(ctx, a)
	w.Header().Set("Location", h.base(r)+"/"+ref(kindAppointment, a.ID))
	return h.writeAppointment(w, r, http.StatusCreated, a)
}
