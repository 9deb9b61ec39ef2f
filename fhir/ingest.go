package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals"
	"github.com/bedside-health/bedside/vitals/ward"
)

// createObservation answers POST /Observation: device ingest over REST. The
// body is one FHIR Observation, checked by the same decoder as the device
// socket's (vitals.ParseObservation): a numeric valueQuantity in a UCUM
// unit, or a blood-pressure panel 85354-9 with its two components.
// The caller is a device (its device token as the bearer token: it posts
// for its own patient), or an API token's user: a patient for themselves,
// or a physician for a patient they have a visit with (readings entered
// by hand, with no device). It answers 201 with the stored Observation and
// its Location. Nothing invalid is stored. What is stored goes live to the
// patient's viewers and NEWS2 monitor, as a device socket's readings do.
func (h *handler) createObservation(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c, dev, err := h.ingestCaller(r)
	if err != nil {
		return err
	}
	who := audit.Who{ID: dev.UserID, Role: audit.RoleDevice, Address: audit.Address(r)}
	if c != nil {
		who = audit.User(c.user, r)
	}
	patient, err := h.ingest(w, r, c, dev)
	outcome := audit.OutcomeSuccess
	var ae *apiError
	switch {
	case err == nil:
	case errors.As(err, &ae) && (ae.status == http.StatusForbidden || ae.status == http.StatusNotFound):
		outcome = audit.OutcomeDenied
	default:
		outcome = audit.OutcomeFailed
	}
	if h.Audit != nil {
		h.Audit.Record(ctx, store.AuditEvent{At: h.Now(), ActorID: who.ID, ActorRole: who.Role, Action: audit.ActionCreate,
			PatientID: patient, Resource: kindObservation, Address: who.Address, Outcome: outcome})
	}
	return err
}

// ingestCaller authenticates a posting client: an API token gives a
// caller, a device token the device. A token that is neither live is
// counted as authenticate's are.
func (h *handler) ingestCaller(r *http.Request) (*caller, store.Credential, error) {
	c, dev, err := h.ingestToken(r)
	if isInvalidToken(err) {
		h.refused(r)
	}
	return c, dev, err
}

func (h *handler) ingestToken(r *http.Request) (*caller, store.Credential, error) {
	c, err := h.apiCaller(r)
	if err == nil || !isInvalidToken(err) {
		return c, store.Credential{}, err
	}
	_, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	dev, derr := h.Store.CredentialByHash(r.Context(), store.CredentialDevice, auth.HashToken(strings.TrimSpace(token)))
	switch {
	case errors.Is(derr, store.ErrNotFound):
		return nil, dev, unauthorized(true, "the bearer token is neither an API token nor a device token")
	case derr != nil:
		return nil, dev, fmt.Errorf("authenticate device: %w", derr)
	case !dev.RevokedAt.IsZero():
		return nil, dev, unauthorized(true, "the device token was revoked")
	case !dev.ExpiresAt.IsZero() && !dev.ExpiresAt.After(h.Now()):
		return nil, dev, unauthorized(true, "the device token has expired")
	}
	return nil, dev, nil
}

// ingest validates and stores the posted Observation; it returns the
// patient whose reading it is (0 if not known).
func (h *handler) ingest(w http.ResponseWriter, r *http.Request, c *caller, dev store.Credential) (int64, error) {
	ctx := r.Context()
	body, err := readBody(w, r)
	if err != nil {
		return 0, err
	}
	p, err := vitals.ParseObservation(body)
	if err != nil {
		return 0, unprocessable(codeInvalid, "%v", err)
	}
	if p.Waveform != nil {
		return 0, unprocessable(codeNotSupported, "valueSampledData: waveforms are streamed live over the device socket (/ws/device) and not stored; post numeric readings here")
	}
	patient := dev.UserID
	if p.Subject != "" {
		_, id, err := parseRef("subject.reference", p.Subject, kindPatient)
		if err != nil {
			return 0, unprocessable(codeValue, "subject.reference: want Patient/{id}, got %q", truncate(p.Subject, 60))
		}
		if c == nil && id != patient {
			return patient, forbidden("subject.reference: a device may post only for its own patient")
		}
		patient = id
	}
	if c != nil {
		if patient == 0 && c.user.Role == store.RolePatient {
			patient = c.user.ID
		}
		if patient == 0 {
			return 0, unprocessable(codeRequired, "subject.reference: name the patient (Patient/{id})")
		}
		if err := h.check(ctx, c, actRecord, target{kind: kindObservation, id: patient}); err != nil {
			return patient, err
		}
	}
	received := h.Now().UTC()
	obs := make([]store.Observation, 0, len(p.Readings))
	for _, rd := range p.Readings {
		obs = append(obs, store.Observation{PatientID: patient, DeviceID: dev.ID, Code: rd.Code, Value: rd.Value, Unit: rd.Unit,
			EffectiveAt: rd.Time.UTC(), ReceivedAt: received, Flags: rd.Flags})
	}
	// Sequence 0: a posted reading is not part of the device's numbered
	// stream, whose acknowledged sequence stays where it is.
	if err := h.Store.AppendObservations(ctx, dev.ID, 0, obs); err != nil {
		return patient, fmt.Errorf("store posted observation: %w", err)
	}
	// A physician's API token posts what they measured by hand: NEWS2
	// scores it as entered, not as a device's measurement.
	byHand := c != nil && c.user.Role == store.RolePhysician
	h.publish(ctx, patient, dev.Name, p.Readings, byHand)
	stored, err := h.storedAs(ctx, obs[0])
	if err != nil {
		return patient, err
	}
	res, err := h.linker().resource(ctx, stored)
	if err != nil {
		return patient, err
	}
	w.Header().Set("Location", h.base(r)+"/"+ref(kindObservation, stored.ID))
	h.write(w, r, http.StatusCreated, res)
	return patient, nil
}

// Enterer takes a clinician's hand-entered value into the patient's NEWS2
// (ward.Ward); the NEWS2 observer implements it if it can.
type Enterer interface {
	Enter(ctx context.Context, patientID int64, in ward.Input) error
}

// publish sends stored readings to the patient's live viewers and NEWS2
// monitor, as the device socket does. Live delivery is best effort: a
// viewer that misses one finds it in the stored history. Readings taken
// byHand are entered into NEWS2 where it scores their code.
func (h *handler) publish(ctx context.Context, patient int64, device string, rs []vitals.Reading, byHand bool) {
	if h.Live != nil {
		for _, r := range rs {
			b, err := json.Marshal(vitals.LiveReading{Type: "reading", Code: r.Code, Value: r.Value, Unit: r.Unit,
				Time: r.Time, Device: device, Flags: r.Flags})
			if err == nil {
				_ = h.Live.Publish(ctx, patient, b)
			}
		}
	}
	if h.NEWS2 == nil {
		return
	}
	if e, ok := h.NEWS2.(Enterer); ok && byHand {
		var measured []vitals.Reading
		for _, r := range rs {
			in := ward.Input{Kind: ward.KindValue, Code: r.Code, Value: r.Value, At: r.Time}
			if ward.Check(in) != nil {
				measured = append(measured, r) // not a NEWS2 parameter: thresholds still watch it
				continue
			}
			if err := e.Enter(ctx, patient, in); err != nil {
				h.Log.WarnContext(ctx, "news2 hand-entered value", "patient", patient, "code", r.Code, "err", err)
			}
		}
		rs = measured
	}
	if len(rs) > 0 {
		h.NEWS2.Observe(ctx, patient, rs)
	}
}

// storedAs finds the row just stored for o (the newest of its patient,
// device, code and time).
func (h *handler) storedAs(ctx context.Context, o store.Observation) (store.Observation, error) {
	rows, err := h.Store.ObservationsBetween(ctx, o.PatientID, o.EffectiveAt, o.EffectiveAt.Add(time.Millisecond))
	if err != nil {
		return o, fmt.Errorf("find posted observation: %w", err)
	}
	var found store.Observation
	for _, x := range rows {
		if x.DeviceID == o.DeviceID && x.Code == o.Code && x.Seq == 0 && x.ID > found.ID {
			found = x
		}
	}
	if found.ID == 0 {
		return o, fmt.Errorf("find posted observation: %w", store.ErrNotFound)
	}
	return found, nil
}

// truncate shortens s for a diagnostic.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
