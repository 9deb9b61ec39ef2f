package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// Device is a patient's registered device (or the browser that relays
// their Bluetooth devices) as a FHIR R4 Device; its id is the device
// token's. A Bluetooth device that such a relay paired is a Device too,
// with the relay as its parent; its id is the relay's and its own,
// "{relay}-{id}".
type Device struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id"`
	Status       string       `json:"status"`
	DeviceName   []DeviceName `json:"deviceName"`
	Patient      Reference    `json:"patient"`
	Parent       *Reference   `json:"parent,omitempty"`
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

// relayedID is a relayed device's Device id: its relay's id and its own.
func relayedID(relay, id int64) string {
	return strconv.FormatInt(relay, 10) + "-" + strconv.FormatInt(id, 10)
}

// relayedRef is the reference to a relayed device's Device.
func relayedRef(relay, id int64) string { return kindDevice + "/" + relayedID(relay, id) }

// parseDeviceID reads a Device id: a device token's, or a relayed
// device's "{relay}-{id}" (relayed not 0).
func parseDeviceID(s string) (relay, relayed int64, ok bool) {
	a, b, two := strings.Cut(s, "-")
	if relay, ok = parseID(a); !ok || !two {
		return relay, 0, ok
	}
	relayed, ok = parseID(b)
	return relay, relayed, ok
}

// relayedResource renders a Bluetooth device its relay paired: a Device
// of the relay's patient, named as the relay names it, with the relay as
// its parent, and active while the relay is.
func relayedResource(d store.RelayedDevice, relay store.Credential, h *handler) Device {
	res := deviceResource(relay, h)
	res.ID = relayedID(d.RelayID, d.ID)
	res.DeviceName = []DeviceName{{Name: d.Name, Type: "user-friendly-name"}}
	res.Parent = &Reference{Reference: ref(kindDevice, d.RelayID)}
	return res
}

// device is a Device as stored: a device credential, and for a relayed
// device, the device itself (ID not 0).
type device struct {
	cred    store.Credential
	relayed store.RelayedDevice
}

// ref is the device's reference.
func (d device) ref() string {
	if d.relayed.ID != 0 {
		return relayedRef(d.cred.ID, d.relayed.ID)
	}
	return ref(kindDevice, d.cred.ID)
}

// resource renders the device.
func (d device) resource(h *handler) Device {
	if d.relayed.ID != 0 {
		return relayedResource(d.relayed, d.cred, h)
	}
	return deviceResource(d.cred, h)
}

// loadDevice loads the device an id names; notFound if there is none.
func (h *handler) loadDevice(ctx context.Context, raw string) (device, error) {
	var d device
	relay, relayed, ok := parseDeviceID(raw)
	if !ok {
		return d, notFound(kindDevice, raw)
	}
	if relayed != 0 {
		rd, err := h.Store.RelayedDeviceByID(ctx, relayed)
		switch {
		case errors.Is(err, store.ErrNotFound) || err == nil && rd.RelayID != relay:
			return d, notFound(kindDevice, raw)
		case err != nil:
			return d, fmt.Errorf("relayed device %d: %w", relayed, err)
		}
		d.relayed = rd
	}
	cred, err := h.Store.CredentialByID(ctx, store.CredentialDevice, relay)
	if errors.Is(err, store.ErrNotFound) {
		return d, notFound(kindDevice, raw)
	}
	if err != nil {
		return d, fmt.Errorf("device %d: %w", relay, err)
	}
	d.cred = cred
	return d, nil
}

// deviceOf loads the device an ID names, if the caller may see it.
func (h *handler) deviceOf(ctx context.Context, c *caller, raw string) (device, error) {
	d, err := h.loadDevice(ctx, raw)
	if err != nil {
		return d, err
	}
	return d, h.check(ctx, c, actRead, target{kind: kindDevice, id: d.cred.UserID, rid: raw})
}

// readDevice answers GET /Device/{id}: a device token's Device, or a
// relayed device's, seen and audited as its relay's is.
func (h *handler) readDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	d, err := h.deviceOf(r.Context(), c, r.PathValue("id"))
	if d.cred.ID != 0 {
		h.record(r, c, audit.ActionRead, d.cred.UserID, d.ref(), err)
	}
	if err != nil {
		return err
	}
	h.write(w, r, http.StatusOK, d.resource(h))
	return nil
}

var deviceParams = []searchParam{
	{Name: "patient", Type: "reference", Doc: "Patient/{id}: that patient's devices (required)."},
}

// searchDevices answers GET /Device?patient=: one patient's devices,
// oldest first, then the Bluetooth devices they relayed, oldest first.
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
	var all []device
	v2, _, err := h.decide(ctx, c, actRead, target{kind: kindDevice, id: patient})
	switch {
	case err != nil:
		return err
	case v2 == refuse:
		err := forbidden("a scheduler does not see vitals or devices")
		h.record(r, c, audit.ActionSearch, patient, kindDevice, err)
		return err
	case v2 == allow:
		creds, err := h.Store.ListCredentials(ctx, store.CredentialDevice, patient)
		if err != nil {
			return fmt.Errorf("devices of patient %d: %w", patient, err)
		}
		relayed, err := h.Store.RelayedDevices(ctx, patient)
		if err != nil {
			return fmt.Errorf("relayed devices of patient %d: %w", patient, err)
		}
		byID := make(map[int64]store.Credential, len(creds))
		for _, c := range creds {
			all = append(all, device{cred: c})
			byID[c.ID] = c
		}
		for _, rd := range relayed {
			if relay, ok := byID[rd.RelayID]; ok {
				all = append(all, device{cred: relay, relayed: rd})
			}
		}
	}
	page := window(all, q)
	entries := make([]entry, len(page))
	found := make([]recordRef, len(page))
	for i, d := range page {
		entries[i] = entry{d.ref(), d.resource(h)}
		found[i] = recordRef{id: d.cred.ID, patient: d.cred.UserID, ref: d.ref()}
	}
	h.writeBundle(w, r, q, len(all), entries)
	h.recordFound(r, c, kindDevice, patient, found)
	return nil
}
