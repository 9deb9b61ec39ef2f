package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// Device is a patient's registered device (or the browser that relays
// their Bluetooth devices) as a FHIR R4 Device. Its id is the device
// token's.
type Device struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id"`
	Status       string       `json:"status"`
	DeviceName   []DeviceName `json:"deviceName"`
	Patient      Reference    `json:"patient"`
}

// DeviceName is a name a Device is known by.
type DeviceName struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// deviceResource renders a device credential: active until its token is
// revoked or expires.
func deviceResource(d store.Credential, h *handler) Device {
	status := "active"
	if !d.RevokedAt.IsZero() || !d.ExpiresAt.IsZero() && !d.ExpiresAt.After(h.Now()) {
		status = "inactive"
	}
	return Device{ResourceType: kindDevice, ID: strconv.FormatInt(d.ID, 10), Status: status,
		DeviceName: []DeviceName{{Name: d.Name, Type: "user-friendly-name"}},
		Patient:    Reference{Reference: ref(kindPatient, d.UserID)}}
}

// deviceOf loads the device an ID names, if the caller may see it.
func (h *handler) deviceOf(ctx context.Context, c *caller, raw string) (store.Credential, error) {
	id, ok := parseID(raw)
	if !ok {
		return store.Credential{}, notFound(kindDevice, raw)
	}
	d, err := h.Store.CredentialByID(ctx, store.CredentialDevice, id)
	if errors.Is(err, store.ErrNotFound) {
		return d, notFound(kindDevice, raw)
	}
	if err != nil {
		return d, fmt.Errorf("device %d: %w", id, err)
	}
	return d, h.check(ctx, c, actRead, target{kind: kindDevice, id: d.UserID, rid: raw})
}

// readDevice answers GET /Device/{id}.
func (h *handler) readDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	d, err := h.deviceOf(r.Context(), c, r.PathValue("id"))
	if d.ID != 0 {
		h.record(r, c, audit.ActionRead, d.UserID, ref(kindDevice, d.ID), err)
	}
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, deviceResource(d, h))
	return nil
}

var deviceParams = []searchParam{
	{Name: "patient", Type: "reference", Doc: "Patient/{id}: that patient's devices (required)."},
}

// searchDevices answers GET /Device?patient=: one patient's devices,
// oldest first.
func (h *handler) searchDevices(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	q, err := parseQuery(kindDevice, r.URL.Query(), deviceParams)
	if err != nil {
		return err
	}
	v := q.first("patient")
	if v == "" {
		return badRequest(codeRequired, "patient: Devices are searched one patient at a time; give patient=Patient/{id}")
	}
	_, patient, err := parseRef("patient", v, kindPatient)
	if err != nil {
		return err
	}
	var all []store.Credential
	v2, _, err := h.decide(ctx, c, actRead, target{kind: kindDevice, id: patient})
	switch {
	case err != nil:
		return err
	case v2 == refuse:
		err := forbidden("a scheduler does not see vitals or devices")
		h.record(r, c, audit.ActionSearch, patient, kindDevice, err)
		return err
	case v2 == allow:
		if all, err = h.Store.ListCredentials(ctx, store.CredentialDevice, patient); err != nil {
			return fmt.Errorf("devices of patient %d: %w", patient, err)
		}
	}
	page := window(all, q)
	entries := make([]entry, len(page))
	found := make([]recordRef, len(page))
	for i, d := range page {
		entries[i] = entry{ref(kindDevice, d.ID), deviceResource(d, h)}
		found[i] = recordRef{id: d.ID, patient: d.UserID}
	}
	h.writeBundle(w, r, q, len(all), entries)
	h.recordFound(r, c, kindDevice, patient, found)
	return nil
}
