package web

import (
	"net/http"

	"github.com/bedside-health/bedside/audit"
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
