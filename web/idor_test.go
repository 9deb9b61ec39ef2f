package web

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// TestGuessedIdentifiers walks sequential identifiers through every URL
// that takes one, as a patient and as an unrelated physician, over the web
// and FHIR: each may reach only their own records.
func TestGuessedIdentifiers(t *testing.T) {
	m := newMatrix(t)
	ctx := t.Context()
	// A few more visits, so that guessing has something to find.
	for i := range 4 {
		start := m.visit.End.Add(time.Duration(2+i) * time.Hour)
		if _, err := m.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: m.doc.ID, PatientID: m.other.ID,
			Start: start, End: start.Add(30 * time.Minute)}, store.Change{}); err != nil {
			t.Fatal(err)
		}
	}
	patientTok, hash := auth.NewToken()
	if _, err := m.st.CreateCredential(ctx, store.Credential{Kind: store.CredentialAPI, TokenHash: hash, UserID: m.pat.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	doc2Tok := m.apiTokenOf(t, m.doc2.ID)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(req *http.Request) (int, string) {
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for id := int64(1); id <= 12; id++ {
		for _, path := range []string{"/visit/%d", "/consult/%d", "/ws/call/%d", "/ws/vitals/%d", "/appointments/%d", "/patients/%d"} {
			u := m.srv.URL + fmt.Sprintf(path, id)
			// The visit's patient, by their join-link session: their own visit only.
			req, _ := http.NewRequest("GET", u, nil)
			m.as(t, req, patient)
			if st, _ := do(req); st < 400 && !(id == m.visit.ID && (path == "/visit/%d" || path == "/ws/call/%d")) {
				t.Errorf("patient reached %s: %d", fmt.Sprintf(path, id), st)
			}
			// A physician with no visit there reaches nothing of it.
			req, _ = http.NewRequest("GET", u, nil)
			m.as(t, req, otherPhysician)
			if st, _ := do(req); st < 400 {
				a, err := m.st.AppointmentByID(ctx, id)
				if err != nil || a.PhysicianID != m.doc2.ID {
					t.Errorf("another physician reached %s: %d", fmt.Sprintf(path, id), st)
				}
			}
		}
		// WHIP and WHEP, with the patient's and the other physician's own
		// API tokens: their visits only (a 4xx either way: the offer here
		// carries no ICE credentials).
		for _, path := range []string{"/whip/%d", "/whep/%d", "/whip/%d/00000000000000000000000000000001"} {
			for who, tok := range map[string]string{patient: patientTok, otherPhysician: doc2Tok} {
				method := http.MethodPost
				if strings.Count(path, "/") == 3 {
					method = http.MethodDelete
				}
				req, _ := http.NewRequest(method, m.srv.URL+fmt.Sprintf(path, id), strings.NewReader(probeOffer))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/sdp")
				st, body := do(req)
				mine := who == patient && id == m.visit.ID || who == otherPhysician && id == m.otherVisit.ID
				if !mine && st != http.StatusForbidden && st != http.StatusNotFound {
					t.Errorf("%s %s as %s: %d %s, want 403 or 404", method, fmt.Sprintf(path, id), who, st, body)
				}
			}
		}
		// FHIR, with the patient's own API token.
		for _, res := range []string{"Appointment", "Patient"} {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/fhir/%s/%d", m.srv.URL, res, id), nil)
			req.Header.Set("Authorization", "Bearer "+patientTok)
			st, body := do(req)
			own := res == "Patient" && id == m.pat.ID || res == "Appointment" && id == m.visit.ID
			if st == http.StatusOK && !own {
				t.Errorf("patient read %s/%d over FHIR", res, id)
			}
			if st == http.StatusOK && strings.Contains(body, m.other.Email) {
				t.Errorf("%s/%d carries another patient's email", res, id)
			}
		}
	}
	// A guest of the visit, their cookie sent everywhere, reaches no visit
	// by its number: the guest routes take no identifier at all.
	guestTok, _ := m.guestLinkOf(t, "Guessing Guest")
	for id := int64(1); id <= 12; id++ {
		for _, path := range []string{"/visit/%d", "/consult/%d", "/ws/call/%d", "/ws/vitals/%d", "/appointments/%d", "/patients/%d", "/visits/%d/record", "/patients/%d/chart"} {
			req, _ := http.NewRequest("GET", m.srv.URL+fmt.Sprintf(path, id), nil)
			req.AddCookie(&http.Cookie{Name: guestCookie, Value: guestTok})
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !refused(resp) {
				t.Errorf("a guest reached %s: %d", fmt.Sprintf(path, id), resp.StatusCode)
			}
		}
	}
	// Another physician, through their own visit, guessing guest link
	// numbers of this one: nothing is withdrawn.
	for gid := int64(1); gid <= 12; gid++ {
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/consult/%d/guests/%d/revoke", m.srv.URL, m.otherVisit.ID, gid), nil)
		m.as(t, req, otherPhysician)
		if st, _ := do(req); st != http.StatusNotFound {
			t.Errorf("another physician revoking guest link %d through their visit: %d, want 404", gid, st)
		}
	}
	links, err := m.st.GuestLinks(ctx, m.visit.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if !l.RevokedAt.IsZero() && l.ID != m.revokedGuestID {
			t.Errorf("guest link %d of the visit was revoked by guessing", l.ID)
		}
	}

	// A search without parameters finds the patient's own visits only.
	req, _ := http.NewRequest("GET", m.srv.URL+"/fhir/Appointment", nil)
	req.Header.Set("Authorization", "Bearer "+patientTok)
	st, body := do(req)
	if st != http.StatusOK || !strings.Contains(body, `"total":1`) && !strings.Contains(body, `"total": 1`) {
		t.Errorf("patient's Appointment search: %d %s", st, body)
	}
}

// probeOffer is an SDP offer that passes the WHIP front door's checks.
const probeOffer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n"
