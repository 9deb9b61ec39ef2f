package main

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestAdminPagesOnTheRunningServer: on the real server, an admin added
// from the command line revokes the demo hub's device token and
// deactivates the scheduler from the admin pages; the token no longer
// opens /ws/device, and the scheduler's open session and sign-in are
// refused.
func TestAdminPagesOnTheRunningServer(t *testing.T) {
	ts := startServer(t, nil)
	const pw = "granite pelican orchestra"
	ts.cli(t, pw+"\n", "user", "add", "--role", "admin", "--email", "admin@example.org", "--name", "Ada Admin")
	adm := client(t)
	signIn(t, adm, ts.URL, "admin@example.org", pw)
	sched := client(t)
	const schedEmail = "scheduler@demo.bedside.test"
	signIn(t, sched, ts.URL, schedEmail, ts.demoPassword(t, schedEmail))

	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws/device"
	token := ts.demoDeviceToken(t)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatalf("the demo hub before revocation: %v", err)
	}
	ws.Close()

	// Find the accounts on the admin's list, and the hub on its patient's page.
	idOf := func(email string) string {
		t.Helper()
		status, body := get(t, adm, ts.URL+"/admin/users?q="+url.QueryEscape(email))
		m := regexp.MustCompile(`href="/admin/users/(\d+)"`).FindStringSubmatch(body)
		if status != http.StatusOK || m == nil || !strings.Contains(body, email) {
			t.Fatalf("the admin's search for %s: %d", email, status)
		}
		return m[1]
	}
	patient := idOf("maria.silva@demo.bedside.test")
	status, body := get(t, adm, ts.URL+"/admin/users/"+patient)
	m := regexp.MustCompile(`action="(/admin/users/` + patient + `/credentials/\d+/revoke)"`).FindStringSubmatch(body)
	if status != http.StatusOK || m == nil || !strings.Contains(body, "Home vitals hub") {
		t.Fatalf("the patient's page lists no revocable hub: %d", status)
	}
	if strings.Contains(body, token) {
		t.Fatal("the patient's page shows the device token")
	}
	postOK := func(path string) {
		t.Helper()
		resp, err := adm.PostForm(ts.URL+path, url.Values{})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d", path, resp.StatusCode)
		}
	}
	postOK(m[1])
	_, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + token}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the revoked hub connecting: %v, want 401", err)
	}

	if status, _ := get(t, sched, ts.URL+"/schedule"); status != http.StatusOK {
		t.Fatalf("the scheduler's page before deactivation: %d", status)
	}
	postOK(fmt.Sprintf("/admin/users/%s/deactivate", idOf(schedEmail)))
	if status, _ := get(t, sched, ts.URL+"/schedule"); status != http.StatusSeeOther {
		t.Errorf("the scheduler's old session after deactivation: %d, want a redirect to sign in", status)
	}
	resp, err = client(t).PostForm(ts.URL+"/login", url.Values{"email": {schedEmail}, "password": {ts.demoPassword(t, schedEmail)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the deactivated scheduler signing in: %d, want 401", resp.StatusCode)
	}
}
