package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
)

// audited records that the caller did action to resource of patient's
// data, with outcome success. Handlers call it once they have shown or
// changed the record; refusals are recorded by denied.
func (s *server) audited(r *http.Request, c caller, action string, patientID int64, resource string) {
	s.Audit.Success(r.Context(), audit.User(c.User, r), action, patientID, resource)
	s.metrics.auditable.Inc(action)
}

// auditDenied records that the caller was refused action on resource.
func (s *server) auditDenied(r *http.Request, c caller, action string, patientID int64, resource string) {
	s.Audit.Denied(r.Context(), audit.User(c.User, r), action, patientID, resource)
	s.metrics.auditable.Inc(action)
}

// auditRefusal records that c was refused a page by its role: a patient's
// visit session asking for a scheduler's page, a scheduler asking for a
// consult. Where the URL names a visit or a patient, the event names that
// patient, so "who tried to open this patient's records" has an answer.
func (s *server) auditRefusal(r *http.Request, c caller) {
	action := audit.ActionRead
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		action = audit.ActionUpdate
	}
	// The route's pattern, not the URL, so that a probe cannot write what
	// it likes into the trail: "appointments/{id}/cancel" names the id
	// only if it is one.
	_, pattern, _ := strings.Cut(r.Pattern, " ")
	idText := "unknown"
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		id = 0
	} else {
		idText = strconv.FormatInt(id, 10)
	}
	resource := strings.ReplaceAll(strings.Trim(pattern, "/"), "{id}", idText)
	var patientID int64
	if id > 0 {
		switch first, _, _ := strings.Cut(resource, "/"); first {
		case "appointments", "consult", "ws":
			if a, err := s.Store.AppointmentByID(r.Context(), id); err == nil {
				patientID = a.PatientID
			}
			resource = audit.Ref("Appointment", id)
			if strings.HasPrefix(pattern, "/ws/vitals/") {
				resource += "/vitals"
			}
		case "admin":
			if u, err := s.Store.UserByID(r.Context(), id); err == nil && u.Role == store.RolePatient {
				patientID = u.ID
			}
			resource = audit.Ref("User", id)
		case "patients":
			if u, err := s.Store.UserByID(r.Context(), id); err == nil && u.Role == store.RolePatient {
				patientID = u.ID
			}
			resource = audit.Ref("Patient", id)
		}
	}
	s.auditDenied(r, c, action, patientID, resource)
}
