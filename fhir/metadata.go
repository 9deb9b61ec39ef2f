package fhir

import (
	"net/http"
)

// capabilityDate is when this CapabilityStatement last changed.
const capabilityDate = "2026-12-05"

// CapabilityStatement says what this server implements.
type CapabilityStatement struct {
	ResourceType   string           `json:"resourceType"`
	Status         string           `json:"status"`
	Date           string           `json:"date"`
	Publisher      string           `json:"publisher"`
	Kind           string           `json:"kind"`
	Software       Software         `json:"software"`
	Implementation Implementation   `json:"implementation"`
	FHIRVersion    string           `json:"fhirVersion"`
	Format         []string         `json:"format"`
	Rest           []CapabilityRest `json:"rest"`
}

// Software names the program behind the server.
type Software struct {
	Name string `json:"name"`
}

// Implementation is this installation.
type Implementation struct {
	Description string `json:"description"`
	URL         string `json:"url"`
}

// CapabilityRest is what the server offers over REST.
type CapabilityRest struct {
	Mode        string                  `json:"mode"`
	Security    CapabilitySecurity      `json:"security"`
	Resource    []CapabilityResource    `json:"resource"`
	SearchParam []CapabilitySearchParam `json:"searchParam"`
}

// CapabilitySecurity is how clients authenticate.
type CapabilitySecurity struct {
	Service     []CodeableConcept `json:"service"`
	Description string            `json:"description"`
}

// CapabilityResource is what the server does with one resource type.
type CapabilityResource struct {
	Type          string                  `json:"type"`
	Documentation string                  `json:"documentation,omitempty"`
	Interaction   []CapabilityInteraction `json:"interaction"`
	UpdateCreate  *bool                   `json:"updateCreate,omitempty"`
	SearchParam   []CapabilitySearchParam `json:"searchParam,omitempty"`
}

// CapabilityInteraction is one REST operation on a resource type.
type CapabilityInteraction struct {
	Code          string `json:"code"`
	Documentation string `json:"documentation,omitempty"`
}

// CapabilitySearchParam is one search parameter.
type CapabilitySearchParam struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Documentation string `json:"documentation,omitempty"`
}

func searchParams(params []searchParam) []CapabilitySearchParam {
	out := make([]CapabilitySearchParam, len(params))
	for i, p := range params {
		out[i] = CapabilitySearchParam{Name: p.Name, Type: p.Type, Documentation: p.Doc}
	}
	return out
}

func interactions(codes ...string) []CapabilityInteraction {
	out := make([]CapabilityInteraction, len(codes))
	for i, c := range codes {
		out[i] = CapabilityInteraction{Code: c}
	}
	return out
}

// capability is the CapabilityStatement of the server at base.
func capability(base string) CapabilityStatement {
	no := false
	return CapabilityStatement{
		ResourceType:   "CapabilityStatement",
		Status:         "active",
		Date:           capabilityDate,
		Publisher:      "Bedside",
		Kind:           "instance",
		Software:       Software{Name: "Bedside"},
		Implementation: Implementation{Description: "Bedside FHIR R4 API: appointments and the schedules they are booked from, held visits and the vitals measured in and between them", URL: base},
		FHIRVersion:    "4.0.1",
		Format:         []string{"json"},
		Rest: []CapabilityRest{{
			Mode: "server",
			Security: CapabilitySecurity{
				Service: []CodeableConcept{{Text: "Bearer token"}},
				Description: "Send Authorization: Bearer <token> with an API token issued by `bedside token issue`. " +
					"What a token's user sees depends on their role: admins and schedulers see everything and book; " +
					"physicians see their own appointments and patients; patients see their own records. " +
					"A resource the caller may not see is answered 404. " +
					"An address whose tokens are refused too often is answered 429 with Retry-After.",
			},
			Resource: []CapabilityResource{
				{Type: kindPatient, Interaction: interactions("read", "search-type"), SearchParam: searchParams(patientParams)},
				{Type: kindPractitioner, Interaction: interactions("read", "search-type"), SearchParam: searchParams(practitionerParams)},
				{Type: kindSchedule, Documentation: "One per physician with working hours; its id is the Practitioner's.",
					Interaction: interactions("read", "search-type"), SearchParam: searchParams(scheduleParams)},
				{Type: kindSlot, Documentation: "Computed from the schedule and the booked visits. Slot id: {practitioner id}-{start in Unix seconds} for a standard visit, {practitioner id}-{start}-{visit type code} for a visit of a type.",
					Interaction: interactions("read", "search-type"), SearchParam: searchParams(slotParams)},
				{Type: kindAppointment,
					Documentation: "Create books a free Slot (status booked, one slot, the Patient and the slot's Practitioner as participants). Update changes only the status (cancelled, noshow, arrived, fulfilled, entered-in-error) and cancelationReason.",
					Interaction:   interactions("read", "search-type", "create", "update"), UpdateCreate: &no,
					SearchParam: searchParams(appointmentParams)},
				{Type: kindObservation,
					Documentation: "Readings from patients' devices (LOINC codes, UCUM units; blood pressure as the 85354-9 panel with systolic and diastolic components, whose id is the systolic reading's), each linked to the Device that measured it (a relayed Bluetooth device's readings to that device, not its relay) and, when taken during a visit, its Encounter; doubtful readings carry interpretation IND and their device's flags as notes. Create is device ingest: a device token posts for its patient, a patient's API token for themselves, a physician's for a patient they have a visit with; the body is checked as on the device socket. Schedulers never see Observations (403).",
					Interaction:   interactions("read", "search-type", "create"), SearchParam: searchParams(observationParams)},
				{Type: kindDevice, Documentation: "A patient's registered device (or the browser relaying their Bluetooth devices); its id is the device token's. A Bluetooth device such a relay paired is a Device of its own, named as the relay names it, with the relay as its parent; its id is {relay}-{n}. Seen as Observations are.",
					Interaction: interactions("read", "search-type"), SearchParam: searchParams(deviceParams)},
				{Type: kindEncounter,
					Documentation: "A held visit (its Appointment arrived or fulfilled), with the same id as the Appointment; period from the patient's arrival to the visit's end. GET /Encounter/{id}/$everything exports the visit as a searchset Bundle: the Encounter, Patient, Practitioner, Devices, the visit's Observations and a derived NEWS2 Observation.",
					Interaction:   interactions("read", "search-type"), SearchParam: searchParams(encounterParams)},
				{Type: kindAuditEvent,
					Documentation: "The audit trail of access to patient data, in the order it was recorded; admins only (others are answered 403). It holds identifiers, never clinical values.",
					Interaction:   interactions("search-type"), SearchParam: searchParams(auditEventParams)},
			},
			SearchParam: searchParams(pagingParams),
		}},
	}
}

// handleMetadata answers GET /metadata; it needs no token.
func (h *handler) handleMetadata(w http.ResponseWriter, r *http.Request) error {
	h.write(w, r, http.StatusOK, capability(h.base(r)))
	return nil
}
