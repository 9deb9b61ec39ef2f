package web

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// The kinds of caller the matrix tries on every route.
const (
	anonymous      = "anonymous"
	patient        = "patient"         // the visit's patient, by its join-link session
	otherPatient   = "other patient"   // another patient, by their own visit's session
	physician      = "physician"       // the visit's physician
	otherPhysician = "other physician" // a physician with no part in the visit
	scheduler      = "scheduler"
	admin          = "admin"
	device         = "device token" // the visit's patient's home hub
	apiToken       = "API token"    // a scheduler's bearer token
	expiredAPI     = "expired API token"
	expiredSession = "expired session"   // a scheduler's session past its lifetime
	revokedLink    = "revoked join link" // the patient's session from a join link since revoked
	revokedAPI     = "revoked API token"
	guest          = "guest"         // an interpreter invited to the visit by a live guest link
	revokedGuest   = "revoked guest" // a guest whose link was withdrawn
)

var callers = []string{anonymous, patient, otherPatient, physician, otherPhysician, scheduler, admin, device, apiToken,
	expiredAPI, expiredSession, revokedLink, revokedAPI, guest, revokedGuest}

// allowed lists, for each route, the callers it lets through; every other
// caller must be refused. "*" means everyone (a public route).
var allowed = map[string][]string{
	"GET /static/":                   {"*"},
	"GET /healthz":                   {"*"},
	"GET /metrics":                   {"*"}, // from loopback without a token: see TestMetricsAccess
	"GET /readyz":                    {"*"},
	"GET /login":                     {"*"},
	"POST /login":                    {"*"}, // answers every caller alike: the form is the credential
	"GET /join/{token}":              {"*"}, // the token is the credential: see TestJoinLinkStates
	"GET /guest/{token}":             {"*"}, // likewise: see TestGuestLinkStates
	"GET /guest/call":                {guest},
	"GET /guest/ws":                  {guest},
	"GET /guest/ws/vitals":           {}, // a physician guest only: see TestGuestPhysicianSeesVitals
	"GET /guest/connectivity-check":  {guest},
	"POST /guest/connectivity-check": {guest},
	"GET /ws/device":                 {patient, otherPatient, device}, // each for their own record
	"/fhir/":                         {apiToken},
	"GET /{$}":                       {patient, otherPatient, physician, otherPhysician, scheduler, admin},
	"GET /connectivity-check":        {patient, otherPatient, physician, otherPhysician, scheduler, admin},
	"POST /connectivity-check":       {patient, otherPatient, physician, otherPhysician, scheduler, admin},
	"POST /logout":                   {patient, otherPatient, physician, otherPhysician, scheduler, admin},
	"POST /logout/everywhere":        {physician, otherPhysician, scheduler, admin},

	"GET /schedule":                                 {scheduler, admin},
	"GET /schedule/day":                             {scheduler, admin},
	"POST /appointments":                            {scheduler, admin},
	"GET /appointments/{id}":                        {scheduler, admin},
	"POST /appointments/{id}/link":                  {scheduler, admin},
	"POST /appointments/{id}/guests":                {scheduler, admin}, // an empty form: 400, nothing issued
	"POST /appointments/{id}/guests/{guest}/revoke": {scheduler, admin}, // {guest} is a bystander's link
	"GET /appointments/{id}/reschedule":             {scheduler, admin},
	"POST /appointments/{id}/reschedule":            {scheduler, admin},
	"POST /appointments/{id}/cancel":                {scheduler, admin},
	"POST /appointments/{id}/status":                {scheduler, admin},
	"GET /patients":                                 {scheduler, admin},
	"GET /patients/new":                             {scheduler, admin},
	"POST /patients":                                {scheduler, admin},
	"GET /patients/{id}":                            {scheduler, admin},
	"GET /outbox":                                   {scheduler, admin},
	"GET /outbox/{id}":                              {scheduler, admin},

	"GET /physicians/{id}/availability":  {scheduler, admin, physician}, // {id} is the visit's physician
	"POST /physicians/{id}/availability": {scheduler, admin, physician},

	"GET /login/code":        {"*"}, // the pending sign-in's cookie is the credential: see TestTOTPSignIn
	"POST /login/code":       {"*"},
	"GET /account/totp":      {physician, otherPhysician, scheduler, admin},
	"POST /account/totp":     {physician, otherPhysician, scheduler, admin},
	"POST /account/totp/off": {physician, otherPhysician, scheduler, admin},
	"GET /audit":             {admin},

	"GET /account/password/{token}":  {"*"}, // the link is the credential: see TestPasswordLinkSetsPasswordOnce
	"POST /account/password/{token}": {"*"},

	"GET /admin/users":                                 {admin},
	"GET /admin/users/new":                             {admin},
	"POST /admin/users":                                {admin},
	"GET /admin/users/{id}":                            {admin}, // {id} is a bystander's account
	"POST /admin/users/{id}/deactivate":                {admin},
	"POST /admin/users/{id}/reactivate":                {admin},
	"POST /admin/users/{id}/reset-2fa":                 {admin},
	"POST /admin/users/{id}/password-link":             {admin},
	"POST /admin/users/{id}/tokens":                    {admin},
	"POST /admin/users/{id}/devices":                   {admin},
	"POST /admin/users/{id}/credentials/{cred}/revoke": {admin},
	"POST /admin/users/{id}/browser-vitals":            {admin},

	"GET /today":                               {physician, otherPhysician},
	"GET /consult/{id}":                        {physician},
	"GET /ws/vitals/{id}":                      {physician},
	"GET /ws/vitals":                           {physician, otherPhysician}, // each subscription is checked: see TestMultiVisitViewerAuthorization
	"POST /consult/{id}/guests":                {physician},
	"POST /consult/{id}/guests/{guest}/revoke": {physician},
	"POST /consult/{id}/news2":                 {physician},
	"POST /consult/{id}/thresholds":            {physician},
	"POST /consult/{id}/alerts/{alert}/ack":    {physician},
	"GET /visit/{id}":                          {patient, physician},
	"GET /ws/call/{id}":                        {patient, physician},

	"GET /visits/{id}/record":      {physician},
	"POST /visits/{id}/notes":      {physician}, // the fixture's visit is not held: 409, and nothing saved
	"POST /visits/{id}/complete":   {physician}, // tried last (endsVisit): it ends the visit
	"GET /visits/{id}/record/fhir": {physician}, // not held: the FHIR 404
	"GET /patients/{id}/chart":     {physician}, // a patient the physician has a visit with

	// Bearer routes: each person presents an API token of their own (see
	// asBearer); only the visit's physician and patient get through.
	"POST /whip/{id}":             {patient, physician},
	"DELETE /whip/{id}/{session}": {patient, physician}, // then 404: no such session
	"POST /whep/{id}":             {physician},          // a patient only while admitted to the call: TestWHEPViewerIsAnnouncedToTheCall
	"DELETE /whep/{id}/{session}": {patient, physician},
}

// bearerRoutes take an API bearer token, not a session cookie.
var bearerRoutes = []string{"POST /whip/{id}", "DELETE /whip/{id}/{session}", "POST /whep/{id}", "DELETE /whep/{id}/{session}"}

// asBearer makes req come from the given kind of caller on a route that
// takes API tokens: a person presents a live API token of their own; the
// other kinds of caller present what they have, as in as.
func (m *matrix) asBearer(t *testing.T, req *http.Request, who string) {
	t.Helper()
	id := m.userOf(who)
	if id == 0 {
		m.as(t, req, who)
		return
	}
	req.Header.Set("Authorization", "Bearer "+m.apiTokenOf(t, id))
}

// apiTokenOf stores a live API token for a user and returns it.
func (m *matrix) apiTokenOf(t *testing.T, userID int64) string {
	t.Helper()
	tok, hash := auth.NewToken()
	if _, err := m.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: userID,
		ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// matrix is the fixture's server with one more visit (the other patient's,
// with the other physician), an admin, and a way to make each caller.
type matrix struct {
	*fixture
	otherVisit     scheduling.Appointment
	join           string // a live join link of the visit
	apiTok         string
	expiredTok     string
	revokedTok     string
	revokedSes     string // the cookie a revoked join link had opened
	adminID        int64
	schedID        int64
	bystander      store.User // an account the admin routes act on, so that acting changes no caller
	guestTok       string     // a live guest link of the visit, for GET /guest/{token}
	guestLink      int64      // a bystander guest link of the visit, which the revoke routes act on
	revokedGst     string     // the token of a revoked guest link of the visit
	revokedGuestID int64      // its id
	auditSeen      int64      // the last audit event newAuditEvents returned
}

func newMatrix(t *testing.T) *matrix {
	f := newFixtureWith(t, func(d *Deps) { d.Audit = &audit.Recorder{Store: d.Store, Log: d.Log} })
	ctx := t.Context()
	m := &matrix{fixture: f}
	start := f.visit.End.Add(time.Hour)
	var err error
	m.otherVisit, err = f.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: f.doc2.ID, PatientID: f.other.ID,
		Start: start, End: start.Add(30 * time.Minute)}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.st.CreateUser(ctx, store.User{Email: "admin@example.org", Name: "Admin", Role: store.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	m.adminID = a.ID
	if m.bystander, err = f.st.CreateUser(ctx, store.User{Email: "bystander@example.org", Name: "Bystander", Role: store.RolePatient}); err != nil {
		t.Fatal(err)
	}
	sched, err := f.st.UserByEmail(ctx, "sched@example.org")
	if err != nil {
		t.Fatal(err)
	}
	m.schedID = sched.ID
	tok, hash := auth.NewToken()
	if _, err := f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: sched.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	m.apiTok = tok
	tok, hash = auth.NewToken()
	if _, err := f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: sched.ID, ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	m.expiredTok = tok
	tok, hash = auth.NewToken()
	if _, err := f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialJoin, TokenHash: hash, UserID: f.pat.ID, AppointmentID: f.visit.ID, ExpiresAt: f.visit.End.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	m.join = tok

	tok, hash = auth.NewToken()
	revoked, err := f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: sched.ID, ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.RevokeCredential(ctx, revoked.ID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	m.revokedTok = tok

	// A join link opened in the browser, then revoked (a new link sent):
	// the session it gave must end with it.
	tok, hash = auth.NewToken()
	link, err := f.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialJoin, TokenHash: hash, UserID: f.pat.ID, AppointmentID: f.visit.ID, ExpiresAt: f.visit.End.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(f.srv.URL + "/join/" + tok)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			m.revokedSes = c.Value
		}
	}
	if m.revokedSes == "" {
		t.Fatalf("opening a live join link gave %d and no session cookie", resp.StatusCode)
	}
	if err := f.st.RevokeCredential(ctx, link.ID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	m.guestTok, _ = m.guestLinkOf(t, "Path Guest")
	_, m.guestLink = m.guestLinkOf(t, "Bystander Guest")
	m.revokedGst, m.revokedGuestID = m.guestLinkOf(t, "Withdrawn Guest")
	if err := f.st.RevokeGuestLink(ctx, m.revokedGuestID, time.Now()); err != nil {
		t.Fatal(err)
	}
	return m
}

// guestLinkOf stores a live interpreter's guest link to the visit and
// returns its token and id.
func (m *matrix) guestLinkOf(t *testing.T, name string) (string, int64) {
	t.Helper()
	tok, hash := auth.NewToken()
	l, err := m.st.CreateGuestLink(t.Context(), store.GuestLink{AppointmentID: m.visit.ID, TokenHash: hash, Role: store.GuestInterpreter,
		Name: name, IssuedBy: m.doc.ID, CreatedAt: time.Now(), ExpiresAt: m.visit.End.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok, l.ID
}

// session stores a fresh session for a user (bound to a visit for
// patients) and returns its cookie value.
func (m *matrix) session(t *testing.T, userID, visit int64, expires time.Time) string {
	t.Helper()
	tok, hash := auth.NewToken()
	if err := m.st.CreateSession(t.Context(), store.Session{TokenHash: hash, UserID: userID, AppointmentID: visit,
		CreatedAt: time.Now(), ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// as makes req come from the given kind of caller.
func (m *matrix) as(t *testing.T, req *http.Request, who string) {
	t.Helper()
	later := time.Now().Add(time.Hour)
	cookie := func(v string) { req.AddCookie(&http.Cookie{Name: sessionCookie, Value: v}) }
	switch who {
	case anonymous:
	case patient:
		cookie(m.session(t, m.pat.ID, m.visit.ID, later))
	case otherPatient:
		cookie(m.session(t, m.other.ID, m.otherVisit.ID, later))
	case physician:
		cookie(m.session(t, m.doc.ID, 0, later))
	case otherPhysician:
		cookie(m.session(t, m.doc2.ID, 0, later))
	case scheduler:
		cookie(m.session(t, m.schedID, 0, later))
	case admin:
		cookie(m.session(t, m.adminID, 0, later))
	case device:
		req.Header.Set("Authorization", "Bearer "+m.devToken)
	case apiToken:
		req.Header.Set("Authorization", "Bearer "+m.apiTok)
	case expiredAPI:
		req.Header.Set("Authorization", "Bearer "+m.expiredTok)
	case expiredSession:
		cookie(m.session(t, m.schedID, 0, time.Now().Add(-time.Second)))
	case revokedLink:
		cookie(m.revokedSes)
	case revokedAPI:
		req.Header.Set("Authorization", "Bearer "+m.revokedTok)
	case guest:
		tok, _ := m.guestLinkOf(t, "Matrix Guest")
		req.AddCookie(&http.Cookie{Name: guestCookie, Value: tok})
	case revokedGuest:
		req.AddCookie(&http.Cookie{Name: guestCookie, Value: m.revokedGst})
	default:
		t.Fatalf("unknown caller %q", who)
	}
}

// path is a concrete URL for a pattern, aimed at the fixture's visit.
func (m *matrix) path(pattern string) (method, path string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", pattern
	}
	r := strings.NewReplacer(
		"{$}", "",
		"/guest/{token}", "/guest/"+m.guestTok,
		"{token}", m.join,
		"{guest}", fmt.Sprint(m.guestLink),
		"/static/", "/static/app.css",
		"/fhir/", "/fhir/Appointment",
		"/patients/{id}", fmt.Sprintf("/patients/%d", m.pat.ID),
		"/physicians/{id}", fmt.Sprintf("/physicians/%d", m.doc.ID),
		"/outbox/{id}", "/outbox/1",
		"/admin/users/{id}", fmt.Sprintf("/admin/users/%d", m.bystander.ID),
		"{cred}", "1",
		"{alert}", "news2-band@1",
		"{session}", "00000000000000000000000000000001",
		"{id}", fmt.Sprint(m.visit.ID),
	)
	return method, r.Replace(path)
}

// endsVisit holds the routes that, let through, end the fixture's visit.
var endsVisit = map[string]bool{"POST /visits/{id}/complete": true}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// refused reports whether a response turns the caller away: 401, 403, or,
// for a page (GET), a redirect to sign in. (Signing out also ends at the
// sign-in page: a POST answered so succeeded.)
func refused(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden ||
		(resp.Request.Method == http.MethodGet && resp.StatusCode == http.StatusSeeOther &&
			strings.HasPrefix(resp.Header.Get("Location"), "/login"))
}

// TestAuthorizationMatrix tries every route of the route table as every
// kind of caller. A route missing from the allowed table fails the test:
// whoever adds a route decides who may use it.
func TestAuthorizationMatrix(t *testing.T) {
	m := newMatrix(t)
	s := server{Deps: Deps{Store: m.st, Log: slog.New(slog.DiscardHandler)}}
	var patterns []string
	for _, rt := range s.routeTable() {
		patterns = append(patterns, rt.pattern)
	}
	sort.Strings(patterns)
	// Every route is tried against the one visit, in this order, so a
	// route that ends the visit goes last: what comes after it would
	// otherwise be tried against a visit that is over.
	slices.SortStableFunc(patterns, func(a, b string) int {
		return cmp.Compare(b2i(endsVisit[a]), b2i(endsVisit[b]))
	})
	for _, p := range patterns {
		if _, ok := allowed[p]; !ok {
			t.Errorf("route %q is not in the authorization matrix: decide who may use it", p)
		}
	}
	for p := range allowed {
		if !containsString(patterns, p) {
			t.Errorf("the matrix lists %q, which is no longer a route", p)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range patterns {
		method, path := m.path(p)
		for _, who := range callers {
			want := containsString(allowed[p], "*") || containsString(allowed[p], who)
			req, err := http.NewRequest(method, m.srv.URL+path, strings.NewReader(url.Values{}.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			if method == http.MethodPost {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if containsString(bearerRoutes, p) {
				m.asBearer(t, req, who)
			} else {
				m.as(t, req, who)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			events := m.newAuditEvents(t)
			switch {
			case resp.StatusCode >= 500:
				t.Errorf("%s %s as %s: %d", method, path, who, resp.StatusCode)
			case want && refused(resp) && !containsString(allowed[p], "*"):
				t.Errorf("%s as %s: refused (%d %s), want let through", p, who, resp.StatusCode, resp.Header.Get("Location"))
			case !want && !refused(resp):
				t.Errorf("%s as %s: let through (%d), want refused", p, who, resp.StatusCode)
			case !want && resp.StatusCode == http.StatusForbidden && m.userOf(who) != 0:
				// A signed-in person turned away is on the record.
				if !slices.ContainsFunc(events, func(e store.AuditEvent) bool {
					return e.Outcome == audit.OutcomeDenied && e.ActorID == m.userOf(who)
				}) {
					t.Errorf("%s as %s: refused without an audit event (got %+v)", p, who, events)
				}
			}
		}
	}
}

// guestRoleAllowed lists, for the routes that issue guest links, who may
// issue a link of each guest role: a second physician's link carries the
// patient's live vitals, so only the visit's physician issues one.
var guestRoleAllowed = map[string]map[string][]string{
	"POST /appointments/{id}/guests": {
		store.GuestInterpreter: {scheduler, admin},
		store.GuestFamily:      {scheduler, admin},
		store.GuestPhysician:   {},
	},
	"POST /consult/{id}/guests": {
		store.GuestInterpreter: {physician},
		store.GuestFamily:      {physician},
		store.GuestPhysician:   {physician},
	},
}

// TestAuthorizationGuestRoles issues a guest link of each role as every
// kind of caller; a refusal stores nothing and is audited.
func TestAuthorizationGuestRoles(t *testing.T) {
	m := newMatrix(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for p, roles := range guestRoleAllowed {
		method, path := m.path(p)
		for role, allowed := range roles {
			for _, who := range callers {
				want := containsString(allowed, who)
				name := "Role " + role
				all := func() []store.GuestLink {
					all, err := m.st.GuestLinks(t.Context(), m.visit.ID)
					if err != nil {
						t.Fatal(err)
					}
					return all
				}
				before := len(all())
				form := url.Values{"role": {role}, "name": {name}}
				req, err := http.NewRequest(method, m.srv.URL+path, strings.NewReader(form.Encode()))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				m.as(t, req, who)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				added := all()[before:]
				issued := slices.ContainsFunc(added, func(l store.GuestLink) bool { return l.Name == name })
				switch {
				case want && (resp.StatusCode != http.StatusOK || !issued):
					t.Errorf("%s role=%s as %s: %d, issued %v, want 200 and a link", p, role, who, resp.StatusCode, issued)
				case !want && (!refused(resp) || issued):
					t.Errorf("%s role=%s as %s: %d, issued %v, want refused and none", p, role, who, resp.StatusCode, issued)
				case !want && resp.StatusCode == http.StatusForbidden && m.userOf(who) != 0:
					if !slices.ContainsFunc(m.newAuditEvents(t), func(e store.AuditEvent) bool {
						return e.Outcome == audit.OutcomeDenied && e.ActorID == m.userOf(who)
					}) {
						t.Errorf("%s role=%s as %s: refused without an audit event", p, role, who)
					}
				}
				// Withdraw what this request (or its caller) added: the
				// visit's live links stay under the cap.
				for _, l := range added {
					if err := m.st.RevokeGuestLink(t.Context(), l.ID, time.Now()); err != nil {
						t.Fatal(err)
					}
				}
				m.newAuditEvents(t)
			}
		}
	}
}

// userOf is the user id of a kind of caller that is a signed-in person,
// or 0.
func (m *matrix) userOf(who string) int64 {
	switch who {
	case patient:
		return m.pat.ID
	case otherPatient:
		return m.other.ID
	case physician:
		return m.doc.ID
	case otherPhysician:
		return m.doc2.ID
	case scheduler:
		return m.schedID
	case admin:
		return m.adminID
	}
	return 0
}

// newAuditEvents returns the audit events recorded since the last call.
func (m *matrix) newAuditEvents(t *testing.T) []store.AuditEvent {
	t.Helper()
	events, _, err := m.st.AuditEvents(t.Context(), store.AuditQuery{AfterSeq: m.auditSeen, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) > 0 {
		m.auditSeen = events[len(events)-1].Seq
	}
	return events
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestJoinLinkStates: the join route's credential is its token, and only a
// live one opens its visit.
func TestJoinLinkStates(t *testing.T) {
	m := newMatrix(t)
	ctx := t.Context()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	mk := func(expires, revoked time.Time) string {
		tok, hash := auth.NewToken()
		if _, err := m.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialJoin, TokenHash: hash, UserID: m.pat.ID,
			AppointmentID: m.visit.ID, ExpiresAt: expires, RevokedAt: revoked}); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, c := range []struct {
		name  string
		token string
		want  int
	}{
		{"live", m.join, http.StatusSeeOther},
		{"expired", mk(time.Now().Add(-time.Minute), time.Time{}), http.StatusGone},
		{"revoked", mk(time.Now().Add(time.Hour), time.Now().Add(-time.Minute)), http.StatusGone},
		{"unknown", "not-a-token", http.StatusNotFound},
		{"an API token", m.apiTok, http.StatusNotFound},
		{"a device token", m.devToken, http.StatusNotFound},
	} {
		resp, err := client.Get(m.srv.URL + "/join/" + c.token)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s join link: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if c.want != http.StatusSeeOther && len(resp.Cookies()) > 0 {
			t.Errorf("%s join link set a cookie", c.name)
		}
	}
}

// TestJoinLinkOpensAroundItsVisit: a link for a visit more than a day
// away does not open yet, and sets no session.
func TestJoinLinkOpensAroundItsVisit(t *testing.T) {
	m := newMatrix(t)
	ctx := t.Context()
	start := time.Now().Add(72 * time.Hour).Truncate(time.Minute)
	later, err := m.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: m.doc.ID, PatientID: m.pat.ID, Start: start, End: start.Add(30 * time.Minute)}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	tok, hash := auth.NewToken()
	if _, err := m.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialJoin, TokenHash: hash, UserID: m.pat.ID,
		AppointmentID: later.ID, ExpiresAt: later.End.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(m.srv.URL + "/join/" + tok)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("a link three days early: %d with %d cookies, want 403 and none", resp.StatusCode, len(resp.Cookies()))
	}
}

// TestRefusalsNameThePatient: a refusal by role is recorded against the
// patient whose record the URL names, so the trail answers "who tried to
// open this patient's records", and a made-up identifier writes nothing
// of its own into the trail.
func TestRefusalsNameThePatient(t *testing.T) {
	m := newMatrix(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		who, method, path string
		patient           int64
		resource          string
	}{
		{otherPatient, "GET", fmt.Sprintf("/appointments/%d", m.visit.ID), m.pat.ID, fmt.Sprintf("Appointment/%d", m.visit.ID)},
		{scheduler, "GET", fmt.Sprintf("/ws/vitals/%d", m.visit.ID), m.pat.ID, fmt.Sprintf("Appointment/%d/vitals", m.visit.ID)},
		{scheduler, "GET", fmt.Sprintf("/consult/%d", m.visit.ID), m.pat.ID, fmt.Sprintf("Appointment/%d", m.visit.ID)},
		{patient, "GET", fmt.Sprintf("/patients/%d", m.other.ID), m.other.ID, fmt.Sprintf("Patient/%d", m.other.ID)},
		{patient, "POST", fmt.Sprintf("/appointments/%d/cancel", m.otherVisit.ID), m.other.ID, fmt.Sprintf("Appointment/%d", m.otherVisit.ID)},
		{patient, "GET", "/appointments/12abc%3Cscript%3E", 0, "appointments/unknown"},
		{physician, "GET", "/audit", 0, "audit"},
		{scheduler, "POST", fmt.Sprintf("/admin/users/%d/deactivate", m.bystander.ID), m.bystander.ID, fmt.Sprintf("User/%d", m.bystander.ID)},
		{physician, "POST", fmt.Sprintf("/admin/users/%d/credentials/7/revoke", m.bystander.ID), m.bystander.ID, fmt.Sprintf("User/%d", m.bystander.ID)},
	} {
		m.newAuditEvents(t)
		req, err := http.NewRequest(c.method, m.srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.as(t, req, c.who)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s as %s: %d, want 403", c.method, c.path, c.who, resp.StatusCode)
			continue
		}
		wantAction := audit.ActionRead
		if c.method == "POST" {
			wantAction = audit.ActionUpdate
		}
		events := m.newAuditEvents(t)
		if len(events) != 1 || events[0].Outcome != audit.OutcomeDenied || events[0].ActorID != m.userOf(c.who) ||
			events[0].PatientID != c.patient || events[0].Resource != c.resource || events[0].Action != wantAction {
			t.Errorf("%s %s as %s recorded %+v; want one denied %s of %s for patient %d", c.method, c.path, c.who, events, wantAction, c.resource, c.patient)
		}
	}
}
