package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// baseURL is the public address the handler is told it has.
const baseURL = "https://clinic.example"

// now is the fixed clock of every test: Friday 20 November 2026, 09:00 UTC.
var now = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

// monday is the next working day after now.
var monday = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

// fixture is a clinic: a store with users, schedules and appointments,
// served over HTTP as web mounts the API.
type fixture struct {
	st  *sqlite.DB
	srv *httptest.Server

	admin, scheduler, grace, alan, ada, charles store.User
	tokens                                      map[string]string // by role name: admin, scheduler, physician, other-physician, patient, other-patient
	appt1, appt2                                scheduling.Appointment

	mu      sync.Mutex
	changes []scheduling.Appointment // what Deps.Changed was told
}

func newFixture(t testing.TB) *fixture {
	return newFixtureWith(t, func(s *sqlite.DB) Store { return s })
}

// newFixtureWith serves the API over the store that wrap makes of the
// fixture's SQLite store.
func newFixtureWith(t testing.TB, wrap func(*sqlite.DB) Store) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, tokens: map[string]string{}}
	user := func(role store.Role, email, name, tz, birth, phone string) store.User {
		u, err := st.CreateUser(ctx, store.User{Role: role, Email: email, Name: name, TimeZone: tz, BirthDate: birth, Phone: phone, CreatedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	f.admin = user(store.RoleAdmin, "admin@clinic.example", "Avery Admin", "", "", "")
	f.scheduler = user(store.RoleScheduler, "desk@clinic.example", "Sam Scheduler", "", "", "")
	f.grace = user(store.RolePhysician, "grace@clinic.example", "Grace Brewster Hopper", "Europe/London", "", "+44 20 7946 0001")
	f.alan = user(store.RolePhysician, "alan@clinic.example", "Alan Turing", "America/New_York", "", "")
	f.ada = user(store.RolePatient, "ada@example.org", "Ada Lovelace", "", "1990-12-10", "+44 7700 900123")
	f.charles = user(store.RolePatient, "charles@example.org", "Charles Babbage", "", "", "")
	for role, u := range map[string]store.User{"admin": f.admin, "scheduler": f.scheduler, "physician": f.grace,
		"other-physician": f.alan, "patient": f.ada, "other-patient": f.charles} {
		f.tokens[role] = f.token(t, u.ID, time.Time{})
	}
	weekdays := func(start, end int) []scheduling.WeeklyHours {
		var w []scheduling.WeeklyHours
		for d := time.Monday; d <= time.Friday; d++ {
			w = append(w, scheduling.WeeklyHours{Weekday: d, Start: start, End: end})
		}
		return w
	}
	if err := st.SetAvailability(ctx, f.grace.ID, scheduling.Availability{
		Weekly: weekdays(9*60, 12*60), SlotLength: 30 * time.Minute, MinNotice: time.Hour, Horizon: 60 * 24 * time.Hour,
		VisitTypes: []scheduling.VisitType{{Code: "follow-up", Name: "Follow-up visit", Duration: 15 * time.Minute}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetAvailability(ctx, f.alan.ID, scheduling.Availability{Weekly: weekdays(9*60, 17*60), SlotLength: 20 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	f.appt1 = f.book(t, f.ada.ID, f.grace.ID, monday.Add(10*time.Hour), 30*time.Minute)
	f.appt2 = f.book(t, f.charles.ID, f.alan.ID, monday.Add(24*time.Hour+15*time.Hour), 20*time.Minute)

	h := NewHandler(Deps{
		Store:   wrap(st),
		Now:     func() time.Time { return now },
		BaseURL: baseURL + "/",
		Changed: func(ctx context.Context, a scheduling.Appointment) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.changes = append(f.changes, a)
			return nil
		},
	})
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", h))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// token issues an API token for a user, expiring at expires (zero: never).
func (f *fixture) token(t testing.TB, userID int64, expires time.Time) string {
	t.Helper()
	tok, hash := auth.NewToken()
	if _, err := f.st.CreateCredential(context.Background(), store.Credential{Kind: store.CredentialAPI, TokenHash: hash,
		UserID: userID, CreatedAt: now.Add(-time.Hour), ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	return tok
}

// book stores a booked appointment directly, as the scheduler.
func (f *fixture) book(t testing.TB, patient, physician int64, start time.Time, length time.Duration) scheduling.Appointment {
	t.Helper()
	a, err := f.st.BookAppointment(context.Background(), scheduling.Appointment{PatientID: patient, PhysicianID: physician,
		Start: start, End: start.Add(length)}, store.Change{ActorID: f.scheduler.ID, At: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to path (under /fhir, or an absolute URL under
// baseURL) with the given role's token ("" for none) and checks that the
// answer is FHIR JSON.
func (f *fixture) do(t testing.TB, method, path, role, body string) response {
	t.Helper()
	req := f.request(t, method, path, body)
	if role != "" {
		tok, ok := f.tokens[role]
		if !ok {
			t.Fatalf("no token for role %q", role)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return f.send(t, req)
}

// request makes a request; a body is sent as application/fhir+json.
func (f *fixture) request(t testing.TB, method, path, body string) *http.Request {
	t.Helper()
	url := f.srv.URL + "/fhir/" + strings.TrimPrefix(path, "/")
	if rest, ok := strings.CutPrefix(path, baseURL); ok {
		url = f.srv.URL + rest
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	return req
}

func (f *fixture) send(t testing.TB, req *http.Request) response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != contentType {
		t.Errorf("%s %s: Content-Type %q, want %q", req.Method, req.URL.Path, ct, contentType)
	}
	if !json.Valid(b) {
		t.Errorf("%s %s: the body is not JSON: %s", req.Method, req.URL.Path, b)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// want fails the test unless the answer has the status.
func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

// decode reads the body into v.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// golden compares the indented body with testdata/name, or rewrites it
// with -update.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		t.Fatalf("indent %s: %v", body, err)
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from the answer:\n%s\n(run go test -update if the change is intended)", path, buf.Bytes())
	}
}

// searchIDs returns a searchset's total and the resource IDs of its entries.
func searchIDs(t *testing.T, r response) (int, []string) {
	t.Helper()
	var b struct {
		ResourceType string
		Type         string
		Total        int
		Entry        []struct {
			FullURL  string
			Resource struct{ ResourceType, ID string }
			Search   struct{ Mode string }
		}
	}
	r.decode(t, &b)
	if b.ResourceType != "Bundle" || b.Type != "searchset" {
		t.Fatalf("not a searchset Bundle: %s", r.body)
	}
	ids := []string{}
	for _, e := range b.Entry {
		if want := baseURL + "/fhir/" + e.Resource.ResourceType + "/" + e.Resource.ID; e.FullURL != want || e.Search.Mode != "match" {
			t.Errorf("entry fullUrl %q, search.mode %q; want %q, match", e.FullURL, e.Search.Mode, want)
		}
		ids = append(ids, e.Resource.ID)
	}
	return b.Total, ids
}

// outcome reads an OperationOutcome's one issue.
func outcome(t *testing.T, r response) Issue {
	t.Helper()
	var o OperationOutcome
	r.decode(t, &o)
	if o.ResourceType != "OperationOutcome" || len(o.Issue) != 1 || o.Issue[0].Severity != "error" {
		t.Fatalf("not an OperationOutcome with one error: %s", r.body)
	}
	return o.Issue[0]
}

// hashOf is the stored form of a token.
func hashOf(token string) []byte { return auth.HashToken(token) }
