package fhir

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// maxSlotRange is the longest span of starts one Slot search may ask for.
const maxSlotRange = 31 * 24 * time.Hour

// Slot is a bookable span of a physician's Schedule.
type Slot struct {
	ResourceType string            `json:"resourceType"`
	ID           string            `json:"id"`
	ServiceType  []CodeableConcept `json:"serviceType,omitempty"`
	Schedule     Reference         `json:"schedule"`
	Status       string            `json:"status"`
	Start        string            `json:"start"`
	End          string            `json:"end"`
}

// slotID names a slot: {physician}-{start in Unix seconds} for a standard
// visit, {physician}-{start}-{visit type code} for a visit of a type.
type slotID struct {
	physician int64
	start     time.Time
	visitType string
}

func (s slotID) String() string {
	id := strconv.FormatInt(s.physician, 10) + "-" + strconv.FormatInt(s.start.Unix(), 10)
	if s.visitType != "" {
		id += "-" + s.visitType
	}
	return id
}

// parseSlotID reads a slot ID written as slotID.String writes it.
func parseSlotID(s string) (slotID, bool) {
	phys, rest, ok := strings.Cut(s, "-")
	if !ok {
		return slotID{}, false
	}
	secs, visitType, _ := strings.Cut(rest, "-")
	p, ok1 := parseID(phys)
	unix, ok2 := parseID(secs)
	id := slotID{physician: p, start: time.Unix(unix, 0).UTC(), visitType: visitType}
	if !ok1 || !ok2 || id.String() != s {
		return slotID{}, false // not as String writes it: "3-100-", say
	}
	return id, true
}

// slotResource is one generated slot as a Slot.
func slotResource(physician int64, visitType string, s scheduling.Slot) Slot {
	out := Slot{
		ResourceType: kindSlot,
		ID:           slotID{physician, s.Start, visitType}.String(),
		Schedule:     Reference{Reference: ref(kindSchedule, physician)},
		Status:       "busy",
		Start:        instant(s.Start),
		End:          instant(s.End),
	}
	if s.Free {
		out.Status = "free"
	}
	if visitType != "" {
		out.ServiceType = []CodeableConcept{{Coding: []Coding{{System: visitTypeSystem, Code: visitType}}}}
	}
	return out
}

// slotsOf computes a physician's slots of a visit type starting in
// [from, to) as it is now, with live appointments busy.
func (h *handler) slotsOf(ctx context.Context, physicianID int64, a scheduling.Availability, visitType string, from, to time.Time) ([]scheduling.Slot, error) {
	// Visits starting up to a day before from may still be running, and
	// buffers reach past both ends.
	booked, err := h.Store.AppointmentsBetween(ctx, physicianID, 0, from.Add(-24*time.Hour), to.Add(24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("appointments of %d: %w", physicianID, err)
	}
	busy := make([]scheduling.Interval, len(booked))
	for i, b := range booked {
		busy[i] = scheduling.Interval{Start: b.Start, End: b.End}
	}
	return scheduling.Slots(a, scheduling.Query{From: from, To: to, Now: h.Now(), VisitType: visitType, Busy: busy}), nil
}

// slotNow finds the slot an ID names among the physician's slots now.
func (h *handler) slotNow(ctx context.Context, id slotID, a scheduling.Availability) (scheduling.Slot, bool, error) {
	slots, err := h.slotsOf(ctx, id.physician, a, id.visitType, id.start, id.start.Add(time.Second))
	if err != nil {
		return scheduling.Slot{}, false, err
	}
	for _, s := range slots {
		if s.Start.Equal(id.start) {
			return s, true, nil
		}
	}
	return scheduling.Slot{}, false, nil
}

// readSlot answers GET /Slot/{id}: the slot, if it is one of its
// schedule's slots now.
func (h *handler) readSlot(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	raw := r.PathValue("id")
	id, ok := parseSlotID(raw)
	if !ok {
		return notFound(kindSlot, raw)
	}
	_, a, err := h.scheduleOf(ctx, strconv.FormatInt(id.physician, 10))
	var ae *apiError
	if errors.As(err, &ae) {
		return notFound(kindSlot, raw)
	}
	if err != nil {
		return err
	}
	s, ok, err := h.slotNow(ctx, id, a)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(kindSlot, raw)
	}
	if err := h.check(ctx, c, actRead, target{kind: kindSlot, id: id.physician}); err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, slotResource(id.physician, id.visitType, s))
	return nil
}

// searchSlots answers GET /Slot.
func (h *handler) searchSlots(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	q, err := parseQuery(kindSlot, r.URL.Query(), slotParams)
	if err != nil {
		return err
	}
	var b bounds
	for _, v := range q.values["start"] {
		if err := b.and("start", v); err != nil {
			return err
		}
	}
	if b.from.IsZero() || b.to.IsZero() {
		return badRequest(codeRequired, "start: give the range of starts to search, a lower bound (start=ge2026-11-25) and an upper bound (start=lt2026-11-26T00:00:00Z), at most 31 days apart")
	}
	if b.to.Sub(b.from) > maxSlotRange {
		return badRequest(codeTooCostly, "start: the range %s to %s is longer than 31 days; search a shorter one", instant(b.from), instant(b.to))
	}
	wantFree, wantBusy := true, true
	if st := q.first("status"); st != "" {
		wantFree, wantBusy = false, false
		for _, s := range tokens(st) {
			switch s {
			case "free":
				wantFree = true
			case "busy":
				wantBusy = true
			default:
				return badRequest(codeValue, "status: %q is not a Bedside slot status; use free, busy or free,busy", s)
			}
		}
	}
	visitType := q.first("service-type")
	if system, code, ok := strings.Cut(visitType, "|"); ok {
		if system != visitTypeSystem && system != "" {
			return badRequest(codeValue, "service-type: the system must be %s, not %q", visitTypeSystem, system)
		}
		visitType = code
	}
	physicians, err := h.slotPhysicians(ctx, q)
	if err != nil {
		return err
	}
	type found struct {
		physician int64
		slot      scheduling.Slot
	}
	var all []found
	for _, u := range physicians {
		if b.empty() {
			break
		}
		a, err := h.Store.Availability(ctx, u.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("availability of %d: %w", u.ID, err)
		}
		if ok, err := h.visible(ctx, c, target{kind: kindSlot, id: u.ID}); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		slots, err := h.slotsOf(ctx, u.ID, a, visitType, b.from, b.to)
		if err != nil {
			return err
		}
		for _, s := range slots {
			if s.Free && wantFree || !s.Free && wantBusy {
				all = append(all, found{u.ID, s})
			}
		}
	}
	slices.SortStableFunc(all, func(x, y found) int {
		return cmp.Or(x.slot.Start.Compare(y.slot.Start), cmp.Compare(x.physician, y.physician))
	})
	page := window(all, q)
	entries := make([]entry, len(page))
	for i, f := range page {
		s := slotResource(f.physician, visitType, f.slot)
		entries[i] = entry{kindSlot + "/" + s.ID, s}
	}
	h.writeBundle(w, r, q, len(all), entries)
	return nil
}

// slotPhysicians lists the physicians whose slots a search asks for.
func (h *handler) slotPhysicians(ctx context.Context, q query) ([]store.User, error) {
	sched, prac := q.first("schedule"), q.first("practitioner")
	var byID []store.User
	for _, p := range []struct{ name, value, kind string }{{"schedule", sched, kindSchedule}, {"practitioner", prac, kindPractitioner}} {
		if p.value == "" {
			continue
		}
		users, err := h.physicians(ctx, p.value, p.name, p.kind)
		if err != nil {
			return nil, err
		}
		if byID != nil && (len(users) == 0 || users[0].ID != byID[0].ID) {
			return nil, nil // schedule and practitioner name different physicians
		}
		byID = users
		if len(users) == 0 {
			return nil, nil
		}
	}
	if sched != "" || prac != "" {
		return byID, nil
	}
	return h.physicians(ctx, "", "")
}
