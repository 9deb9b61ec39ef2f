package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/bedside-health/bedside/auth"
	"github.com/bedside-health/bedside/store"
)

// TestBrowserBluetoothVitalsTurnedOff: while the patient's page relays a
// paired device, an admin turns vitals from the patient's browser off.
// The page stops reconnecting (each try would be refused and audited as a
// denial), tells the patient why their readings are not sent, and keeps
// what is measured meanwhile; Try again connects once more, and is
// refused once; once the clinic allows them again, Try again sends what
// was kept.
func TestBrowserBluetoothVitalsTurnedOff(t *testing.T) {
	chromium := chromiumPath(t)
	// Sockets re-check every 2 s rather than 30: the refusal below comes at
	// the open socket's next re-check.
	ts := startServer(t, map[string]string{"BEDSIDE_SOCKET_RECHECK": "2s"})
	link := bookFirstFree(t, ts)
	ctx := context.Background()
	db := testStore(t, ts)
	audit, err := sql.Open("sqlite", "file:"+filepath.Join(ts.Data, dbFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	patient := storedUser(t, db, "maria.silva@demo.bedside.test")

	b := newBrowser(t, chromium)
	setBrowserZone(t, b, "Asia/Tokyo") // the patient lives in Europe/Lisbon
	fake := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: fakeBluetooth})
		return err
	})
	if err := chromedp.Do(b, fake, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "pairing offered", `document.querySelector('#bluetooth').dataset.bluetooth === 'ready' && !document.querySelector('#bt-pair').hidden`, 15*time.Second)
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("#bt-pair"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "device connected", `document.querySelector('.bt-device')?.dataset.status === 'connected'`, 10*time.Second)
	emit := func(hr int) {
		t.Helper()
		if _, err := chromedp.Run(b, chromedp.Evaluate[bool](fmt.Sprintf(`window.__bt.emit(0x2a37, '00 %02x'); true`, hr))); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	emit(70)
	waitJS(t, b, "reading acknowledged", `document.querySelector('#bluetooth').dataset.pending === '0'`, 20*time.Second)
	// When it came, in the patient's zone as the page's heading, named.
	lisbon, err := time.LoadLocation("Europe/Lisbon")
	if err != nil {
		t.Fatal(err)
	}
	var last string
	jsEval(t, b, `document.querySelector('.bt-device .bt-last').textContent`, &last)
	if a, z := before.In(lisbon).Format("15:04"), time.Now().In(lisbon).Format("15:04"); last != "last reading "+a+" "+before.In(lisbon).Format("MST") && last != "last reading "+z+" "+time.Now().In(lisbon).Format("MST") &&
		!regexp.MustCompile(`^last reading (`+regexp.QuoteMeta(a)+`|`+regexp.QuoteMeta(z)+`) GMT(\+\d+)?$`).MatchString(last) {
		t.Errorf("%q, want the time in Lisbon (%s), named", last, a)
	}

	// The admin turns the browser's vitals off; the open socket is closed
	// at its next re-check.
	var browser store.Credential
	creds, err := db.ListCredentials(ctx, store.CredentialDevice, patient.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range creds {
		if c.Browser {
			browser = c
		}
	}
	if browser.ID == 0 {
		t.Fatal("no browser device after streaming")
	}
	if err := db.RevokeCredential(ctx, browser.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	offSaid := `(() => { const o = document.querySelector('#bt-off'); return document.querySelector('#bluetooth').dataset.relay === 'refused' && !o.hidden &&
	  /not reaching Dr Ada Okafor: vitals from this browser were turned off by the clinic/.test(o.textContent) && /visit and call go on/.test(o.textContent); })()`
	waitJS(t, b, "the patient is told why", offSaid, 60*time.Second) // the re-check runs every 2 s
	sockets := `window.__sockets.filter((s) => s.url.includes('/ws/device')).length`
	var opened int
	jsEval(t, b, sockets, &opened)
	emit(71) // measured while vitals are off: kept

	// An absence can only be watched for: the page used to reconnect
	// within a second, then every few seconds up to every 15 s.
	later := socketsAfter(t, b, sockets, 5*time.Second)
	if later != opened {
		t.Fatalf("the page opened %d more device sockets after being refused, want none until the patient asks", later-opened)
	}
	denials := func() int {
		var n int
		if err := audit.QueryRow(`SELECT count(*) FROM audit_events WHERE resource = 'Observation' AND outcome = 'denied'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	refusedBefore := denials()

	// Try again: one connection, refused with the reason at once.
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("#bt-retry"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "tried once more", fmt.Sprintf(`%s === %d`, sockets, opened+1), 10*time.Second)
	waitJS(t, b, "refused again, and said", offSaid, 20*time.Second)
	if later := socketsAfter(t, b, sockets, 5*time.Second); later != opened+1 {
		t.Fatalf("Try again opened %d device sockets, want 1", later-opened)
	}
	deadline := time.Now().Add(10 * time.Second)
	for denials() < refusedBefore+1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling the audit trail, not standing in for a signal
	}
	if n := denials() - refusedBefore; n != 1 {
		t.Errorf("Try again was audited as %d denials, want 1", n)
	}
	var pending string
	jsEval(t, b, `document.querySelector('#bluetooth').dataset.pending`, &pending)
	if pending != "1" {
		t.Errorf("%s readings kept while vitals are off, want the 1 measured meanwhile", pending)
	}
	shot(t, b, "/tmp/bedside-vitals-off.png")

	// The clinic allows them again (a new Web browser device): Try again
	// sends what was kept.
	_, hash := auth.NewToken()
	allowed, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: hash, UserID: patient.ID, Name: "Web browser", CreatedAt: time.Now(), Browser: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("#bt-retry"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "kept reading sent", `(() => { const r = document.querySelector('#bluetooth'); return r.dataset.relay === 'sending' && r.dataset.pending === '0' && document.querySelector('#bt-off').hidden; })()`, 20*time.Second)
	obs, err := db.ObservationsBetween(ctx, patient.ID, time.Now().Add(-5*time.Minute), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, o := range obs {
		got = append(got, o.Value)
	}
	if !slices.Equal(got, []float64{70, 71}) {
		t.Errorf("stored heart rates %v, want 70 and the 71 kept while vitals were off, once each", got)
	}

	// Turned off again, then the page reloaded: its first connection is
	// refused with the reason, said at once, and not tried again.
	if err := db.RevokeCredential(ctx, allowed.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "pairing offered after the reload", `document.querySelector('#bluetooth').dataset.bluetooth === 'ready' && !document.querySelector('#bt-pair').hidden`, 15*time.Second)
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("#bt-pair"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "device connected after the reload", `document.querySelector('.bt-device')?.dataset.status === 'connected'`, 10*time.Second)
	emit(72)
	waitJS(t, b, "the reloaded page is told why", offSaid, 20*time.Second)
	if n := socketsAfter(t, b, sockets, 5*time.Second); n != 1 {
		t.Errorf("the reloaded page opened %d device sockets, want 1", n)
	}
}

// socketsAfter evaluates count in the page once wait has passed there.
func socketsAfter(t *testing.T, b context.Context, count string, wait time.Duration) int {
	t.Helper()
	n, err := chromedp.Run(b, chromedp.Evaluate[int](fmt.Sprintf(`new Promise((r) => setTimeout(() => r(%s), %d))`, count, wait.Milliseconds()), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
