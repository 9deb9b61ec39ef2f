package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// news2Source is the source text of a NEWS2 input on the panel, with its class.
func news2Source(param string) string {
	return `(() => { const li = document.querySelector('#news2-params li[data-param="` + param + `"]');
	  return li ? li.className + ' | ' + li.querySelector('.psource').textContent : ''; })()`
}

// TestBrowserVitalsPhysicianZone: a physician in New York whose browser
// is set to Tokyo sees the overlay's and the NEWS2 panel's times in New
// York time, as every other page shows them, with the zone named.
func TestBrowserVitalsPhysicianZone(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	visit := visitID(t, bookFirstFree(t, ts))
	doctor := newBrowser(t, chromium)
	tokyo := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"})
		return err
	})
	if err := chromedp.Do(doctor, tokyo); err != nil {
		t.Fatal(err)
	}
	var browserZone string
	jsEval(t, doctor, `Intl.DateTimeFormat().resolvedOptions().timeZone`, &browserZone)
	if browserZone != "Asia/Tokyo" {
		t.Fatalf("browser zone %q, want Asia/Tokyo", browserZone)
	}
	openConsult(t, ts, doctor, ts.URL, visit) // Dr Okafor works in America/New_York
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// clock is how t reads on a 24-hour clock in New York, with the zone's
	// short name as Chromium's locale gives it (EST, or GMT-5).
	clock := func(t time.Time) string {
		abbr, off := t.In(ny).Zone()
		return regexp.QuoteMeta(t.In(ny).Format("15:04")) + fmt.Sprintf(` (%s|GMT%+d)`, abbr, off/3600)
	}

	dev := dialDevice(t, ts)
	at := time.Now().Add(-2 * time.Minute)
	dev.send(bloodPressureObs(124, 81, at))
	waitJS(t, doctor, "blood pressure shown", `document.querySelector('#vital-bp').textContent === '124/81'`, 20*time.Second)
	var shown struct{ Text, Title string }
	jsEval(t, doctor, `(() => { const e = document.querySelector('#vital-bp-time'); return { text: e.textContent, title: e.title }; })()`, &shown)
	if !regexp.MustCompile(`^at ` + clock(at) + `$`).MatchString(shown.Text) {
		t.Errorf("blood pressure time %q, want %s in New York time, named (Tokyo would be %s)", shown.Text, at.In(ny).Format("15:04 MST"), at.In(time.FixedZone("JST", 9*3600)).Format("15:04"))
	}
	if !regexp.MustCompile(`America/New_York`).MatchString(shown.Title) {
		t.Errorf("blood pressure time's title %q does not name the physician's zone", shown.Title)
	}

	// An entry on the NEWS2 panel: its time too.
	before := time.Now()
	enterAlertOnAir(t, doctor)
	after := time.Now()
	want := regexp.MustCompile(`entered: alert, (` + clock(before) + `|` + clock(after) + `)$`)
	var entered string
	waitJS(t, doctor, "consciousness entered", `/entered: alert/.test(`+news2Source("consciousness")+`)`, 20*time.Second)
	jsEval(t, doctor, news2Source("consciousness"), &entered)
	if !want.MatchString(entered) {
		t.Errorf("NEWS2 entry %q, want its time in New York time, named (%s)", entered, want)
	}
	shot(t, doctor, "/tmp/bedside-zone.png")
}

// shot saves a screenshot of the page to path when BEDSIDE_SCREENSHOTS
// is set, to look at what a user sees.
func shot(t *testing.T, b context.Context, path string) {
	t.Helper()
	if os.Getenv("BEDSIDE_SCREENSHOTS") == "" {
		return
	}
	png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Logf("screenshot: %v", err)
	}
}
