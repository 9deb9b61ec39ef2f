package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/bedside-health/bedside/account"
	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/audit/refusal"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// caller is the authenticated user of one request.
type caller struct {
	user store.User
	// treated holds, for a physician, the patients they have an
	// appointment with; loaded on first use, for this request only.
	treated map[int64]bool
}

// authenticate finds the caller from an API bearer token. An address
// whose tokens were refused too often is answered 429 before its token is
// looked up; a refused token is counted (and audited) by refused, unless
// the route takes another kind of token too (see ingestCaller).
func (h *handler) authenticate(r *http.Request) (*caller, error) {
	c, err := h.apiCaller(r)
	if isInvalidToken(err) {
		h.refused(r)
	}
	return c, err
}

// throttled is the 429 for an address refused too often, or nil.
func (h *handler) throttled(r *http.Request) error {
	d := h.Refusals.Wait(tokenRoute, audit.Address(r))
	if d <= 0 {
		return nil
	}
	e := newError(http.StatusTooManyRequests, codeThrottled, "%s", refusal.Message(d))
	e.retryAfter = d
	return e
}

// refused counts the refusal of r's bearer token: the first from its
// address in a window is audited at once, as a failed login of
// "api-token", the rest as a count when the window closes. A request
// without a token is not counted, as anywhere else.
func (h *handler) refused(r *http.Request) {
	addr := audit.Address(r)
	h.Refusals.Refuse(tokenRoute, addr, store.AuditEvent{ActorRole: audit.RoleAnonymous, Action: audit.ActionLogin,
		Resource: tokenRoute, Address: addr, Outcome: audit.OutcomeFailed})
}

// isInvalidToken reports whether err refuses a token that was sent.
func isInvalidToken(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.invalidToken
}

// apiCaller finds the caller from an API bearer token, after throttled.
func (h *handler) apiCaller(r *http.Request) (*caller, error) {
	if err := h.throttled(r); err != nil {
		return nil, err
	}
	ctx := r.Context()
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, unauthorized(false, "no bearer token: send Authorization: Bearer <token> (issue one with `bedside token issue`)")
	}
	u, err := account.APIUser(ctx, h.Store, auth.HashToken(token), h.Now())
	var refused account.TokenRefused
	if errors.As(err, &refused) {
		return nil, unauthorized(true, "%s", refused)
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return &caller{user: u}, nil
}

// Resource types, as FHIR names them.
const (
	kindPatient      = "Patient"
	kindPractitioner = "Practitioner"
	kindSchedule     = "Schedule"
	kindSlot         = "Slot"
	kindAppointment  = "Appointment"
	kindAuditEvent   = "AuditEvent"
	kindObservation  = "Observation"
	kindDevice       = "Device"
	kindEncounter    = "Encounter"
)

// action is what a caller wants to do to a resource.
type action int

const (
	actRead   action = iota // read it or find it in a search
	actBook                 // create an Appointment
	actStatus               // change an Appointment's status
	actRecord               // store an Observation for a patient
)

// target is the resource an action is on.
type target struct {
	kind   string
	id     int64                  // the user for Patient, Practitioner, Schedule and Slot; the patient for Observation and Device
	appt   scheduling.Appointment // for Appointment and Encounter
	status scheduling.Status      // for actStatus: the status asked for
	rid    string                 // the resource's own id when id is not it (Observation, Device), for a 404
}

// verdict is what decide answers.
type verdict int

const (
	allow  verdict = iota
	hide           // the caller may not know it exists: 404
	refuse         // the caller sees it but their role never allows the action: 403
)

// decide is the one place that says what a caller may do: every read,
// every search result and every write passes through it.
//
//   - admin and scheduler see every Patient, Practitioner, Schedule, Slot
//     and Appointment, may book and may set any status;
//   - a physician sees every Practitioner, Schedule and Slot, the Patients
//     they have an appointment with (of any status), their own Appointments,
//     and may set their own appointments arrived, fulfilled or noshow;
//   - a patient sees their own Patient and Appointments and every
//     Practitioner, Schedule and Slot, and may cancel their own booked
//     appointment;
//   - only an admin reads AuditEvents (the audit trail); others are
//     refused with 403, and nobody writes them;
//   - Observations and Devices (vitals) are seen by the patient they
//     belong to, the physicians who have a visit with that patient, and
//     admins; a scheduler is refused (403) and never sees vitals. A patient
//     may record their own Observations and a physician those of a patient
//     they have a visit with;
//   - an Encounter (a held visit) is seen by whoever sees its Appointment.
//
// why explains a refusal.
func (h *handler) decide(ctx context.Context, c *caller, act action, t target) (v verdict, why string, err error) {
	u := c.user
	staff := u.Role == store.RoleAdmin || u.Role == store.RoleScheduler
	switch t.kind {
	case kindPractitioner, kindSchedule, kindSlot:
		switch {
		case act != actRead:
			return refuse, "only Appointments can be written", nil
		case u.Role.Valid():
			return allow, "", nil
		}
		return hide, "", nil
	case kindPatient:
		if act != actRead {
			return refuse, "Patients cannot be written through this API", nil
		}
		switch {
		case staff:
			return allow, "", nil
		case u.Role == store.RolePatient && t.id == u.ID:
			return allow, "", nil
		case u.Role == store.RolePhysician:
			treats, err := h.treats(ctx, c, t.id)
			if err != nil || !treats {
				return hide, "", err
			}
			return allow, "", nil
		}
		return hide, "", nil
	case kindObservation, kindDevice:
		switch {
		case act != actRead && act != actRecord:
			return refuse, t.kind + "s cannot be changed through this API", nil
		case u.Role == store.RoleScheduler:
			return refuse, "a scheduler does not see vitals or devices", nil
		case u.Role == store.RoleAdmin && act == actRead:
			return allow, "", nil
		case u.Role == store.RoleAdmin:
			return refuse, "readings come from devices, patients and their physicians, not from an admin", nil
		case u.Role == store.RolePatient && t.id == u.ID:
			return allow, "", nil
		case u.Role == store.RolePhysician:
			treats, err := h.treats(ctx, c, t.id)
			if err != nil || !treats {
				return hide, "", err
			}
			return allow, "", nil
		}
		return hide, "", nil
	case kindEncounter:
		if act != actRead {
			return refuse, "Encounters are made by holding a visit, not through this API", nil
		}
		return h.decide(ctx, c, actRead, target{kind: kindAppointment, appt: t.appt})
	case kindAuditEvent:
		if act == actRead && u.Role == store.RoleAdmin {
			return allow, "", nil
		}
		return refuse, "only an admin may read the audit trail", nil
	case kindAppointment:
		if act == actBook {
			if staff {
				return allow, "", nil
			}
			return refuse, fmt.Sprintf("a %s may not book appointments; a scheduler books them", u.Role), nil
		}
		a := t.appt
		mine := staff ||
			u.Role == store.RolePhysician && a.PhysicianID == u.ID ||
			u.Role == store.RolePatient && a.PatientID == u.ID
		if !mine {
			return hide, "", nil
		}
		if act == actRead || staff {
			return allow, "", nil
		}
		switch u.Role {
		case store.RolePhysician:
			if t.status == scheduling.StatusArrived || t.status == scheduling.StatusFulfilled || t.status == scheduling.StatusNoShow {
				return allow, "", nil
			}
			return refuse, "a physician may set an appointment's status to arrived, fulfilled or noshow only", nil
		case store.RolePatient:
			if t.status != scheduling.StatusCancelled {
				return refuse, "a patient may only cancel an appointment (status cancelled)", nil
			}
			if a.Status != scheduling.StatusBooked {
				return refuse, "a patient may cancel only a booked appointment; this one is " + string(a.Status), nil
			}
			return allow, "", nil
		}
	}
	return hide, "", nil
}

// check runs decide and turns a refusal into its answer: 404 for what the
// caller may not see, 403 for what their role never allows.
func (h *handler) check(ctx context.Context, c *caller, act action, t target) error {
	v, why, err := h.decide(ctx, c, act, t)
	if err != nil {
		return err
	}
	switch v {
	case allow:
		return nil
	case refuse:
		return forbidden("%s", why)
	}
	if t.rid != "" {
		return notFound(t.kind, t.rid)
	}
	id := t.id
	if t.kind == kindAppointment || t.kind == kindEncounter {
		id = t.appt.ID
	}
	return notFound(t.kind, strconv.FormatInt(id, 10))
}

// visible reports whether c may read t, for filtering search results.
func (h *handler) visible(ctx context.Context, c *caller, t target) (bool, error) {
	v, _, err := h.decide(ctx, c, actRead, t)
	return v == allow, err
}

// treats reports whether the physician c has an appointment, of any
// status, with the patient.
func (h *handler) treats(ctx context.Context, c *caller, patientID int64) (bool, error) {
	if c.treated == nil {
		treated := make(map[int64]bool)
		for offset := 0; ; {
			page, total, err := h.Store.SearchAppointments(ctx, store.AppointmentQuery{PhysicianID: c.user.ID, Limit: 1000, Offset: offset})
			if err != nil {
				return false, fmt.Errorf("patients of physician %d: %w", c.user.ID, err)
			}
			for _, a := range page {
				treated[a.PatientID] = true
			}
			offset += len(page)
			if len(page) == 0 || offset >= total {
				break
			}
		}
		c.treated = treated
	}
	return c.treated[patientID], nil
}

// The narrow functions shrink a search's store query towards what c may
// see, so that it need not scan what decide would drop. exact reports that
// the narrowed query selects only what c may see (decide still checks each
// result); none that c may see none of what was asked for.

// narrowAppointments narrows an Appointment search.
func narrowAppointments(c *caller, q *store.AppointmentQuery) (exact, none bool) {
	own := func(field *int64) (bool, bool) {
		if *field != 0 && *field != c.user.ID {
			return true, true
		}
		*field = c.user.ID
		return true, false
	}
	switch c.user.Role {
	case store.RoleAdmin, store.RoleScheduler:
		return true, false
	case store.RolePhysician:
		return own(&q.PhysicianID)
	case store.RolePatient:
		return own(&q.PatientID)
	}
	return true, true
}

// narrowPatients narrows a Patient search.
func narrowPatients(c *caller, q *store.UserQuery) (exact, none bool) {
	switch c.user.Role {
	case store.RoleAdmin, store.RoleScheduler:
		return true, false
	case store.RolePhysician:
		return false, false // decide keeps the patients they treat
	case store.RolePatient:
		if q.Email != "" && !strings.EqualFold(q.Email, c.user.Email) {
			return true, true
		}
		q.Email = c.user.Email
		return true, false
	}
	return true, true
}
