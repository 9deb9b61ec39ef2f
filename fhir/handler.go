package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/audit/refusal"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/vitals"
)

// Store is what the FHIR API needs of the store; store.Store satisfies it.
type Store interface {
	CredentialByHash(ctx context.Context, kind string, hash []byte) (store.Credential, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
	ListUsers(ctx context.Context, role store.Role) ([]store.User, error)
	SearchUsers(ctx context.Context, q store.UserQuery) ([]store.User, int, error)
	Availability(ctx context.Context, physicianID int64) (scheduling.Availability, error)
	AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error)
	AppointmentsBetween(ctx context.Context, physicianID, patientID int64, from, to time.Time) ([]scheduling.Appointment, error)
	SearchAppointments(ctx context.Context, q store.AppointmentQuery) ([]scheduling.Appointment, int, error)
	BookAppointment(ctx context.Context, a scheduling.Appointment, c store.Change) (scheduling.Appointment, error)
	SetAppointmentStatus(ctx context.Context, id int64, status scheduling.Status, c store.Change) (scheduling.Appointment, error)
	AuditEvents(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, int, error)
	AppointmentHistory(ctx context.Context, id int64) ([]store.AppointmentEvent, error)
	CredentialByID(ctx context.Context, kind string, id int64) (store.Credential, error)
	ListCredentials(ctx context.Context, kind string, userID int64) ([]store.Credential, error)
	ObservationByID(ctx context.Context, id int64) (store.Observation, error)
	SearchObservations(ctx context.Context, q store.ObservationQuery) ([]store.Observation, int, error)
	ObservationsBetween(ctx context.Context, patientID int64, from, to time.Time) ([]store.Observation, error)
	AppendObservations(ctx context.Context, deviceID int64, lastSeq int64, obs []store.Observation) error
	NEWS2EntriesSince(ctx context.Context, patientID int64, since time.Time) ([]store.NEWS2Entry, error)
	RelayedDeviceByID(ctx context.Context, id int64) (store.RelayedDevice, error)
	RelayedDevices(ctx context.Context, patientID int64) ([]store.RelayedDevice, error)
}

var _ Store = store.Store(nil)

// Deps are the services the FHIR API needs. Store is required.
type Deps struct {
	Store Store
	Log   *slog.Logger     // discards if nil
	Now   func() time.Time // time.Now if nil
	// BaseURL is the server's public address, e.g. https://clinic.example,
	// under which fullUrl, Location and paging links are written; if empty,
	// the address the request came in on is used.
	BaseURL string
	// Changed is called after a booking or a status change so that the
	// patient is emailed; it may be nil. Its error is logged: the change
	// itself stands.
	Changed func(ctx context.Context, a scheduling.Appointment) error
	// Audit records each read, search, creation and update of Patients and
	// Appointments, and each export of the audit trail; nil records nothing.
	Audit *audit.Recorder
	// Live, if set, receives each posted reading for the patient's live
	// viewers, as a device's readings are; NEWS2, if set, scores it (a
	// physician's value as their entry, if NEWS2 is also an Enterer).
	Live  vitals.Publisher
	NEWS2 vitals.Observer
	// Refusals counts the requests whose bearer token is refused, per
	// client address, writing them to Audit as their first and a count
	// per window, and answers an address refused too often 429 (see
	// package refusal). The web server passes its own, so that API
	// tokens are counted as one across FHIR, WHIP and WHEP; if nil, the
	// API keeps a table of its own with refusal.Default.
	Refusals *refusal.Table
}

// tokenRoute is the route API-token refusals are counted on, the same as
// WHIP's and WHEP's.
const tokenRoute = "api-token"

// contentType is the media type of every response.
const contentType = "application/fhir+json; charset=utf-8"

// maxBody bounds a request body.
const maxBody = 64 << 10

type handler struct {
	Deps
}

// NewHandler returns the FHIR API. It expects paths without the /fhir
// prefix: mount it with http.StripPrefix("/fhir", fhir.NewHandler(deps)).
func NewHandler(d Deps) http.Handler {
	h := newHandler(d)
	mux := http.NewServeMux()
	h.routes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		if p := r.URL.Path; p != "/" && p != path.Clean(p) {
			// The mux would redirect to the clean path with an HTML body.
			h.fail(w, r, newError(http.StatusNotFound, codeNotFound, "%s is not a path of this FHIR API", p))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// newHandler fills in d's defaults.
func newHandler(d Deps) *handler {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	d.BaseURL = strings.TrimRight(d.BaseURL, "/")
	if d.Refusals == nil {
		rec := d.Audit
		d.Refusals = refusal.New(refusal.Default, d.Now, func(e store.AuditEvent) { rec.Record(context.Background(), e) })
	}
	return &handler{Deps: d}
}

// apiFunc is an API handler for an authenticated caller. It writes the
// response and returns nil, or writes nothing and returns the error to
// answer with.
type apiFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// authed authenticates the request, then runs f, answering any error as an
// OperationOutcome.
func (h *handler) authed(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := h.authenticate(r)
		if err == nil {
			err = f(w, r, c)
		}
		if err != nil {
			h.fail(w, r, err)
		}
	})
}

// public runs f without authentication, answering any error as an
// OperationOutcome.
func (h *handler) public(f func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			h.fail(w, r, err)
		}
	})
}

// fail answers err: an *apiError as its OperationOutcome and status, any
// other error as a logged 500 that tells the client nothing of it.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		h.Log.ErrorContext(r.Context(), "fhir request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{status: http.StatusInternalServerError, code: codeException,
			diagnostics: "the server could not complete the request; its log has the details"}
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", refusal.RetryAfter(ae.retryAfter))
	}
	if ae.status == http.StatusUnauthorized {
		challenge := `Bearer realm="bedside"`
		if ae.invalidToken {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	h.write(w, r, ae.status, ae.outcome())
}

// write answers with v as JSON.
func (h *handler) write(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		h.Log.ErrorContext(r.Context(), "encode fhir response", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"the response could not be written"}]}` + "\n")
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// base is the address under which resources are named: BaseURL + "/fhir".
func (h *handler) base(r *http.Request) string {
	if h.BaseURL != "" {
		return h.BaseURL + "/fhir"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir"
}

// changed tells Deps.Changed about a, logging its error.
func (h *handler) changed(ctx context.Context, a scheduling.Appointment) {
	if h.Changed == nil {
		return
	}
	if err := h.Changed(ctx, a); err != nil {
		h.Log.ErrorContext(ctx, "could not queue the patient's email", "appointment", a.ID, "err", err)
	}
}
