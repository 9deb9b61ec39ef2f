package web

import (
	"context"
	"io/fs"
	"net/http"

	"github.com/bedside-health/bedside/fhir"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"

	"github.com/bedside-health/bedside/static"
	"github.com/bedside-health/bedside/store"
)

// route is one URL pattern and its handler, wrapped in the check of who
// may use it.
type route struct {
	pattern string
	handler http.Handler
}

// routes registers every route of routeTable.
func (s *server) routes(mux *http.ServeMux) {
	for _, rt := range s.routeTable() {
		mux.Handle(rt.pattern, rt.handler)
	}
}

// routeTable lists every URL the server answers. Each handler states who
// may use it: public, any session, signed-in staff of given roles, or a
// participant of the visit (checked inside the handler against the
// appointment); FHIR decides per resource. The authorization matrix test
// (TestAuthorizationMatrix) holds an expected outcome for every pattern
// here and every kind of caller, and fails for a route it does not know.
func (s *server) routeTable() []route {
	staticFS, _ := fs.Sub(static.Files, ".")
	var changed func(ctx context.Context, a scheduling.Appointment) error
	if s.Notifier != nil {
		changed = s.Notifier.Changed
	}
	sched := func(h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
		return s.staff(h, store.RoleScheduler, store.RoleAdmin)
	}
	hours := func(h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
		return s.staff(h, store.RoleScheduler, store.RoleAdmin, store.RolePhysician) // a physician: own hours only
	}
	admin := func(h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
		return s.staff(h, store.RoleAdmin)
	}
	physician := func(h func(http.ResponseWriter, *http.Request, caller)) http.Handler {
		return s.staff(h, store.RolePhysician) // and the handler checks the visit is theirs
	}
	fhirDeps := fhir.Deps{
		Store: s.Store, Log: s.Log.With("component", "fhir"), Now: s.Now, BaseURL: s.PublicURL, Changed: changed, Audit: s.Audit,
		Live: s.Live, NEWS2: s.NEWS2, Refusals: s.refusals,
	}
	return []route{
		// Public.
		{"GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(staticFS)))},
		{"GET /healthz", http.HandlerFunc(s.handleHealthz)},
		{"GET /readyz", http.HandlerFunc(s.handleReadyz)},
		{"GET /metrics", http.HandlerFunc(s.handleMetrics)}, // counts only; a token, or loopback callers
		{"GET /login", http.HandlerFunc(s.handleLoginPage)},
		{"POST /login", http.HandlerFunc(s.handleLogin)},
		{"GET /login/code", http.HandlerFunc(s.handleLoginCodePage)}, // the pending sign-in's cookie is the credential
		{"POST /login/code", http.HandlerFunc(s.handleLoginCode)},
		{"GET /join/{token}", http.HandlerFunc(s.handleJoinLink)},
		// A guest link is its own credential; the guest's pages take it
		// from a cookie sent to /guest/ only (guest.go).
		{"GET /guest/{token}", http.HandlerFunc(s.handleGuestLink)},
		{"GET /guest/call", http.HandlerFunc(s.handleGuestCall)},
		{"GET /guest/ws", s.pinned("guest-call", pinClaim, s.guestCallVisit, http.HandlerFunc(s.handleGuestWS))},
		{"GET /guest/ws/vitals", s.pinned("guest-vitals", pinFollow, s.guestCallVisit, http.HandlerFunc(s.handleGuestVitalsWS))}, // a guest physician only
		{"GET /guest/connectivity-check", s.guestAPI(s.handleCheckServers)},
		{"POST /guest/connectivity-check", s.guestAPI(s.handleCheck)},
		// A one-time password link is its own credential (account package).
		{"GET /account/password/{token}", http.HandlerFunc(s.handlePasswordLinkPage)},
		{"POST /account/password/{token}", http.HandlerFunc(s.handlePasswordLink)},
		{"GET /ws/device", http.HandlerFunc(s.handleDeviceWS)}, // a device token or a patient's visit session

		// FHIR R4, Bearer-authenticated; the fhir package decides per
		// resource who may see and change what.
		{"/fhir/", http.StripPrefix("/fhir", fhir.NewHandler(fhirDeps))},

		// Any session.
		{"GET /{$}", s.signedIn(s.handleHome)},
		// The pre-call connectivity check: a short test connection to the
		// SFU, no media, no patient data; rate-limited per person.
		{"GET /connectivity-check", s.signedInAPI(s.handleCheckServers)},
		{"POST /connectivity-check", s.signedInAPI(s.handleCheck)},
		{"POST /logout", s.signedIn(s.handleLogout)},
		{"POST /logout/everywhere", s.staff(s.handleLogoutEverywhere, store.RoleScheduler, store.RolePhysician, store.RoleAdmin)},

		// Schedulers (and admins).
		{"GET /schedule", sched(s.handleSchedule)},
		{"GET /schedule/day", sched(s.handleDay)},
		{"POST /appointments", sched(s.handleBook)},
		{"GET /appointments/{id}", sched(s.handleAppointment)},
		{"POST /appointments/{id}/link", sched(s.handleNewJoinLink)},
		{"POST /appointments/{id}/guests", sched(s.handleIssueGuest(false))},
		{"POST /appointments/{id}/guests/{guest}/revoke", s.pinned("guest-revoke", pinFollow, pathVisit, sched(s.handleRevokeGuest(false)))},
		{"GET /appointments/{id}/reschedule", sched(s.handleRescheduleForm)},
		{"POST /appointments/{id}/reschedule", sched(s.handleReschedule)},
		{"POST /appointments/{id}/cancel", sched(s.handleCancel)},
		{"POST /appointments/{id}/status", sched(s.handleStatus)},
		{"GET /patients", sched(s.handlePatients)},
		{"GET /patients/new", sched(s.handleNewPatient)},
		{"POST /patients", sched(s.handleCreatePatient)},
		{"GET /patients/{id}", sched(s.handlePatient)},
		{"GET /outbox", sched(s.handleOutbox)},
		{"GET /outbox/{id}", sched(s.handleOutboxMessage)},

		// Schedulers, admins, and each physician for their own hours.
		{"GET /physicians/{id}/availability", hours(s.handleAvailability)},
		{"POST /physicians/{id}/availability", hours(s.handleSetAvailability)},

		// Physicians; each handler also checks the appointment is theirs.
		{"GET /today", physician(s.handleToday)},
		{"GET /consult/{id}", physician(s.handleConsult)},
		{"GET /ws/vitals/{id}", physician(s.handleVitalsWS)},
		{"GET /ws/vitals", physician(s.handleVitalsMultiWS)}, // each visit subscribed to is checked and audited
		{"POST /consult/{id}/guests", physician(s.handleIssueGuest(true))},
		{"POST /consult/{id}/guests/{guest}/revoke", s.pinned("guest-revoke", pinFollow, pathVisit, physician(s.handleRevokeGuest(true)))},
		{"POST /consult/{id}/news2", physician(s.handleNEWS2Input)},
		{"POST /consult/{id}/thresholds", physician(s.handleThresholds)},
		{"POST /consult/{id}/alerts/{alert}/ack", physician(s.handleAcknowledge)},
		{"GET /visits/{id}/record", physician(s.handleVisitRecord)},
		{"POST /visits/{id}/notes", physician(s.handleSaveNote)},
		{"POST /visits/{id}/complete", physician(s.handleCompleteVisit)},
		{"GET /visits/{id}/record/fhir", physician(s.handleRecordExport(fhir.VisitExport(fhirDeps)))},
		{"GET /patients/{id}/chart", physician(s.handleChart)}, // a patient the physician has a visit with

		// Staff: their own two-step sign-in.
		{"GET /account/totp", s.staff(s.handleTOTPPage, store.RoleScheduler, store.RolePhysician, store.RoleAdmin)},
		{"POST /account/totp", s.staff(s.handleTOTPEnrol, store.RoleScheduler, store.RolePhysician, store.RoleAdmin)},
		{"POST /account/totp/off", s.staff(s.handleTOTPOff, store.RoleScheduler, store.RolePhysician, store.RoleAdmin)},

		// Admins: the audit trail, accounts and their credentials.
		{"GET /audit", admin(s.handleAudit)},
		{"GET /admin/users", admin(s.handleAdminUsers)},
		{"GET /admin/users/new", admin(s.handleAdminNewUser)},
		{"POST /admin/users", admin(s.handleAdminCreateUser)},
		{"GET /admin/users/{id}", admin(s.handleAdminUser)},
		{"POST /admin/users/{id}/deactivate", admin(s.adminAction(s.adminDeactivate))},
		{"POST /admin/users/{id}/reactivate", admin(s.adminAction(s.adminReactivate))},
		{"POST /admin/users/{id}/reset-2fa", admin(s.adminAction(s.adminResetSecondFactor))},
		{"POST /admin/users/{id}/password-link", admin(s.adminAction(s.adminPasswordLink))},
		{"POST /admin/users/{id}/tokens", admin(s.adminAction(s.adminIssueToken))},
		{"POST /admin/users/{id}/devices", admin(s.adminAction(s.adminAddDevice))},
		{"POST /admin/users/{id}/credentials/{cred}/revoke", admin(s.adminAction(s.adminRevoke))},
		{"POST /admin/users/{id}/browser-vitals", admin(s.adminAction(s.adminAllowBrowser))},

		// Visit participants: the patient's join-link session or the physician.
		// The routes of a visit's call (the call and guest sockets, WHIP,
		// WHEP, withdrawing a guest) are served by the node holding the
		// call, wherever they land (pinned, pin.go).
		{"GET /visit/{id}", s.signedIn(s.handleVisit)},
		{"GET /ws/call/{id}", s.pinned("call", pinClaim, s.callVisit, s.signedIn(s.handleCallWS))},

		// WHIP publishers (exam cameras) and WHEP viewers: an API bearer
		// token of the visit's physician or patient; checked and audited
		// in the handler. Sessions are ended by whoever opened them.
		{"POST /whip/{id}", s.pinned("whip", pinClaim, s.streamVisitOf, s.handleOpenStream(signaling.StreamPublish))},
		{"DELETE /whip/{id}/{session}", s.pinned("whip", pinFollow, pathVisit, s.handleCloseStream(signaling.StreamPublish))},
		{"POST /whep/{id}", s.pinned("whep", pinClaim, s.streamVisitOf, s.handleOpenStream(signaling.StreamView))},
		{"DELETE /whep/{id}/{session}", s.pinned("whep", pinFollow, pathVisit, s.handleCloseStream(signaling.StreamView))},
	}
}

func cacheStatic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
