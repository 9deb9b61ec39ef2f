package fhir

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/fhir/fhirtime"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// maxReason bounds a cancellation reason, as the web forms do.
const maxReason = 500

// statusChange is a checked request to change an appointment's status.
type statusChange struct {
	status scheduling.Status
	reason string // the cancellation reason to keep or set
}

// settable are the statuses a client may set with PUT.
var settable = []scheduling.Status{scheduling.StatusCancelled, scheduling.StatusNoShow, scheduling.StatusArrived,
	scheduling.StatusFulfilled, scheduling.StatusEnteredInError}

// parseStatusChange reads the status and cancellation reason of an
// Appointment sent back to change its status; cur is the appointment as
// it stands.
func parseStatusChange(res appointmentBody, cur scheduling.Appointment) (statusChange, error) {
	id := fmt.Sprint(cur.ID)
	switch {
	case res.ID == "":
		return statusChange{}, badRequest(codeRequired, "id: missing; an update carries the id of the Appointment, %s", id)
	case res.ID != id:
		return statusChange{}, badRequest(codeInvalid, "id: %q does not match the URL's Appointment/%s", res.ID, id)
	}
	ch := statusChange{status: scheduling.Status(res.Status), reason: cur.CancelReason}
	switch {
	case res.Status == "":
		return ch, unprocessable(codeRequired, "status: missing; send the Appointment back with its new status")
	case ch.status != cur.Status && !slices.Contains(settable, ch.status):
		return ch, unprocessable(codeValue, "status: %q cannot be set here; use cancelled, noshow, arrived, fulfilled or entered-in-error", res.Status)
	}
	if cr := res.CancelationReason; cr != nil {
		if len(cr.Coding) > 0 {
			return ch, unprocessable(codeValue, "cancelationReason.coding: Bedside keeps only the reason's text")
		}
		reason := strings.TrimSpace(cr.Text)
		switch {
		case len(reason) > maxReason:
			return ch, unprocessable(codeValue, "cancelationReason.text: keep it under %d characters", maxReason)
		case reason == ch.reason:
		case ch.status == cur.Status:
			return ch, unprocessable(codeValue, "cancelationReason: it can be given only with a change of status to cancelled or entered-in-error")
		case ch.status.Live():
			return ch, unprocessable(codeValue, "cancelationReason: only a cancelled or entered-in-error appointment has one, not a %s one", ch.status)
		}
		ch.reason = reason
	}
	return ch, nil
}

// sameAppointment checks that a resource sent back differs from cur, as
// rendered, in nothing but status and cancelationReason. Elements left
// out are kept as they are; meta and text are ignored.
func sameAppointment(res appointmentBody, cur Appointment) error {
	changed := func(field string) error {
		return unprocessable(codeValue, "%s: only status (and cancelationReason) can change here; to move a visit, cancel it and book a new slot, or use the web UI", field)
	}
	for _, t := range []struct{ field, sent, have string }{
		{"start", res.Start, cur.Start}, {"end", res.End, cur.End}, {"created", res.Created, cur.Created},
	} {
		if t.sent == "" {
			continue
		}
		sent, err := fhirtime.Parse(t.sent)
		if err != nil {
			return unprocessable(codeValue, "%s: %v", t.field, err)
		}
		if have, _ := time.Parse(time.RFC3339, t.have); !sent.Truncate(time.Second).Equal(have) {
			return changed(t.field)
		}
	}
	if res.MinutesDuration != nil && *res.MinutesDuration != cur.MinutesDuration {
		return changed("minutesDuration")
	}
	if res.ServiceType != nil {
		code, err := visitTypeOf(res.ServiceType)
		if err != nil {
			return err
		}
		have, _ := visitTypeOf(cur.ServiceType)
		if code != have {
			return changed("serviceType")
		}
	}
	if res.Slot != nil {
		if len(res.Slot) != len(cur.Slot) {
			return changed("slot")
		}
		for i, s := range res.Slot {
			if refPath(s.Reference) != cur.Slot[i].Reference {
				return changed(fmt.Sprintf("slot[%d]", i))
			}
		}
	}
	if res.Participant != nil {
		var sent, have []string
		for i, p := range res.Participant {
			if p.Actor == nil || p.Actor.Reference == "" {
				return unprocessable(codeRequired, "participant[%d].actor.reference: missing", i)
			}
			sent = append(sent, refPath(p.Actor.Reference))
		}
		for _, p := range cur.Participant {
			have = append(have, p.Actor.Reference)
		}
		slices.Sort(sent)
		slices.Sort(have)
		if !slices.Equal(sent, have) {
			return changed("participant")
		}
	}
	return nil
}

// updateAppointment answers PUT /Appointment/{id}: a change of status.
func (h *handler) updateAppointment(w http.ResponseWriter, r *http.Request, c *caller) (err error) {
	ctx := r.Context()
	a, err := h.appointmentOf(ctx, c, r.PathValue("id"))
	defer func() { h.recordAppointment(r, c, audit.ActionUpdate, a, err) }()
	if err != nil {
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
	ch, err := parseStatusChange(res, a)
	if err != nil {
		return err
	}
	cur, err := appointmentResource(ctx, h.names(), a)
	if err != nil {
		return err
	}
	if err := sameAppointment(res, cur); err != nil {
		return err
	}
	if ch.status == a.Status && ch.reason == a.CancelReason {
		h.write(w, r, http.StatusOK, cur) // nothing to change
		return nil
	}
	if err := h.check(ctx, c, actStatus, target{kind: kindAppointment, appt: a, status: ch.status}); err != nil {
		return err
	}
	updated, err := h.Store.SetAppointmentStatus(ctx, a.ID, ch.status, store.Change{ActorID: c.user.ID, At: h.Now(), Reason: ch.reason})
	switch {
	case errors.Is(err, scheduling.ErrTransition):
		return conflict("status: an appointment that is %s cannot become %s%s", a.Status, ch.status, nextStatuses(a.Status))
	case errors.Is(err, store.ErrNotFound):
		return notFound(kindAppointment, fmt.Sprint(a.ID))
	case err != nil:
		return fmt.Errorf("set status of appointment %d: %w", a.ID, err)
	}
	h.Log.InfoContext(ctx, "appointment status changed", "appointment", a.ID, "by", c.user.ID, "via", "fhir")
	h.changed(ctx, updated)
	return h.writeAppointment(w, r, http.StatusOK, updated)
}

// nextStatuses says what an appointment in status s may become.
func nextStatuses(s scheduling.Status) string {
	var next []string
	for _, t := range settable {
		if s.CanBecome(t) {
			next = append(next, string(t))
		}
	}
	if len(next) == 0 {
		return "; it cannot change any more"
	}
	return "; it may become " + strings.Join(next, ", ")
}
