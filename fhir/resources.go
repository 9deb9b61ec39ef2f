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
	"github.com/bedside-health/bedside/fhir/fhirtime"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// emailSystem names the identifier system of a person's email address.
const emailSystem = "urn:bedside:email"

// visitTypeSystem names the code system of a physician's visit types.
const visitTypeSystem = "urn:bedside:visit-type"

// Reference points at another resource.
type Reference struct {
	Reference string `json:"reference,omitempty"`
	Type      string `json:"type,omitempty"`
	Display   string `json:"display,omitempty"`
}

// Identifier is a business identifier of a resource.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// HumanName is a person's name.
type HumanName struct {
	Text   string   `json:"text,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
}

// ContactPoint is an email address or phone number.
type ContactPoint struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

// Coding is a code from a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a concept as codes and text.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Period is a span of time; either end may be open.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Person is a Patient or a Practitioner resource.
type Person struct {
	ResourceType string         `json:"resourceType"`
	ID           string         `json:"id"`
	Identifier   []Identifier   `json:"identifier,omitempty"`
	Active       bool           `json:"active"`
	Name         []HumanName    `json:"name,omitempty"`
	Telecom      []ContactPoint `json:"telecom,omitempty"`
	BirthDate    string         `json:"birthDate,omitempty"`
}

// Schedule is a physician's Schedule resource.
type Schedule struct {
	ResourceType    string            `json:"resourceType"`
	ID              string            `json:"id"`
	Active          bool              `json:"active"`
	ServiceType     []CodeableConcept `json:"serviceType,omitempty"`
	Actor           []Reference       `json:"actor"`
	PlanningHorizon *Period           `json:"planningHorizon,omitempty"`
	Comment         string            `json:"comment,omitempty"`
}

// instant writes t as a FHIR instant in UTC, to the second.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ref is the relative reference to a resource.
func ref(kind string, id int64) string { return kind + "/" + strconv.FormatInt(id, 10) }

// personResource is a user as a Patient or Practitioner; only patients
// carry a birth date.
func personResource(kind string, u store.User) Person {
	p := Person{
		ResourceType: kind,
		ID:           strconv.FormatInt(u.ID, 10),
		Identifier:   []Identifier{{System: emailSystem, Value: u.Email}},
		Active:       true,
		Telecom:      []ContactPoint{{System: "email", Value: u.Email}},
	}
	if words := strings.Fields(u.Name); len(words) > 0 {
		n := HumanName{Text: strings.Join(words, " "), Family: words[len(words)-1]}
		if len(words) > 1 {
			n.Given = words[:len(words)-1]
		}
		p.Name = []HumanName{n}
	}
	if u.Phone != "" {
		p.Telecom = append(p.Telecom, ContactPoint{System: "phone", Value: u.Phone})
	}
	if kind == kindPatient {
		p.BirthDate = u.BirthDate
	}
	return p
}

// roleOf is the role of the users a person resource type stands for.
func roleOf(kind string) store.Role {
	if kind == kindPatient {
		return store.RolePatient
	}
	return store.RolePhysician
}

// userOf loads the user a Patient, Practitioner or Schedule ID names; a
// user of another role is not found.
func (h *handler) userOf(ctx context.Context, kind, rawID string) (store.User, error) {
	id, ok := parseID(rawID)
	if !ok {
		return store.User{}, notFound(kind, rawID)
	}
	u, err := h.Store.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && u.Role != roleOf(kind) {
		return store.User{}, notFound(kind, rawID)
	}
	return u, err
}

// readPerson answers GET /Patient/{id} and GET /Practitioner/{id}.
func (h *handler) readPerson(kind string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		ctx := r.Context()
		u, err := h.userOf(ctx, kind, r.PathValue("id"))
		if err != nil {
			return err
		}
		err = h.check(ctx, c, actRead, target{kind: kind, id: u.ID})
		if kind == kindPatient {
			h.record(r, c, audit.ActionRead, u.ID, ref(kindPatient, u.ID), err)
		}
		if err != nil {
			return err
		}
		h.write(w, r, http.StatusOK, personResource(kind, u))
		return nil
	}
}

// searchPersons answers GET /Patient and GET /Practitioner.
func (h *handler) searchPersons(kind string) apiFunc {
	params := practitionerParams
	if kind == kindPatient {
		params = patientParams
	}
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		ctx := r.Context()
		q, err := parseQuery(kind, r.URL.Query(), params)
		if err != nil {
			return err
		}
		uq, none, err := userQuery(q)
		if err != nil {
			return err
		}
		uq.Role = roleOf(kind)
		exact := true
		if kind == kindPatient && !none {
			exact, none = narrowPatients(c, &uq)
		}
		var page []store.User
		total := 0
		if !none {
			fetch := func(limit, offset int) ([]store.User, int, error) {
				uq.Limit, uq.Offset = limit, offset
				return h.Store.SearchUsers(ctx, uq)
			}
			keep := func(u store.User) (bool, error) { return h.visible(ctx, c, target{kind: kind, id: u.ID}) }
			page, total, err = pageOf(q, exact, fetch, keep)
			if err = h.scoped(ctx, kind, err); err != nil {
				return err
			}
		}
		entries := make([]entry, len(page))
		found := make([]recordRef, len(page))
		for i, u := range page {
			entries[i] = entry{ref(kind, u.ID), personResource(kind, u)}
			found[i] = recordRef{id: u.ID, patient: u.ID}
		}
		h.writeBundle(w, r, q, total, entries)
		if kind == kindPatient {
			h.recordFound(r, c, kind, 0, found)
		}
		return nil
	}
}

// userQuery turns person search parameters into a store query; none
// reports conditions that nothing can meet.
func userQuery(q query) (uq store.UserQuery, none bool, err error) {
	uq.Text = strings.Join(q.values["name"], " ")
	uq.Email = q.first("email")
	if id := q.first("identifier"); id != "" {
		system, value, hasSystem := strings.Cut(id, "|")
		if !hasSystem {
			system, value = emailSystem, id
		}
		switch {
		case system != emailSystem:
			none = true // Bedside has no identifiers of other systems
		case value == "":
			// any email: no condition
		case uq.Email != "" && !strings.EqualFold(uq.Email, value):
			none = true
		default:
			uq.Email = value
		}
	}
	if bd := q.first("birthdate"); bd != "" {
		bd = strings.TrimPrefix(bd, "eq")
		if len(bd) >= 2 && bd[0] >= 'a' && bd[0] <= 'z' {
			return uq, false, badRequest(codeNotSupported, "birthdate: only an exact date is supported (no prefix, or eq), not %q", q.first("birthdate"))
		}
		if _, err := time.Parse(time.DateOnly, bd); err != nil || !fhirtime.IsDate(bd) {
			return uq, false, badRequest(codeValue, "birthdate: %q is not a date written YYYY-MM-DD", q.first("birthdate"))
		}
		uq.BirthDate = bd
	}
	return uq, none, nil
}

// scheduleOf loads the availability of the physician a Schedule names; a
// physician without one is not found.
func (h *handler) scheduleOf(ctx context.Context, rawID string) (store.User, scheduling.Availability, error) {
	u, err := h.userOf(ctx, kindSchedule, rawID)
	if err != nil {
		return u, scheduling.Availability{}, err
	}
	a, err := h.Store.Availability(ctx, u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return u, a, notFound(kindSchedule, rawID)
	}
	if err != nil {
		return u, a, fmt.Errorf("schedule %d: %w", u.ID, err)
	}
	return u, a, nil
}

// scheduleResource is a physician's availability as a Schedule.
func scheduleResource(u store.User, a scheduling.Availability, now time.Time) Schedule {
	s := Schedule{
		ResourceType: kindSchedule,
		ID:           strconv.FormatInt(u.ID, 10),
		Active:       true,
		Actor:        []Reference{{Reference: ref(kindPractitioner, u.ID), Display: u.Name}},
		Comment: fmt.Sprintf("Hours are kept in the %s time zone; a standard visit lasts %d minutes.",
			a.Zone, int(a.SlotLength/time.Minute)),
	}
	for _, v := range a.VisitTypes {
		length, _ := a.VisitLength(v.Code)
		s.ServiceType = append(s.ServiceType, CodeableConcept{
			Coding: []Coding{{System: visitTypeSystem, Code: v.Code, Display: v.Name}},
			Text:   fmt.Sprintf("%s (%d minutes)", v.Name, int(length/time.Minute)),
		})
	}
	p := &Period{Start: instant(now.Add(max(a.MinNotice, 0)))}
	if a.Horizon > 0 {
		p.End = instant(now.Add(a.Horizon))
	}
	s.PlanningHorizon = p
	return s
}

// readSchedule answers GET /Schedule/{id}.
func (h *handler) readSchedule(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	u, a, err := h.scheduleOf(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := h.check(ctx, c, actRead, target{kind: kindSchedule, id: u.ID}); err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, scheduleResource(u, a, h.Now()))
	return nil
}

// searchSchedules answers GET /Schedule.
func (h *handler) searchSchedules(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	q, err := parseQuery(kindSchedule, r.URL.Query(), scheduleParams)
	if err != nil {
		return err
	}
	physicians, err := h.physicians(ctx, q.first("actor"), "actor", kindPractitioner)
	if err != nil {
		return err
	}
	now := h.Now()
	var all []entry
	for _, u := range physicians {
		a, err := h.Store.Availability(ctx, u.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("schedule %d: %w", u.ID, err)
		}
		if ok, err := h.visible(ctx, c, target{kind: kindSchedule, id: u.ID}); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		all = append(all, entry{ref(kindSchedule, u.ID), scheduleResource(u, a, now)})
	}
	h.writeBundle(w, r, q, len(all), window(all, q))
	return nil
}

// physicians lists the physicians a reference search value names: the one
// it names (none if that is not a physician), or every physician when the
// value is empty.
func (h *handler) physicians(ctx context.Context, value, param string, kinds ...string) ([]store.User, error) {
	if value == "" {
		users, err := h.Store.ListUsers(ctx, store.RolePhysician)
		if err != nil {
			return nil, fmt.Errorf("list physicians: %w", err)
		}
		return users, nil
	}
	_, id, err := parseRef(param, value, kinds...)
	if err != nil {
		return nil, err
	}
	u, err := h.Store.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && u.Role != store.RolePhysician {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("physician %d: %w", id, err)
	}
	return []store.User{u}, nil
}
