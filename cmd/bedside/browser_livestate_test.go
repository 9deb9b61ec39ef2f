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

// TestBrowserVitalsDeviceGone: the only device streaming to the patient
// disconnects. The status line stops saying the vitals are live and says
// the device is disconnected; the NEWS2 panel marks the inputs it
// measured as the overlay greys them (a continuous value as
// disconnected, a blood pressure as still measured, its device gone).
// When the device comes back, both say so.
func TestBrowserVitalsDeviceGone(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	visit := visitID(t, bookFirstFree(t, ts))
	doctor := newBrowser(t, chromium)
	openConsult(t, ts, doctor, ts.URL, visit)

	dev := dialDevice(t, ts)
	now := time.Now()
	dev.send(quantityObs("8867-4", "/min", 72, now))
	dev.send(quantityObs("59408-5", "%", 97, now))
	dev.send(quantityObs("9279-1", "/min", 16, now))
	dev.send(quantityObs("8310-5", "Cel", 37.1, now))
	dev.send(bloodPressureObs(124, 81, now))
	status := `(() => { const s = document.querySelector('#vitals-status'); return s.textContent + ' | ' + s.className; })()`
	waitJS(t, doctor, "status live", status+` === 'Vitals: live | vitals-status live'`, 20*time.Second)
	waitJS(t, doctor, "pulse and systolic measured on the panel",
		`/src-measured \| measured$/.test(`+news2Source("pulse")+`) && /src-measured \| measured$/.test(`+news2Source("systolic")+`)`, 20*time.Second)

	dev.conn.Close()
	waitJS(t, doctor, "overlay greys the heart rate", `document.querySelector('#tile-8867-4').dataset.deviceOff === 'true'`, 20*time.Second)
	waitJS(t, doctor, "status says the device is disconnected",
		`(() => { const s = document.querySelector('#vitals-status'); return /^Vitals: .+ disconnected$/.test(s.textContent) && !s.classList.contains('live') && s.classList.contains('off'); })()`,
		10*time.Second)
	for _, p := range []string{"pulse", "spo2", "respiration-rate", "temperature"} {
		waitJS(t, doctor, p+" marked disconnected on the panel", `/src-disconnected \| .+ disconnected$/.test(`+news2Source(p)+`)`, 10*time.Second)
	}
	// A blood pressure stays what it was, on the overlay and the panel.
	var bp struct {
		Panel string
		Stale string
	}
	jsEval(t, doctor, `({ panel: `+news2Source("systolic")+`, stale: document.querySelector('#tile-bp').dataset.stale || 'false' })`, &bp)
	if !regexp.MustCompile(`^news2-param src-measured \| measured, .+ since disconnected$`).MatchString(bp.Panel) || bp.Stale != "false" {
		t.Errorf("blood pressure after its device left: panel %q, overlay stale %s; want measured, its device's going said, not greyed", bp.Panel, bp.Stale)
	}
	shot(t, doctor, "/tmp/bedside-device-gone.png")

	// The device comes back: live again, and nothing marked disconnected.
	dialDevice(t, ts)
	waitJS(t, doctor, "status live again", status+` === 'Vitals: live | vitals-status live'`, 20*time.Second)
	waitJS(t, doctor, "panel no longer says disconnected", `!/disconnected/.test(document.querySelector('#news2-params').textContent)`, 10*time.Second)
}

// TestBrowserVitalsPhysicianZone: a physician in New York whose browser
// is set to Tokyo sees the overlay's and the NEWS2 panel's times in New
// York time, as every other page shows them, with the zone named.
func TestBrowserVitalsPhysicianZone(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	visit := visitID(t, bookFirstFree(t, ts))
	doctor := newBrowser(t, chromium)
	setBrowserZone(t, doctor, "Asia/Tokyo")
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

// setBrowserZone sets the time zone of b's page, as a machine set to
// zone would have it.
func setBrowserZone(t *testing.T, b context.Context, zone string) {
	t.Helper()
	set := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone})
		return err
	})
	if err := chromedp.Do(b, set); err != nil {
		t.Fatal(err)
	}
	var got string
	jsEval(t, b, `Intl.DateTimeFormat().resolvedOptions().timeZone`, &got)
	if got != zone {
		t.Fatalf("browser zone %q, want %s", got, zone)
	}
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
