package web

import (
	"context"
	"io/fs"
	"net/http"

	"github.com/bedside-health/bedside/fhir"
	"github.com/bedside-health/bedside/scheduling"

	"github.com/bedside-health/bedside/static"
	"github.com/bedside-health/bedside/store"
)

// routes lists every URL the server answers. Each handler states who may use
// it: public, signed-in staff of given roles, or a participant of the visit
// (checked inside the handler against the appointment).
func (s *server) routes(mux *http.ServeMux) {
	staticFS, _ := fs.Sub(static.Files, ".")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(staticFS))))

	// Public.
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.HandleFunc("GET /login", s.handleLoginPage)
	mux.HandleFunc("POST /login", s.handleLogin)
	mux.HandleFunc("GET /join/{token}", s.handleJoinLink)
	mux.HandleFunc("GET /ws/device", s.handleDeviceWS) // device token or patient's visit session

	// FHIR R4, Bearer-authenticated; the fhir package decides per resource
	// who may see and change what.
	var changed func(ctx context.Context, a scheduling.Appointment) error
	if s.Notifier != nil {
		changed = s.Notifier.Changed
	}
	mux.Handle("/fhir/", http.StripPrefix("/fhir", fhir.NewHandler(fhir.Deps{
		Store: s.Store, Log: s.Log.With("component", "fhir"), Now: s.Now, BaseURL: s.PublicURL, Changed: changed,
	})))

	// Any session.
	mux.Handle("GET /{$}", s.signedIn(s.handleHome))
	mux.Handle("POST /logout", s.signedIn(s.handleLogout))

	// Schedulers (and admins).
	sched := func(h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
		return s.staff(h, store.RoleScheduler, store.RoleAdmin)
	}
	mux.Handle("GET /schedule", sched(s.handleSchedule))
	mux.Handle("GET /schedule/day", sched(s.handleDay))
	mux.Handle("POST /appointments", sched(s.handleBook))
	mux.Handle("GET /appointments/{id}", sched(s.handleAppointment))
	mux.Handle("POST /appointments/{id}/link", sched(s.handleNewJoinLink))
	mux.Handle("GET /appointments/{id}/reschedule", sched(s.handleRescheduleForm))
	mux.Handle("POST /appointments/{id}/reschedule", sched(s.handleReschedule))
	mux.Handle("POST /appointments/{id}/cancel", sched(s.handleCancel))
	mux.Handle("POST /appointments/{id}/status", sched(s.handleStatus))
	mux.Handle("GET /patients", sched(s.handlePatients))
	mux.Handle("GET /patients/new", sched(s.handleNewPatient))
	mux.Handle("POST /patients", sched(s.handleCreatePatient))
	mux.Handle("GET /patients/{id}", sched(s.handlePatient))
	mux.Handle("GET /outbox", sched(s.handleOutbox))
	mux.Handle("GET /outbox/{id}", sched(s.handleOutboxMessage))

	// Schedulers, admins, and each physician for their own hours.
	mux.Handle("GET /physicians/{id}/availability", s.staff(s.handleAvailability, store.RoleScheduler, store.RoleAdmin, store.RolePhysician))
	mux.Handle("POST /physicians/{id}/availability", s.staff(s.handleSetAvailability, store.RoleScheduler, store.RoleAdmin, store.RolePhysician))

	// Physicians; each handler also checks the appointment is theirs.
	mux.Handle("GET /today", s.staff(s.handleToday, store.RolePhysician))
	mux.Handle("GET /consult/{id}", s.staff(s.handleConsult, store.RolePhysician))
	mux.Handle("GET /ws/vitals/{id}", s.staff(s.handleVitalsWS, store.RolePhysician))

	// Visit participants: the patient's join-link session or the physician.
	mux.Handle("GET /visit/{id}", s.signedIn(s.handleVisit))
	mux.Handle("GET /ws/call/{id}", s.signedIn(s.handleCallWS))
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
