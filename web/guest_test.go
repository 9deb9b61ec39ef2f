package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/store"
)

// noRedirect is a client with a cookie jar that does not follow redirects.
func noRedirect() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// guestPost sends a form as c and returns the status and body.
func guestPost(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// guestGet fetches u as c and returns the response status and body.
func guestGet(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var guestLinkRE = regexp.MustCompile(`value="(http://[^"]+/guest/([A-Za-z0-9_-]{43}))"`)

// guestCookieHeader is the cookie header a browser sends to /guest/ws.
func (f *fixture) guestCookieHeader(c *http.Client) http.Header {
	u, _ := url.Parse(f.srv.URL + "/guest/ws")
	h := http.Header{}
	for _, ck := range c.Jar.Cookies(u) {
		h.Add("Cookie", ck.Name+"="+ck.Value)
	}
	return h
}

// TestGuestLinkIssueUseRevoke: the visit's physician issues an
// interpreter's link from the consult page; the link opens the guest's
// call page and nothing else; the guest waits in the waiting room under
// their name and role; withdrawing the link removes them from the call at
// once and shuts the link. Each step is in the audit trail.
func TestGuestLinkIssueUseRevoke(t *testing.T) {
	m := newMatrix(t)
	doc := m.signIn(t, "doc@example.org")
	consult := fmt.Sprintf("%s/consult/%d", m.srv.URL, m.visit.ID)
	m.newAuditEvents(t)

	st, body := guestPost(t, doc, consult+"/guests", url.Values{"role": {"interpreter"}, "name": {"Ines Duarte"}})
	if st != http.StatusOK || !strings.Contains(body, `id="guests"`) || !strings.Contains(body, "Ines Duarte") {
		t.Fatalf("issue: %d %s", st, body)
	}
	found := guestLinkRE.FindStringSubmatch(body)
	if found == nil {
		t.Fatalf("no guest link in the panel: %s", body)
	}
	link := found[1]
	l, err := m.st.GuestLinkByHash(t.Context(), auth.HashToken(found[2]))
	if err != nil || l.Role != store.GuestInterpreter || l.IssuedBy != m.doc.ID || l.AppointmentID != m.visit.ID {
		t.Fatalf("stored link %+v, %v", l, err)
	}
	// The consult page lists the guest, but never shows the link again.
	if st, page := guestGet(t, doc, consult); st != http.StatusOK || !strings.Contains(page, "Ines Duarte") || strings.Contains(page, found[2]) {
		t.Fatalf("consult page: %d, guest listed: %v, link shown again: %v", st, strings.Contains(page, "Ines Duarte"), strings.Contains(page, found[2]))
	}

	g := noRedirect()
	resp, err := g.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/guest/call" {
		t.Fatalf("guest link: %d %q, want 303 /guest/call", resp.StatusCode, resp.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == guestCookie {
			ck = c
		}
	}
	if ck == nil || ck.Path != "/guest/" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("guest cookie %+v: want HttpOnly, Lax, for /guest/ only", ck)
	}
	if st, page := guestGet(t, g, m.srv.URL+"/guest/call"); st != http.StatusOK || !strings.Contains(page, `data-ws="/guest/ws"`) ||
		strings.Contains(page, "vitals") || strings.Contains(page, "bluetooth") {
		t.Fatalf("guest page: %d; want the call without vitals or devices:\n%s", st, page)
	}
	// The pre-call connectivity check works for the guest on its own route.
	if st, body := guestGet(t, g, m.srv.URL+"/guest/connectivity-check"); st != http.StatusOK || !strings.Contains(body, "iceServers") {
		t.Errorf("guest connectivity check: %d %s", st, body)
	}
	// The guest's cookie, sent anywhere, opens nothing else of the visit.
	for _, path := range []string{"/visit/%d", "/consult/%d", "/ws/call/%d", "/ws/vitals/%d", "/visits/%d/record", "/visits/%d/record/fhir"} {
		req, _ := http.NewRequest("GET", m.srv.URL+fmt.Sprintf(path, m.visit.ID), nil)
		req.AddCookie(&http.Cookie{Name: guestCookie, Value: found[2]})
		resp, err := g.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !refused(resp) {
			t.Errorf("the guest reached %s: %d", fmt.Sprintf(path, m.visit.ID), resp.StatusCode)
		}
	}
	for _, path := range []string{fmt.Sprintf("/patients/%d/chart", m.pat.ID), fmt.Sprintf("/fhir/Patient/%d", m.pat.ID)} {
		req, _ := http.NewRequest("GET", m.srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: guestCookie, Value: found[2]})
		resp, err := g.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !refused(resp) {
			t.Errorf("the guest reached %s: %d", path, resp.StatusCode)
		}
	}

	// In the call: the physician sees the interpreter waiting, by name and role.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	phys, err := sigclient.Dial(ctx, m.wsURL(fmt.Sprintf("/ws/call/%d", m.visit.ID)), sigclient.Options{Header: m.cookieHeader(doc)})
	if err != nil {
		t.Fatal(err)
	}
	defer phys.Close()
	gc, err := sigclient.Dial(ctx, m.wsURL("/guest/ws"), sigclient.Options{Header: m.guestCookieHeader(g)})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	w, err := gc.Await(ctx, signaling.TypeWelcome)
	if err != nil || w.State != signaling.StateWaiting || w.Role != signaling.RoleInterpreter || w.Participant != fmt.Sprintf("g%d", l.ID) {
		t.Fatalf("guest welcome %+v, %v; want waiting interpreter g%d", w, err, l.ID)
	}
	for {
		lm, err := phys.Await(ctx, signaling.TypeLobby)
		if err != nil {
			t.Fatal(err)
		}
		if len(*lm.Waiting) == 1 {
			if got := (*lm.Waiting)[0]; got.Name != "Ines Duarte (interpreter)" || got.Role != signaling.RoleInterpreter {
				t.Fatalf("lobby entry %+v", got)
			}
			break
		}
	}
	// A guest cannot admit anyone.
	if err := gc.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: "u1"}); err != nil {
		t.Fatal(err)
	}
	if e, err := gc.Await(ctx, signaling.TypeError); err != nil || !strings.Contains(e.Error, "only the physician") {
		t.Fatalf("a guest's admit: %+v, %v", e, err)
	}

	// Withdrawn: the guest is told and disconnected at once.
	st, body = guestPost(t, doc, fmt.Sprintf("%s/guests/%d/revoke", consult, l.ID), nil)
	if st != http.StatusOK || strings.Contains(body, link) {
		t.Fatalf("revoke: %d, link still listed: %v", st, strings.Contains(body, link))
	}
	if e, err := gc.Await(ctx, signaling.TypeError); err != nil || !strings.Contains(e.Error, "withdrawn") {
		t.Fatalf("the guest after the revocation: %+v, %v", e, err)
	}
	select {
	case <-gc.Done():
	case <-ctx.Done():
		t.Fatal("the guest's connection stayed open after the revocation")
	}
	if st, _ := guestGet(t, g, m.srv.URL+"/guest/call"); st != http.StatusForbidden {
		t.Errorf("guest page after the revocation: %d, want 403", st)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(m.wsURL("/guest/ws"), m.guestCookieHeader(g)); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("guest socket after the revocation: %v, want 401", err)
	}
	if st, _ := guestGet(t, noRedirect(), link); st != http.StatusGone {
		t.Errorf("the link after the revocation: %d, want 410", st)
	}

	// The trail: issued by the physician, used and connected by the guest,
	// withdrawn by the physician, then refused; all naming the patient.
	res := fmt.Sprintf("Appointment/%d/guest/%d", m.visit.ID, l.ID)
	var got []string
	for _, e := range m.newAuditEvents(t) {
		if e.Resource == res && e.PatientID == m.pat.ID {
			got = append(got, fmt.Sprintf("%s %s %s %d", e.ActorRole, e.Action, e.Outcome, e.ActorID))
		}
	}
	for _, want := range []string{
		fmt.Sprintf("physician create success %d", m.doc.ID),
		// A guest's own events name the link's issuer as the actor.
		fmt.Sprintf("guest login success %d", m.doc.ID),
		fmt.Sprintf("guest read success %d", m.doc.ID),
		fmt.Sprintf("physician delete success %d", m.doc.ID),
		fmt.Sprintf("guest login denied %d", m.doc.ID),
	} {
		if !slices.Contains(got, want) {
			t.Errorf("audit trail of %s lacks %q: %q", res, want, got)
		}
	}
}

// TestGuestLinkStates: only a live link of a live visit opens, and a
// refused one sets no cookie.
func TestGuestLinkStates(t *testing.T) {
	m := newMatrix(t)
	ctx := t.Context()
	mk := func(a scheduling.Appointment, expires, revoked time.Time) string {
		tok, hash := auth.NewToken()
		if _, err := m.st.CreateGuestLink(ctx, store.GuestLink{AppointmentID: a.ID, TokenHash: hash, Role: store.GuestFamily,
			Name: "Sam", IssuedBy: m.doc.ID, CreatedAt: time.Now(), ExpiresAt: expires, RevokedAt: revoked}); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	start := time.Now().Add(72 * time.Hour).Truncate(time.Minute)
	later, err := m.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: m.doc.ID, PatientID: m.pat.ID, Start: start, End: start.Add(30 * time.Minute)}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	cancelledStart := start.Add(24 * time.Hour)
	cancelled, err := m.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: m.doc.ID, PatientID: m.pat.ID, Start: cancelledStart, End: cancelledStart.Add(30 * time.Minute)}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	cancelledTok := mk(cancelled, cancelled.End.Add(time.Hour), time.Time{})
	if _, err := m.st.SetAppointmentStatus(ctx, cancelled.ID, scheduling.StatusCancelled, store.Change{At: time.Now(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	pastStart := time.Now().Add(-5 * time.Hour).Truncate(time.Minute)
	moved, err := m.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: m.doc.ID, PatientID: m.pat.ID, Start: pastStart, End: pastStart.Add(30 * time.Minute)}, store.Change{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"of a visit (moved) that ended hours ago", mk(moved, time.Now().Add(time.Hour), time.Time{}), http.StatusGone},
		{"live", m.guestTok, http.StatusSeeOther},
		{"expired", mk(m.visit, time.Now().Add(-time.Minute), time.Time{}), http.StatusGone},
		{"revoked", m.revokedGst, http.StatusGone},
		{"for a cancelled visit", cancelledTok, http.StatusGone},
		{"three days early", mk(later, later.End.Add(time.Hour), time.Time{}), http.StatusForbidden},
		{"unknown", strings.Repeat("A", 43), http.StatusNotFound},
		{"malformed", "not-a-token", http.StatusNotFound},
		{"the patient's join link", m.join, http.StatusNotFound},
		{"an API token", m.apiTok, http.StatusNotFound},
	} {
		resp, err := noRedirect().Get(m.srv.URL + "/guest/" + c.token)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s guest link: %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if c.want != http.StatusSeeOther && len(resp.Cookies()) > 0 {
			t.Errorf("%s guest link set a cookie", c.name)
		}
	}
	// An expired link's cookie opens nothing either.
	req, _ := http.NewRequest("GET", m.srv.URL+"/guest/call", nil)
	req.AddCookie(&http.Cookie{Name: guestCookie, Value: mk(m.visit, time.Now().Add(-time.Second), time.Time{})})
	resp, err := noRedirect().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("guest page with an expired link: %d, want 403", resp.StatusCode)
	}
}

// TestSchedulerIssuesGuestLinks: a scheduler issues and withdraws guest
// links on the appointment page; bad input gets a clear error and stores
// nothing; a link of another visit cannot be withdrawn through this one.
func TestSchedulerIssuesGuestLinks(t *testing.T) {
	m := newMatrix(t)
	sched := m.signIn(t, "sched@example.org")
	page := fmt.Sprintf("%s/appointments/%d", m.srv.URL, m.visit.ID)
	st, body := guestPost(t, sched, page+"/guests", url.Values{"role": {"family"}, "name": {"Sam Lee"}})
	if st != http.StatusOK || guestLinkRE.FindStringSubmatch(body) == nil || !strings.Contains(body, "Sam Lee") {
		t.Fatalf("issue: %d %s", st, body)
	}
	issued := guestLinkRE.FindStringSubmatch(body)[2]
	// The appointment page never shows the link again, nor offers a
	// second physician's link to a scheduler.
	if st, body := guestGet(t, sched, page); st != http.StatusOK || !strings.Contains(body, "Sam Lee") || strings.Contains(body, issued) ||
		strings.Contains(body, `value="physician"`) {
		t.Fatalf("appointment page: %d, link shown again: %v, physician offered: %v", st, strings.Contains(body, issued), strings.Contains(body, `value="physician"`))
	}
	before, _ := m.st.GuestLinks(t.Context(), m.visit.ID)
	issuing := m.newAuditEvents(t)
	// A scheduler may not give anyone (themselves included) a second
	// physician's link, which carries the patient's live vitals.
	if st, body := guestPost(t, sched, page+"/guests", url.Values{"role": {"physician"}, "name": {"Dr Sneaky"}}); st != http.StatusForbidden || guestLinkRE.MatchString(body) {
		t.Errorf("scheduler issuing a physician's link: %d, want 403 and no link", st)
	}
	if !slices.ContainsFunc(m.newAuditEvents(t), func(e store.AuditEvent) bool {
		return e.ActorID == m.schedID && e.Action == audit.ActionCreate && e.Outcome == audit.OutcomeDenied
	}) {
		t.Error("the refused physician's link was not audited")
	}
	for _, c := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"role": {"patient"}, "name": {"X"}}, "role must be"},
		{url.Values{"role": {"family"}, "name": {"  "}}, "name must be"},
		{url.Values{"role": {"family"}, "name": {"<img src=x>"}}, "name must be"},
	} {
		st, body := guestPost(t, sched, page+"/guests", c.form)
		if st != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("issue %v: %d, want 400 saying %q", c.form, st, c.want)
		}
	}
	if after, _ := m.st.GuestLinks(t.Context(), m.visit.ID); len(after) != len(before) {
		t.Errorf("refused forms stored %d links", len(after)-len(before))
	}
	// The other visit's link, through this visit's URL: 404, untouched.
	tok, hash := auth.NewToken()
	other, err := m.st.CreateGuestLink(t.Context(), store.GuestLink{AppointmentID: m.otherVisit.ID, TokenHash: hash, Role: store.GuestFamily,
		Name: "Kim", IssuedBy: m.doc2.ID, CreatedAt: time.Now(), ExpiresAt: m.otherVisit.End.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := guestPost(t, sched, fmt.Sprintf("%s/guests/%d/revoke", page, other.ID), nil); st != http.StatusNotFound {
		t.Errorf("revoking another visit's link: %d, want 404", st)
	}
	if l, _ := m.st.GuestLinkByHash(t.Context(), auth.HashToken(tok)); !l.RevokedAt.IsZero() {
		t.Error("another visit's link was revoked")
	}
	// The other physician may not manage this visit's guests.
	doc2 := m.signIn(t, "doc2@example.org")
	if st, _ := guestPost(t, doc2, fmt.Sprintf("%s/consult/%d/guests", m.srv.URL, m.visit.ID), url.Values{"role": {"family"}, "name": {"Eve"}}); st != http.StatusForbidden {
		t.Errorf("another physician issuing: %d, want 403", st)
	}
	if !slices.ContainsFunc(issuing, func(e store.AuditEvent) bool {
		return e.ActorID == m.schedID && e.Action == audit.ActionCreate && e.Outcome == audit.OutcomeSuccess && e.PatientID == m.pat.ID
	}) {
		t.Error("issuing was not audited")
	}
}

// TestGuestLinkPageIsNotCached: the answer that shows a new guest link,
// once, tells every cache not to keep it, on both the consult and the
// appointment page.
func TestGuestLinkPageIsNotCached(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ who, path string }{
		{"doc@example.org", fmt.Sprintf("/consult/%d/guests", f.visit.ID)},
		{"sched@example.org", fmt.Sprintf("/appointments/%d/guests", f.visit.ID)},
	} {
		resp, err := f.signIn(t, c.who).PostForm(f.srv.URL+c.path, url.Values{"role": {"family"}, "name": {"Sam Lee"}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !guestLinkRE.Match(body) {
			t.Fatalf("POST %s: %d, want the page with the new link", c.path, resp.StatusCode)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("POST %s: Cache-Control %q on the page that shows the guest link, want no-store", c.path, cc)
		}
	}
}

// TestGuestRefusalsAreAudited: every page behind a guest link audits a
// refused link as denied, as docs/security.md says; a second physician's
// call page, which names the patient, is audited as a read.
func TestGuestRefusalsAreAudited(t *testing.T) {
	m := newMatrix(t)
	ctx := t.Context()
	mk := func(role string, revoked time.Time) (store.GuestLink, string) {
		tok, hash := auth.NewToken()
		l, err := m.st.CreateGuestLink(ctx, store.GuestLink{AppointmentID: m.visit.ID, TokenHash: hash, Role: role,
			Name: "Sam", IssuedBy: m.doc.ID, CreatedAt: time.Now(), ExpiresAt: m.visit.End.Add(time.Hour), RevokedAt: revoked})
		if err != nil {
			t.Fatal(err)
		}
		return l, tok
	}
	get := func(path, tok string) int {
		req, _ := http.NewRequest("GET", m.srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: guestCookie, Value: tok})
		resp, err := noRedirect().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	audited := func(l store.GuestLink, outcome string) bool {
		return slices.ContainsFunc(m.newAuditEvents(t), func(e store.AuditEvent) bool {
			return e.Resource == guestResource(l) && e.PatientID == m.pat.ID && e.ActorRole == auditRoleGuest &&
				e.ActorID == m.doc.ID && e.Action == audit.ActionRead && e.Outcome == outcome
		})
	}
	revoked, tok := mk(store.GuestFamily, time.Now())
	m.newAuditEvents(t)
	for _, path := range []string{"/guest/call", "/guest/connectivity-check"} {
		if st := get(path, tok); st < 400 {
			t.Fatalf("GET %s with a revoked link: %d", path, st)
		}
		if !audited(revoked, audit.OutcomeDenied) {
			t.Errorf("GET %s with a revoked guest link: no denied event", path)
		}
	}
	phys, tok := mk(store.GuestPhysician, time.Time{})
	if st := get("/guest/call", tok); st != http.StatusOK {
		t.Fatalf("a second physician's page: %d", st)
	}
	if !audited(phys, audit.OutcomeSuccess) {
		t.Error("a second physician's page, which names the patient, was not audited")
	}
}

// TestGuestLinksEndWithTheirIssuer: a guest answers to whoever issued
// their link, so deactivating that physician withdraws their live links at
// once (audited as the admin's withdrawal, naming the patient): a second
// physician's link no longer opens the patient's call and vitals.
func TestGuestLinksEndWithTheirIssuer(t *testing.T) {
	f, adm, admClient := adminFixture(t)
	tok, hash := auth.NewToken()
	l, err := f.st.CreateGuestLink(t.Context(), store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: store.GuestPhysician,
		Name: "Dr Bo", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := guestGet(t, noRedirect(), f.srv.URL+"/guest/"+tok); st != http.StatusSeeOther {
		t.Fatalf("the link before: %d, want 303", st)
	}
	st, body := adminPost(t, admClient, fmt.Sprintf("%s/admin/users/%d/deactivate", f.srv.URL, f.doc.ID), nil)
	if st != http.StatusOK || !strings.Contains(body, "1 guest links they issued withdrawn") {
		t.Fatalf("deactivating the issuer: %d\n%s", st, body)
	}
	if st, body := guestGet(t, noRedirect(), f.srv.URL+"/guest/"+tok); st != http.StatusGone || !strings.Contains(body, "withdrew") {
		t.Errorf("the link after its issuer was deactivated: %d, want 410 saying it was withdrawn", st)
	}
	events, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{ActorID: adm.ID, Action: audit.ActionDelete})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events, func(e store.AuditEvent) bool {
		return e.Resource == guestResource(l) && e.PatientID == f.pat.ID && e.Outcome == audit.OutcomeSuccess
	}) {
		t.Errorf("the withdrawal is not in the trail: %+v", events)
	}
}

// TestForwardedLinkWaitsForThePhysician: a guest link forwarded to
// someone else, or a patient's join link opened in another browser (a
// scheduler sees it), connecting while its participant is admitted does
// not inherit the admission: the newcomer waits in the lobby, where the
// physician sees them. A reload in the admitted browser is admitted again
// at once, as before.
func TestForwardedLinkWaitsForThePhysician(t *testing.T) {
	for _, c := range []struct {
		name string
		// open returns a new browser holding the link, the call socket
		// path and the header that browser sends to it, and the
		// participant's id.
		open func(t *testing.T, f *fixture) func() (*http.Client, string, http.Header)
		id   func(f *fixture) string
	}{
		{"guest link", func(t *testing.T, f *fixture) func() (*http.Client, string, http.Header) {
			tok, hash := auth.NewToken()
			if _, err := f.st.CreateGuestLink(t.Context(), store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: store.GuestFamily,
				Name: "Sam", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			return func() (*http.Client, string, http.Header) {
				b := noRedirect()
				if st, _ := guestGet(t, b, f.srv.URL+"/guest/"+tok); st != http.StatusSeeOther {
					t.Fatalf("opening the guest link: %d", st)
				}
				return b, "/guest/ws", f.guestCookieHeader(b)
			}
		}, func(f *fixture) string {
			links, _ := f.st.GuestLinks(context.Background(), f.visit.ID)
			return guestPeerID(links[0])
		}},
		{"join link", func(t *testing.T, f *fixture) func() (*http.Client, string, http.Header) {
			return func() (*http.Client, string, http.Header) {
				b := f.joinClient(t, f.visit)
				return b, fmt.Sprintf("/ws/call/%d", f.visit.ID), f.cookieHeader(b)
			}
		}, func(f *fixture) string { return fmt.Sprintf("u%d", f.pat.ID) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			phys := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
			await(t, phys, signaling.TypeWelcome)
			newBrowser := c.open(t, f)
			_, path, header := newBrowser()
			id := c.id(f)
			dial := func(h http.Header) *sigclient.Client {
				cl, err := sigclient.Dial(ctx, f.wsURL(path), sigclient.Options{Header: h})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cl.Close() })
				return cl
			}
			first := dial(header)
			if w := await(t, first, signaling.TypeWelcome); w.State != signaling.StateWaiting {
				t.Fatalf("first connection: %q, want waiting", w.State)
			}
			if err := phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: id}); err != nil {
				t.Fatal(err)
			}
			await(t, first, signaling.TypeAdmitted)

			// A reload in the same browser: admitted again at once.
			reload := dial(header)
			if w := await(t, reload, signaling.TypeWelcome); w.State != signaling.StateAdmitted {
				t.Fatalf("a reload in the admitted browser: %q, want admitted", w.State)
			}
			// The link opened in another browser: the lobby, seen by the
			// physician; the admitted connection is replaced.
			_, _, otherHeader := newBrowser()
			other := dial(otherHeader)
			if w := await(t, other, signaling.TypeWelcome); w.State != signaling.StateWaiting {
				t.Errorf("another browser with the same link: welcome %q, want waiting", w.State)
			}
			select {
			case <-reload.Done():
			case <-ctx.Done():
				t.Fatal("the admitted connection stayed open")
			}
			for waiting := false; !waiting; {
				lm := await(t, phys, signaling.TypeLobby)
				waiting = slices.ContainsFunc(*lm.Waiting, func(w signaling.Waiting) bool { return w.Participant == id })
			}
		})
	}
}

// TestGuestsFillTheVisit: guests, waiting or admitted, take at most four
// of the six places a visit holds; the fifth guest is told the visit has
// its guests, and the patient, arriving last, still gets in.
func TestGuestsFillTheVisit(t *testing.T) {
	m := newMatrix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	doc := m.signIn(t, "doc@example.org")
	phys, err := sigclient.Dial(ctx, m.wsURL(fmt.Sprintf("/ws/call/%d", m.visit.ID)), sigclient.Options{Header: m.cookieHeader(doc)})
	if err != nil {
		t.Fatal(err)
	}
	defer phys.Close()
	if _, err := phys.Await(ctx, signaling.TypeWelcome); err != nil {
		t.Fatal(err)
	}
	join := func(name string) (*websocket.Conn, signaling.Message) {
		tok, _ := m.guestLinkOf(t, name)
		h := http.Header{"Cookie": {guestCookie + "=" + tok}}
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, m.wsURL("/guest/ws"), h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		var first signaling.Message
		if err := ws.ReadJSON(&first); err != nil {
			t.Fatal(err)
		}
		return ws, first
	}
	for i := range signaling.MaxGuests {
		if _, w := join(fmt.Sprintf("Guest %d", i)); w.Type != signaling.TypeWelcome {
			t.Fatalf("guest %d: %+v, want welcome", i, w)
		}
	}
	ws, first := join("Fifth")
	if first.Type != signaling.TypeError || !strings.Contains(first.Error, "all the guests it holds") {
		t.Fatalf("fifth guest: %+v", first)
	}
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseTryAgainLater {
		t.Fatalf("fifth guest closed with %v, want 1013", err)
	}
	h := http.Header{"Cookie": {sessionCookie + "=" + m.session(t, m.pat.ID, m.visit.ID, time.Now().Add(time.Hour))}}
	pat, err := sigclient.Dial(ctx, m.wsURL(fmt.Sprintf("/ws/call/%d", m.visit.ID)), sigclient.Options{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	defer pat.Close()
	if w, err := pat.Await(ctx, signaling.TypeWelcome); err != nil || w.State != signaling.StateWaiting {
		t.Fatalf("the patient after four guests: %+v, %v; want welcome, waiting", w, err)
	}
}

// TestGuestPhysicianSeesVitals: a second physician invited as a guest gets
// the vitals overlay, but the live readings only once admitted to the
// call, audited; an interpreter gets neither; leaving the call, or a
// withdrawn link, closes the guest physician's vitals socket.
func TestGuestPhysicianSeesVitals(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) {
		d.Audit = &audit.Recorder{Store: d.Store, Log: d.Log}
		d.Recheck = 100 * time.Millisecond
	})
	ctx := t.Context()
	mk := func(role string) (string, store.GuestLink) {
		tok, hash := auth.NewToken()
		l, err := f.st.CreateGuestLink(ctx, store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: role,
			Name: "Dr Bo", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return tok, l
	}
	page := func(tok string) string {
		req, _ := http.NewRequest("GET", f.srv.URL+"/guest/call", nil)
		req.AddCookie(&http.Cookie{Name: guestCookie, Value: tok})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	dial := func(tok string) (*viewerClient, int) {
		ws, resp, err := websocket.DefaultDialer.Dial(f.wsURL("/guest/ws/vitals"), http.Header{"Cookie": {guestCookie + "=" + tok + "; " + guestBrowserCookie + "=guest-browser"}})
		if err != nil {
			if resp == nil {
				t.Fatal(err)
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { ws.Close() })
		return &viewerClient{Conn: ws}, http.StatusSwitchingProtocols
	}

	docTok, docLink := mk(store.GuestPhysician)
	p := page(docTok)
	for _, want := range []string{`data-vitals-ws="/guest/ws/vitals"`, `id="vitals"`, fmt.Sprintf(`data-main="u%d"`, f.pat.ID), "/static/vitals.js"} {
		if !strings.Contains(p, want) {
			t.Errorf("guest physician's page lacks %s", want)
		}
	}
	// Not in the call, then only in the waiting room: no vitals.
	if v, st := dial(docTok); v != nil || st != http.StatusForbidden {
		t.Fatalf("vitals socket of a guest physician not in the call: %d, want 403", st)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	phys, err := sigclient.Dial(cctx, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), sigclient.Options{Header: f.cookieHeader(f.signIn(t, "doc@example.org"))})
	if err != nil {
		t.Fatal(err)
	}
	defer phys.Close()
	if _, err := phys.Await(cctx, signaling.TypeWelcome); err != nil {
		t.Fatal(err)
	}
	joinGuest := func() *sigclient.Client {
		gc, err := sigclient.Dial(cctx, f.wsURL("/guest/ws"), sigclient.Options{Header: http.Header{"Cookie": {guestCookie + "=" + docTok + "; " + guestBrowserCookie + "=guest-browser"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gc.Await(cctx, signaling.TypeWelcome); err != nil {
			t.Fatal(err)
		}
		return gc
	}
	gc := joinGuest()
	if v, st := dial(docTok); v != nil || st != http.StatusForbidden {
		t.Fatalf("vitals socket of a guest physician in the waiting room: %d, want 403", st)
	}
	admit := func(gc *sigclient.Client) {
		if err := phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: guestPeerID(docLink)}); err != nil {
			t.Fatal(err)
		}
		if _, err := gc.Await(cctx, signaling.TypeAdmitted); err != nil {
			t.Fatal(err)
		}
	}
	admit(gc)
	viewer, st := dial(docTok)
	if viewer == nil {
		t.Fatalf("admitted guest physician's vitals socket: %d", st)
	}
	dev := dialDevice(t, f, f.devToken)
	sendFrame(t, dev, envelope(1, "8867-4", 72, "/min", ""))
	if r := nextReading(t, viewer); r.Code != "8867-4" || r.Value != 72 {
		t.Fatalf("guest physician got %+v, want the heart rate 72", r)
	}

	interpTok, _ := mk(store.GuestInterpreter)
	if p := page(interpTok); strings.Contains(p, `id="vitals"`) || strings.Contains(p, "data-vitals-ws") || strings.Contains(p, "vitals.js") {
		t.Error("the interpreter's page carries the vitals overlay")
	}
	if v, st := dial(interpTok); v != nil || st != http.StatusForbidden {
		t.Errorf("interpreter's vitals socket: %d, want 403", st)
	}

	closed := func(viewer *viewerClient, after string) {
		t.Helper()
		_ = viewer.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, _, err := viewer.ReadMessage()
			if err == nil {
				continue
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("guest physician's vitals socket after %s: %v, want close 1008", after, err)
			}
			return
		}
	}
	// Left the call: the open socket closes at the next re-check.
	if err := gc.Send(signaling.Message{Type: signaling.TypeLeave}); err != nil {
		t.Fatal(err)
	}
	<-gc.Done()
	closed(viewer, "leaving the call")

	// Back and admitted again, then withdrawn: closed too.
	gc = joinGuest()
	defer gc.Close()
	admit(gc)
	if viewer, st = dial(docTok); viewer == nil {
		t.Fatalf("re-admitted guest physician's vitals socket: %d", st)
	}
	if err := f.st.RevokeGuestLink(ctx, docLink.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	closed(viewer, "the revocation")
	if v, st := dial(docTok); v != nil || st != http.StatusUnauthorized {
		t.Errorf("vitals socket with a withdrawn link: %d, want 401", st)
	}

	events, _, err := f.st.AuditEvents(ctx, store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	res := fmt.Sprintf("Appointment/%d/guest/%d/vitals", f.visit.ID, docLink.ID)
	if !slices.ContainsFunc(events, func(e store.AuditEvent) bool {
		return e.Resource == res && e.ActorRole == "guest" && e.ActorID == f.doc.ID && e.Outcome == audit.OutcomeSuccess && e.PatientID == f.pat.ID
	}) {
		t.Errorf("no audited vitals read of %s", res)
	}
}

// unwellVisits is a store whose visit look-ups fail while unwell is set,
// as a store that is briefly away would; fails counts those failures.
type unwellVisits struct {
	store.Store
	unwell *atomic.Bool
	fails  *atomic.Int64
}

func (u unwellVisits) AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error) {
	if u.unwell.Load() {
		u.fails.Add(1)
		return scheduling.Appointment{}, errors.New("the store is unwell")
	}
	return u.Store.AppointmentByID(ctx, id)
}

// TestGuestPhysicianLeavesWhenTheVisitMovesLater: a guest physician's
// vitals socket and call are re-checked like the visit's physician's: the
// store being briefly unwell keeps them (readings still arrive), but once
// the visit is moved more than a day later the vitals close (1008), as the
// visit's own physician's do, and so does the guest's call.
func TestGuestPhysicianLeavesWhenTheVisitMovesLater(t *testing.T) {
	unwell, fails := &atomic.Bool{}, &atomic.Int64{}
	f := newFixtureWith(t, func(d *Deps) {
		d.Recheck = 50 * time.Millisecond
		d.Store = unwellVisits{d.Store, unwell, fails}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tok, hash := auth.NewToken()
	l, err := f.st.CreateGuestLink(ctx, store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: store.GuestPhysician,
		Name: "Dr Bo", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	phys := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, phys, signaling.TypeWelcome)
	cookie := http.Header{"Cookie": {guestCookie + "=" + tok + "; " + guestBrowserCookie + "=guest-browser"}}
	gc := dialCall(t, f.wsURL("/guest/ws"), cookie)
	await(t, gc, signaling.TypeWelcome)
	if err := phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: guestPeerID(l)}); err != nil {
		t.Fatal(err)
	}
	await(t, gc, signaling.TypeAdmitted)
	ws, _, err := websocket.DefaultDialer.Dial(f.wsURL("/guest/ws/vitals"), cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	guest := &viewerClient{Conn: ws}
	dev := dialDevice(t, f, f.devToken)

	// The store is unwell for a few re-checks: the view stays.
	unwell.Store(true)
	for fails.Load() < 6 {
		select {
		case <-ctx.Done():
			t.Fatal("no re-check asked the store")
		case <-time.After(10 * time.Millisecond):
		}
	}
	unwell.Store(false)
	sendFrame(t, dev, envelope(1, "8867-4", 72, "/min", ""))
	if r := nextReading(t, guest); r.Code != "8867-4" || r.Value != 72 {
		t.Fatalf("after the store was unwell the guest physician got %+v, want the heart rate 72", r)
	}

	// The visit moves to next week: the vitals close, then the call.
	start := f.visit.Start.Add(7 * 24 * time.Hour)
	if _, err := f.st.RescheduleAppointment(ctx, f.visit.ID, start, start.Add(30*time.Minute), store.Change{At: time.Now(), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	_ = guest.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := guest.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("the guest physician's vitals after the visit moved a week later: %v, want close 1008", err)
		}
		break
	}
	select {
	case <-gc.Done():
	case <-ctx.Done():
		t.Fatal("the guest's call stayed open after the visit moved a week later")
	}
}

// brokenLinks is a store whose link look-ups fail, as a store that went
// away mid-request would.
type brokenLinks struct{ store.Store }

func (brokenLinks) GuestLinkByHash(context.Context, []byte) (store.GuestLink, error) {
	return store.GuestLink{}, errors.New("the store is unwell")
}

func (brokenLinks) CredentialByHash(context.Context, string, []byte) (store.Credential, error) {
	return store.Credential{}, errors.New("the store is unwell")
}

// TestGuestTokenStaysOutOfTheLogs: a request on a route that carries a
// credential in its path, failing on a store error, logs the route
// pattern and never the token.
func TestGuestTokenStaysOutOfTheLogs(t *testing.T) {
	logs := &lockedBuffer{}
	f := newFixtureWith(t, func(d *Deps) {
		d.Log = slog.New(slog.NewTextHandler(logs, nil))
		d.Store = brokenLinks{d.Store}
	})
	tok, _ := auth.NewToken()
	for _, path := range []string{"/guest/", "/join/", "/account/password/"} {
		resp, err := http.Get(f.srv.URL + path + tok)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := logs.String()
	if strings.Contains(got, tok) {
		t.Errorf("a token reached the logs:\n%s", got)
	}
	if !strings.Contains(got, `route="GET /guest/{token}"`) {
		t.Errorf("the failed guest link request is not logged by its route:\n%s", got)
	}
}

// TestForwardedGuestLinkGetsNoVitals: a guest physician's link forwarded to
// another browser opens no vitals while the real guest is admitted: that
// browser never passed the lobby, so the physician never let it in. The
// admitted guest's own browser does get them.
func TestForwardedGuestLinkGetsNoVitals(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.Recheck = 20 * time.Millisecond })
	ctx := t.Context()
	tok, hash := auth.NewToken()
	l, err := f.st.CreateGuestLink(ctx, store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: store.GuestPhysician,
		Name: "Dr Bo", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	phys := dialCall(t, f.wsURL(fmt.Sprintf("/ws/call/%d", f.visit.ID)), f.cookieHeader(f.signIn(t, "doc@example.org")))
	await(t, phys, signaling.TypeWelcome)
	guest := http.Header{"Cookie": {guestCookie + "=" + tok + "; " + guestBrowserCookie + "=guest-browser"}}
	gc := dialCall(t, f.wsURL("/guest/ws"), guest)
	await(t, gc, signaling.TypeWelcome)
	phys.Send(signaling.Message{Type: signaling.TypeAdmit, Participant: guestPeerID(l)})
	await(t, gc, signaling.TypeAdmitted)

	for name, h := range map[string]http.Header{
		"another browser": {"Cookie": {guestCookie + "=" + tok + "; " + guestBrowserCookie + "=other-browser"}},
		"no browser":      {"Cookie": {guestCookie + "=" + tok}},
	} {
		ws, resp, err := websocket.DefaultDialer.Dial(f.wsURL("/guest/ws/vitals"), h)
		if err == nil {
			ws.Close()
			t.Fatalf("%s holding the forwarded link opened the vitals socket while the real guest is admitted", name)
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %v, want 403", name, err)
		}
	}
	ws, _, err := websocket.DefaultDialer.Dial(f.wsURL("/guest/ws/vitals"), guest)
	if err != nil {
		t.Fatalf("the admitted guest's own browser: %v", err)
	}
	defer ws.Close()
	viewer := &viewerClient{Conn: ws}
	// Its re-checks (every 20 ms) keep it: readings still arrive after
	// 25 of them.
	dev := dialDevice(t, f, f.devToken)
	for i, until := 1, time.Now().Add(500*time.Millisecond); time.Now().Before(until); i++ {
		sendFrame(t, dev, envelope(i, "8867-4", float64(60+i%40), "/min", ""))
		if r := nextReading(t, viewer); r.Value != float64(60+i%40) {
			t.Fatalf("the admitted guest got %+v, want the heart rate %d", r, 60+i%40)
		}
	}
}

// TestGuestLinkReopenKeepsItsBrowser: opening a guest link again in the
// same browser keeps that browser's secret and renews it for the link's
// life, as the link's own cookie is, so the browser stays the one the
// call admitted.
func TestGuestLinkReopenKeepsItsBrowser(t *testing.T) {
	f := newFixture(t)
	tok, hash := auth.NewToken()
	if _, err := f.st.CreateGuestLink(t.Context(), store.GuestLink{AppointmentID: f.visit.ID, TokenHash: hash, Role: store.GuestFamily,
		Name: "Sam", IssuedBy: f.doc.ID, CreatedAt: time.Now(), ExpiresAt: f.visit.End.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	b := noRedirect()
	open := func() *http.Cookie {
		t.Helper()
		resp, err := b.Get(f.srv.URL + "/guest/" + tok)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == guestBrowserCookie {
				return ck
			}
		}
		t.Fatalf("opening the guest link (%d) set no browser cookie", resp.StatusCode)
		return nil
	}
	first, again := open(), open()
	if again.Value != first.Value {
		t.Error("reopening the guest link in the same browser changed its browser secret")
	}
	if again.MaxAge <= 0 || again.Path != "/guest/" || !again.HttpOnly {
		t.Errorf("renewed browser cookie %+v, want a live HttpOnly cookie for /guest/", again)
	}
}
