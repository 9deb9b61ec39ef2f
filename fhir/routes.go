package fhir

import (
	"net/http"
	"strings"
)

// routes lists every path the FHIR API answers, relative to /fhir. Every
// route but metadata needs a bearer token; what the caller may see or do
// is decided per resource by decide. A known path with another method is
// answered 405, any other path 404, both as OperationOutcomes.
func (h *handler) routes(mux *http.ServeMux) {
	mux.Handle("GET /metadata", h.public(h.handleMetadata))

	mux.Handle("GET /Patient", h.authed(h.searchPersons(kindPatient)))
	mux.Handle("GET /Patient/{id}", h.authed(h.readPerson(kindPatient)))
	mux.Handle("GET /Practitioner", h.authed(h.searchPersons(kindPractitioner)))
	mux.Handle("GET /Practitioner/{id}", h.authed(h.readPerson(kindPractitioner)))
	mux.Handle("GET /Schedule", h.authed(h.searchSchedules))
	mux.Handle("GET /Schedule/{id}", h.authed(h.readSchedule))
	mux.Handle("GET /Slot", h.authed(h.searchSlots))
	mux.Handle("GET /Slot/{id}", h.authed(h.readSlot))
	mux.Handle("GET /Appointment", h.authed(h.searchAppointments))
	mux.Handle("POST /Appointment", h.authed(h.createAppointment))
	mux.Handle("GET /Appointment/{id}", h.authed(h.readAppointment))
	mux.Handle("PUT /Appointment/{id}", h.authed(h.updateAppointment))
	mux.Handle("GET /AuditEvent", h.authed(h.searchAuditEvents))
	mux.Handle("GET /Observation", h.authed(h.searchObservations))
	mux.Handle("POST /Observation", h.public(h.createObservation)) // an API or a device token: createObservation authenticates
	mux.Handle("GET /Observation/{id}", h.authed(h.readObservation))
	mux.Handle("GET /Device", h.authed(h.searchDevices))
	mux.Handle("GET /Device/{id}", h.authed(h.readDevice))
	mux.Handle("GET /Encounter", h.authed(h.searchEncounters))
	mux.Handle("GET /Encounter/{id}", h.authed(h.readEncounter))
	mux.Handle("GET /Encounter/{id}/$everything", h.authed(h.encounterEverything))

	mux.Handle("/metadata", h.notAllowed("GET"))
	for _, kind := range []string{kindPatient, kindPractitioner, kindSchedule, kindSlot} {
		mux.Handle("/"+kind, h.notAllowed("GET"))
		mux.Handle("/"+kind+"/{id}", h.notAllowed("GET"))
	}
	mux.Handle("/Appointment", h.notAllowed("GET", "POST"))
	mux.Handle("/Appointment/{id}", h.notAllowed("GET", "PUT"))
	mux.Handle("/AuditEvent", h.notAllowed("GET"))
	mux.Handle("/Observation", h.notAllowed("GET", "POST"))
	mux.Handle("/Observation/{id}", h.notAllowed("GET"))
	mux.Handle("/Device", h.notAllowed("GET"))
	mux.Handle("/Device/{id}", h.notAllowed("GET"))
	mux.Handle("/Encounter", h.notAllowed("GET"))
	mux.Handle("/Encounter/{id}", h.notAllowed("GET"))
	mux.Handle("/Encounter/{id}/$everything", h.notAllowed("GET"))
	mux.Handle("/", h.public(func(w http.ResponseWriter, r *http.Request) error {
		return newError(http.StatusNotFound, codeNotFound, "%s is not a path of this FHIR API; GET /fhir/metadata lists what is", r.URL.Path)
	}))
}

// notAllowed answers a method a path does not take with 405.
func (h *handler) notAllowed(methods ...string) http.Handler {
	allow := strings.Join(append(methods, "HEAD"), ", ")
	return h.public(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Allow", allow)
		return newError(http.StatusMethodNotAllowed, codeNotSupported, "%s %s is not supported; this path takes %s", r.Method, r.URL.Path, allow)
	})
}
