package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSessionEndedStopsTheSockets: the physician's session ends
// (signed out everywhere, timed out, or the account turned off) while
// the consult page is open. The server closes the page's sockets saying
// so; the page must stop reconnecting (each try would be refused), and
// tell the physician the page no longer updates, with a way to sign in
// again that comes back to this page.
func TestBrowserSessionEndedStopsTheSockets(t *testing.T) {
	chromium := chromiumPath(t)
	// Sockets re-check their session every 2 s rather than 30 (the
	// default), so the page hears of the ending soon.
	ts := startServer(t, map[string]string{"BEDSIDE_SOCKET_RECHECK": "2s"})
	visit := visitID(t, bookFirstFree(t, ts))
	doctor := newBrowser(t, chromium)
	openConsult(t, ts, doctor, ts.URL, visit)
	// Count the sockets the page opens from now on.
	if _, err := chromedp.Run(doctor, chromedp.Evaluate[bool](`window.__sockets = 0;
		window.WebSocket = class extends window.WebSocket {
			constructor(...args) { super(...args); window.__sockets++; }
		}; true`)); err != nil {
		t.Fatal(err)
	}

	db := testStore(t, ts)
	doc := storedUser(t, db, "dr.okafor@demo.bedside.test")
	if n, err := db.DeleteUserSessions(context.Background(), doc.ID); err != nil || n == 0 {
		t.Fatalf("ending the physician's sessions: %d ended, %v", n, err)
	}

	// The sockets re-check their session every 2 s (BEDSIDE_SOCKET_RECHECK).
	waitJS(t, doctor, "the page says the session ended",
		`!!document.querySelector('#session-ended[role=alert]') && /session has ended/.test(document.querySelector('#session-ended').textContent)`, 60*time.Second)
	var opened int
	jsEval(t, doctor, `window.__sockets`, &opened)
	// A reconnect would come within a second (the first retry waits about
	// half of one); give it five.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var now int
		jsEval(t, doctor, `window.__sockets`, &now)
		if now != opened {
			t.Fatalf("the page opened %d more sockets after its session ended", now-opened)
		}
		time.Sleep(250 * time.Millisecond)
	}
	var href string
	jsEval(t, doctor, `document.querySelector('#session-ended a').getAttribute('href')`, &href)
	if want := fmt.Sprintf("/login?next=%%2Fconsult%%2F%d", visit); href != want {
		t.Errorf("sign in again links to %q, want %q", href, want)
	}
}
