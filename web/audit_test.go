package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

// auditLogSite is a store with users and audit events, and the audit log
// handler over it, called directly (the route is registered in routes.go).
type auditLogSite struct {
	st                      *sqlite.DB
	s                       *server
	admin, ada, byron, doc  store.User
	nightEvent, otherEvents int64
}

func newAuditLogSite(t *testing.T) *auditLogSite {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := &auditLogSite{st: st}
	mk := func(email, name string, role store.Role, tz string) store.User {
		u, err := st.CreateUser(ctx, store.User{Email: email, Name: name, Role: role, TimeZone: tz})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	a.admin = mk("admin@example.org", "Avery Admin", store.RoleAdmin, "America/New_York")
	a.ada = mk("ada@example.org", "Ada Lovelace", store.RolePatient, "")
	a.byron = mk("byron@example.org", "Ada Byron", store.RolePatient, "")
	a.doc = mk("doc@example.org", "Grace Hopper", store.RolePhysician, "")
	// 2026-11-20 03:00 UTC is the evening of the 19th in New York.
	night := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	appendEvent := func(e store.AuditEvent) int64 {
		got, err := st.AppendAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		return got.Seq
	}
	a.nightEvent = appendEvent(store.AuditEvent{At: night, ActorID: a.doc.ID, ActorRole: "physician", Action: "read",
		PatientID: a.ada.ID, Resource: "Appointment/7", Address: "192.0.2.44", Outcome: "success"})
	for i := range 60 {
		appendEvent(store.AuditEvent{At: night.Add(time.Duration(i+6) * time.Hour), ActorID: a.doc.ID, ActorRole: "physician",
			Action: "search", PatientID: a.byron.ID, Resource: fmt.Sprint("Appointment/", 100+i), Address: "192.0.2.45", Outcome: "denied"})
	}
	a.otherEvents = 60
	log := slog.New(slog.DiscardHandler)
	later := func() time.Time { return night.AddDate(0, 0, 5) }
	a.s = &server{Deps: Deps{Log: log, Store: st, Now: later, Audit: &audit.Recorder{Store: st, Log: log, Now: later}}}
	return a
}

// get renders the audit log for the admin at the given query string.
func (a *auditLogSite) get(t *testing.T, query string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	a.s.handleAudit(rec, httptest.NewRequest("GET", "/audit?"+query, nil), caller{User: a.admin})
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /audit?%s: %d", query, rec.Code)
	}
	return rec.Body.String()
}

// wantIn checks that body holds each of want.
func wantIn(t *testing.T, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: the page lacks %q", what, w)
		}
	}
}

func TestAuditLogPage(t *testing.T) {
	a := newAuditLogSite(t)
	body := a.get(t, "")
	wantIn(t, "all", body, "Chain intact up to event 61.", "1–50 of 61", "Next →", "/audit?offset=50",
		"Thu 19 Nov 2026, 22:00:00", "America/New_York", "Grace Hopper #", "(physician)", "Ada Lovelace #",
		"Appointment/7", "192.0.2.44", "<strong>denied</strong>")

	// A patient by a name that matches one of them, with the dates of the
	// viewer's evening: the event at 03:00 UTC on the 20th is there.
	body = a.get(t, "patient=lovelace&from=2026-11-19&to=2026-11-19")
	wantIn(t, "Lovelace on the 19th", body, "1–1 of 1", "Appointment/7")
	if strings.Contains(body, "Appointment/100") {
		t.Error("another patient's events are listed")
	}
	body = a.get(t, "patient=lovelace&from=2026-11-20&to=2026-11-21")
	wantIn(t, "Lovelace from the 20th", body, "No events found.")
	body = a.get(t, fmt.Sprint("patient=", a.byron.ID, "&actor=hopper&action=search&offset=50"))
	wantIn(t, "Byron, page 2", body, "51–60 of 60", "← Previous", "offset=0")

	// A name that matches two patients offers both and searches neither.
	body = a.get(t, "patient=ada&action=read")
	wantIn(t, "ambiguous", body, "Which patient?", "Ada Lovelace (ada@example.org", "Ada Byron (byron@example.org",
		fmt.Sprintf("/audit?action=read&amp;patient=%d", a.ada.ID))
	if strings.Contains(body, "<table") {
		t.Error("an ambiguous patient still searched")
	}
	wantIn(t, "nobody", a.get(t, "patient=nobody"), "No patient matches &#34;nobody&#34;.")
	wantIn(t, "bad input", a.get(t, "from=yesterday&action=peek"), "Choose an action from the list.", "Enter the From date as YYYY-MM-DD.")

	// Each search is itself recorded; the chain still verifies.
	searches, _, err := a.st.AuditEvents(context.Background(), store.AuditQuery{ActorID: a.admin.ID, Action: "search"})
	if err != nil || len(searches) != 4 || searches[1].PatientID != a.ada.ID || searches[0].Resource != "audit" {
		t.Errorf("recorded searches %+v, %v", searches, err)
	}
	if err := audit.VerifyStore(context.Background(), a.st); err != nil {
		t.Fatal(err)
	}
}

// tamperedStore shows event 2 with a changed resource, as a row edited
// behind the triggers would read.
type tamperedStore struct{ *sqlite.DB }

func (s tamperedStore) AuditEvents(ctx context.Context, q store.AuditQuery) ([]store.AuditEvent, int, error) {
	page, total, err := s.DB.AuditEvents(ctx, q)
	for i := range page {
		if page[i].Seq == 2 {
			page[i].Resource = "Appointment/999"
		}
	}
	return page, total, err
}

func TestAuditLogShowsABrokenChain(t *testing.T) {
	a := newAuditLogSite(t)
	a.s.Store = tamperedStore{a.st}
	body := a.get(t, "")
	wantIn(t, "broken", body, `class="flash error" role="alert"`, "Audit chain broken at event 2 (changed)", "Events up to 1 verify.")
	if strings.Contains(body, "Chain intact") {
		t.Error("a broken chain is called intact")
	}
}
