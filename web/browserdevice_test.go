package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/audit"
	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
)

// browserDeviceID is the device the patient's browser streams as (0 if none).
func browserDeviceID(t *testing.T, f *fixture) int64 {
	t.Helper()
	creds, err := f.st.ListCredentials(t.Context(), store.CredentialDevice, f.pat.ID)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	for _, c := range creds {
		if c.Browser && c.ID > id {
			id = c.ID
		}
	}
	return id
}

// dialBrowser opens the device socket of a patient's browser with the
// visit session patient, and returns it with the first ack it is sent
// (the device's stored sequence); it is closed when the test ends.
func dialBrowser(t *testing.T, f *fixture, patient *http.Client) (*websocket.Conn, int64) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), f.cookieHeader(patient))
	if err != nil {
		t.Fatalf("the patient's browser connects: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first reply
	if err := ws.ReadJSON(&first); err != nil || first.Ack == nil {
		t.Fatalf("the browser's first message %+v (%v), want an ack", first, err)
	}
	return ws, *first.Ack
}

// TestRevokedBrowserDeviceIsDisconnected: the admin's user page lists a
// patient's "Web browser" device, with which the patient's browser relays
// their paired devices, like any other, and revoking it turns vitals from
// that browser off: its open socket closes within the re-check interval
// and its next connection is refused, rather than streaming again under a
// new "Web browser" device.
func TestRevokedBrowserDeviceIsDisconnected(t *testing.T) {
	f := recheckFixture(t)
	patient := f.joinClient(t, f.visit)
	ws, _ := dialBrowser(t, f, patient)
	if ack := lastAck(t, sendFrame(t, ws, envelope(1, "59408-5", 96, "%", ""))); ack != 1 {
		t.Fatalf("ack %d", ack)
	}
	browser := browserDeviceID(t, f)
	if browser == 0 {
		t.Fatal("no browser device credential")
	}
	if err := f.st.RevokeCredential(t.Context(), browser, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Re-checked every 5 ms here: the five seconds awaitCloseCode waits
	// are a thousand re-checks.
	awaitCloseCode(t, ws, websocket.ClosePolicyViolation, "turned off by the clinic")
	// Refused in words a browser can read: closed at once with 1008 and
	// the reason, never an ack.
	again, _, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), f.cookieHeader(patient))
	if err != nil {
		t.Fatalf("reconnecting: %v, want the upgrade closed with 1008", err)
	}
	defer again.Close()
	awaitCloseCode(t, again, websocket.ClosePolicyViolation, "turned off by the clinic")
	if got := browserDeviceID(t, f); got != browser {
		t.Fatalf("the refused connection made browser device %d", got)
	}
}

// TestAdminTurnsBrowserVitalsOffAndOn: on the admin's page of a patient,
// revoking the "Web browser" device says what it does (the browser is
// refused until allowed again, the visit goes on) and closes the
// browser's socket; "Allow again" lets the browser stream once more as a
// new device. Both are audited as the admin's.
func TestAdminTurnsBrowserVitalsOffAndOn(t *testing.T) {
	f, adm, admin := adminFixture(t)
	patURL := fmt.Sprintf("%s/admin/users/%d", f.srv.URL, f.pat.ID)
	patient := f.joinClient(t, f.visit)
	dial := func() (*websocket.Conn, *http.Response, error) {
		return websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), f.cookieHeader(patient))
	}
	ws, _, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	browser := browserDeviceID(t, f)
	status, body := adminPost(t, admin, fmt.Sprintf("%s/credentials/%d/revoke", patURL, browser), nil)
	if status != http.StatusOK || !strings.Contains(body, "refused until you allow it again") || !strings.Contains(body, "Allow again") {
		t.Fatalf("revoking the browser device: %d; the page must say what it does and offer to allow it again", status)
	}
	awaitCloseCode(t, ws, websocket.ClosePolicyViolation, "turned off by the clinic")
	again, _, err := dial()
	if err != nil {
		t.Fatalf("the browser reconnecting after its device was revoked: %v, want the upgrade closed with 1008", err)
	}
	awaitCloseCode(t, again, websocket.ClosePolicyViolation, "turned off by the clinic")
	again.Close()
	status, body = adminPost(t, admin, patURL+"/browser-vitals", nil)
	if status != http.StatusOK || !strings.Contains(body, "allowed again") {
		t.Fatalf("allowing browser vitals again: %d", status)
	}
	allowed := browserDeviceID(t, f)
	if allowed == browser {
		t.Fatal("allowing again made no new browser device")
	}
	ws2, _, err := dial()
	if err != nil {
		t.Fatalf("the browser after it was allowed again: %v", err)
	}
	defer ws2.Close()
	_ = ws2.SetReadDeadline(time.Now().Add(10 * time.Second))
	var first reply
	if err := ws2.ReadJSON(&first); err != nil || first.Ack == nil {
		t.Fatalf("first message %+v (%v)", first, err)
	}
	if got := browserDeviceID(t, f); got != allowed {
		t.Fatalf("the browser streams as device %d, want %d", got, allowed)
	}
	for _, want := range []struct {
		action, ref string
	}{{audit.ActionDelete, audit.Ref("Credential", browser)}, {audit.ActionCreate, audit.Ref("Credential", allowed)}} {
		events, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{ActorID: adm.ID, Action: want.action})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range events {
			found = found || e.Resource == want.ref && e.PatientID == f.pat.ID && e.Outcome == audit.OutcomeSuccess
		}
		if !found {
			t.Errorf("no audit event %s %s by the admin for the patient in %+v", want.action, want.ref, events)
		}
	}
}

// TestHubNamedWebBrowserIsNotTakenByTheBrowser: an admin adds a hub for the
// patient and names it "Web browser" (a device may have any name). The
// patient's browser, streaming with its visit session, must not stream as
// that hub: the two would replace each other's connection and share one
// sequence, so the hub's readings whose numbers the browser used would be
// acked as stored and dropped. The browser streams as a device of its own,
// marked as the browser's, and the hub's connection stays.
func TestHubNamedWebBrowserIsNotTakenByTheBrowser(t *testing.T) {
	f := newFixture(t)
	tok, hash := auth.NewToken()
	hub, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialDevice, TokenHash: hash,
		UserID: f.pat.ID, Name: browserDevice, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	dev := dialDevice(t, f, tok)
	if ack := lastAck(t, sendFrame(t, dev, envelope(1, "8867-4", 70, "/min", ""))); ack != 1 {
		t.Fatalf("hub ack %d", ack)
	}
	patient := f.joinClient(t, f.visit)
	ws, first := dialBrowser(t, f, patient)
	if first != 0 {
		t.Fatalf("the patient's browser streams as hub device %d: its first ack is the hub's %d", hub.ID, first)
	}
	browser := browserDeviceID(t, f)
	if browser == 0 || browser == hub.ID {
		t.Fatalf("the browser streams as device %d, want one of its own beside hub %d", browser, hub.ID)
	}
	// Both stream on: the hub's next reading is stored under its own
	// sequence, its connection never replaced by the browser's.
	if ack := lastAck(t, sendFrame(t, dev, envelope(2, "8867-4", 71, "/min", ""))); ack != 2 {
		t.Fatalf("hub ack %d after the browser connected, want 2", ack)
	}
	if ack := lastAck(t, sendFrame(t, ws, envelope(1, "59408-5", 97, "%", ""))); ack != 1 {
		t.Fatalf("browser ack %d, want 1", ack)
	}
	obs, _, err := f.st.SearchObservations(t.Context(), store.ObservationQuery{PatientID: f.pat.ID})
	if err != nil {
		t.Fatal(err)
	}
	perDevice := map[int64]int{}
	for _, o := range obs {
		perDevice[o.DeviceID]++
	}
	if perDevice[hub.ID] != 2 || perDevice[browser] != 1 {
		t.Fatalf("stored readings per device %v, want 2 from hub %d and 1 from browser %d", perDevice, hub.ID, browser)
	}
}

// TestExpiredBrowserDeviceIsRefused: a browser's device past its expiry is
// refused like a revoked one, with no new device made behind it.
func TestExpiredBrowserDeviceIsRefused(t *testing.T) {
	f := newFixture(t)
	_, hash := auth.NewToken()
	old, err := f.st.CreateCredential(t.Context(), store.Credential{Kind: store.CredentialDevice, TokenHash: hash, UserID: f.pat.ID,
		Name: browserDevice, Browser: true, CreatedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	patient := f.joinClient(t, f.visit)
	ws, _, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), f.cookieHeader(patient))
	if err != nil {
		t.Fatalf("connecting: %v, want the upgrade closed with 1008", err)
	}
	awaitCloseCode(t, ws, websocket.ClosePolicyViolation, "turned off by the clinic")
	ws.Close()
	if got := browserDeviceID(t, f); got != old.ID {
		t.Fatalf("the refused connection made browser device %d", got)
	}
}

// auditedCreate says whether actor's creation of credential id for the
// patient was audited as a success.
func auditedCreate(t *testing.T, f *fixture, actor, id int64) bool {
	t.Helper()
	events, _, err := f.st.AuditEvents(t.Context(), store.AuditQuery{ActorID: actor, Action: audit.ActionCreate})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Resource == audit.Ref("Credential", id) && e.PatientID == f.pat.ID && e.Outcome == audit.OutcomeSuccess {
			return true
		}
	}
	return false
}

// TestBrowserDeviceMadeAtFirstConnectionIsAudited: the patient's browser's
// first connection makes the device it streams as, a credential for the
// patient's data: audited as the patient's creation of it.
func TestBrowserDeviceMadeAtFirstConnectionIsAudited(t *testing.T) {
	f, _, _ := adminFixture(t)
	patient := f.joinClient(t, f.visit)
	ws, _, err := websocket.DefaultDialer.Dial(f.wsURL("/ws/device"), f.cookieHeader(patient))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	browser := browserDeviceID(t, f)
	if browser == 0 {
		t.Fatal("no browser device made")
	}
	if !auditedCreate(t, f, f.pat.ID, browser) {
		t.Fatalf("the browser's device %d, made at its first connection, was not audited as the patient's creation", browser)
	}
}

// TestAdminAllowingBrowserVitalsFirstIsAudited: an admin's "allow browser
// vitals" for a patient whose browser never streamed makes the browser's
// device then, audited as the admin's creation of it.
func TestAdminAllowingBrowserVitalsFirstIsAudited(t *testing.T) {
	f, adm, admin := adminFixture(t)
	status, body := adminPost(t, admin, fmt.Sprintf("%s/admin/users/%d/browser-vitals", f.srv.URL, f.pat.ID), nil)
	if status != http.StatusOK || !strings.Contains(body, "allowed again") {
		t.Fatalf("allowing browser vitals: %d", status)
	}
	browser := browserDeviceID(t, f)
	if browser == 0 {
		t.Fatal("no browser device made")
	}
	if !auditedCreate(t, f, adm.ID, browser) {
		t.Fatalf("the browser's device %d, made by the admin, was not audited as the admin's creation", browser)
	}
}
