package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
	"github.com/chromedp/chromedp"
)

// screenshot saves what b shows as name.png in $BEDSIDE_SCREENSHOTS, when
// that is set, for a person to look at; otherwise it does nothing.
func screenshot(t *testing.T, b context.Context, name string) {
	t.Helper()
	dir := os.Getenv("BEDSIDE_SCREENSHOTS")
	if dir == "" {
		return
	}
	// The call's stage (video and overlay) at the top of the window.
	_, _ = chromedp.Run(b, chromedp.Evaluate[bool](`(() => { const s = document.querySelector('#stage') || document.querySelector('main'); if (s) scrollTo(0, s.getBoundingClientRect().top + scrollY - 8); return true; })()`))
	png, err := chromedp.Run(b, chromedp.CaptureScreenshot())
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	}
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}

// buildDevicesim builds cmd/devicesim into the test's temporary folder.
func buildDevicesim(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devicesim")
	if out, err := exec.Command("go", "build", "-o", bin, "../devicesim").CombinedOutput(); err != nil {
		t.Fatalf("build devicesim: %v\n%s", err, out)
	}
	return bin
}

// devicesimSummary is devicesim's closing line.
type devicesimSummary struct{ measured, acked, rejected, unacked, readings, waves int }

var devicesimSummaryRE = regexp.MustCompile(`devicesim: (\d+) messages measured, (\d+) acknowledged \((\d+) of them rejected\), (\d+) unacknowledged; (\d+) readings and (\d+) waveform chunks`)

func parseDevicesimSummary(t *testing.T, out string) devicesimSummary {
	t.Helper()
	m := devicesimSummaryRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in devicesim's output:\n%s", out)
	}
	n := make([]int, len(m)-1)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return devicesimSummary{n[0], n[1], n[2], n[3], n[4], n[5]}
}

// TestBrowserDoneWhen is issue 5's "Done when" as a physician lives it, in
// one go: the patient joins from home, where their vitals hub runs
// devicesim's deteriorating scenario; the physician admits them, sees the
// numbers and the ECG strip move on the patient's video, the NEWS2 band
// change and its alert raised once, and acknowledges it; the patient's home
// network goes down for ten seconds (the hub's link and the patient's
// browser alike) and comes back; no reading is lost: every one devicesim
// measured is acknowledged, stored once, shown live to the physician and
// counted on the visit record; the physician completes the visit and exports
// it as a FHIR Bundle whose Observations name the Encounter and the Device,
// with blood pressure as the panel and NEWS2 as a derived Observation.
//
// With BEDSIDE_SCREENSHOTS=DIR it saves what both see along the way.
func TestBrowserDoneWhen(t *testing.T) {
	chromium := chromiumPath(t)
	sim := buildDevicesim(t)
	ts := startServer(t, nil)
	// The patient's home network: their browser and their hub reach the
	// clinic's server through it.
	home := newCutProxy(t, strings.TrimPrefix(ts.URL, "http://"))
	link := strings.Replace(bookFirstFree(t, ts), ts.URL, home.URL(), 1)

	patient := newBrowser(t, chromium)
	if err := chromedp.Do(patient, chromedp.EmulateViewport(1280, 720), chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, patient, "join button enabled", `!document.querySelector('#join-button').disabled`, 20*time.Second)
	if err := chromedp.Do(patient, chromedp.Click(chromedp.CSS("#join-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, patient, "patient waiting", `document.querySelector('#call-state').dataset.state === 'waiting'`, 15*time.Second)
	loc, err := chromedp.Run(patient, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	visit, _ := strconv.Atoi(loc[strings.LastIndex(loc, "/")+1:])

	// The physician, on a laptop screen, opens the visit, starts it, admits
	// the patient and enters what no device measures.
	doctor := newBrowser(t, chromium)
	if err := chromedp.Do(doctor, chromedp.EmulateViewport(1366, 768)); err != nil {
		t.Fatal(err)
	}
	openConsult(t, ts, doctor, ts.URL, visit)
	waitJS(t, doctor, "start button enabled", `!document.querySelector('#start-button').disabled`, 20*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#start-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "patient in the lobby", `!!document.querySelector('#lobby button.admit')`, 20*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#lobby button.admit"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "physician sees the patient's video", videoPlaying, 30*time.Second)
	enterAlertOnAir(t, doctor)

	// The hub streams the deteriorating patient. Its first round is the
	// patient still well; the ramp is over by the next, so the band goes
	// from low to high in one step and holds (a ramp of minutes is the
	// same story, slower).
	cmd := exec.Command(sim, "--token", ts.demoDeviceToken(t),
		"--url", strings.Replace(home.URL(), "http://", "ws://", 1)+"/ws/device",
		"--scenario", "deteriorating", "--ramp", "500ms", "--rate", "500ms", "--seed", "5")
	simOut := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = simOut, simOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	simDone := make(chan error, 1)
	go func() { simDone <- cmd.Wait() }()
	// stopSim interrupts devicesim, which then waits briefly for the last
	// acks and prints its summary.
	var simErr error
	stopSim := sync.OnceFunc(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case simErr = <-simDone:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			simErr = fmt.Errorf("devicesim did not stop on SIGINT: %v", <-simDone)
		}
	})
	defer func() {
		stopSim()
		if t.Failed() {
			t.Logf("devicesim:\n%s", simOut.String())
		}
	}()

	// Numbers, the device's status and the strip on the patient's video.
	waitJS(t, doctor, "the hub shown connected", `!!document.querySelector('#vitals-devices li[data-state="connected"]')`, 20*time.Second)
	for _, id := range []string{"8867-4", "59408-5", "bp", "8310-5", "9279-1"} {
		waitJS(t, doctor, id+" shown", `/\d/.test(document.querySelector('#vital-`+id+`').textContent)`, 20*time.Second)
	}
	waitJS(t, doctor, "the ECG strip drawn", `!document.querySelector('#vitals-strip').hidden && /^ECG II/.test(document.querySelector('#vitals-strip-label').textContent) && window.bedsideVitals.strip.stats.played > 250`, 20*time.Second)
	// Smooth: a second later it has played about a second more of the
	// trace (250 samples at 250 Hz) and drawn many frames.
	waitJS(t, doctor, "the strip moves", `(async () => {
  const s = window.bedsideVitals.strip, p0 = s.stats.played, d0 = s.drawn, t0 = performance.now();
  await new Promise((r) => setTimeout(r, 1000));
  const secs = (performance.now() - t0) / 1000;
  return s.stats.played - p0 >= 150 * secs && s.drawn - d0 >= 10 * secs;
})()`, 20*time.Second)
	// The band changes, on the panel beside the video.
	waitJS(t, doctor, "NEWS2 band high", `document.querySelector('#news2-panel').dataset.band === 'high' && +document.querySelector('#news2-total').textContent >= 7`, 30*time.Second)
	// One blood pressure so far: no sparkline yet (it drew a dot for each
	// of systolic and diastolic, a stray colon under the value).
	waitJS(t, doctor, "no blood-pressure trend from one reading", `(() => { const c = document.querySelector('#tile-bp canvas.spark');
		return c.width > 0 && !c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v !== 0); })()`, 5*time.Second)
	screenshot(t, doctor, "1-physician-band-high")

	// The patient's home network goes down for ten seconds: the physician
	// sees the hub disconnected, then connected again.
	home.cut()
	waitJS(t, doctor, "the hub shown disconnected", `!!document.querySelector('#vitals-devices li[data-state="disconnected"]')`, 20*time.Second)
	waitJS(t, patient, "the patient's page noticed", `document.querySelector('#call-state').dataset.state === 'reconnecting'`, 20*time.Second)
	// The hub's last numbers are no longer live: greyed and said so at once,
	// not shown as current until their staleness window runs out; the
	// blood pressure, a spot reading shown with its time, stays as it is.
	waitJS(t, doctor, "the hub's numbers marked as from a disconnected device", `['8867-4', '59408-5', '8310-5', '9279-1'].every((c) => {
		const e = document.querySelector('#tile-' + c);
		return e.dataset.deviceOff === 'true' && e.classList.contains('stale') && e.querySelector('.stale-note').textContent === 'disconnected';
	}) && document.querySelector('#tile-bp').dataset.deviceOff !== 'true'`, 5*time.Second)
	screenshot(t, doctor, "2-physician-network-cut")
	screenshot(t, patient, "2-patient-network-cut")
	time.Sleep(10 * time.Second) // the outage itself, not a synchronisation
	home.restore()
	waitJS(t, doctor, "the hub shown connected again", `!document.querySelector('#vitals-devices li[data-state="disconnected"]') && !!document.querySelector('#vitals-devices li[data-state="connected"]')`, 30*time.Second)
	waitJS(t, doctor, "the hub's numbers live again", `['8867-4', '59408-5', '8310-5', '9279-1'].every((c) => {
		const e = document.querySelector('#tile-' + c);
		return e.dataset.deviceOff === 'false' && !e.classList.contains('stale');
	})`, 20*time.Second)
	waitJS(t, patient, "the patient back in the call", `document.querySelector('#call-state').dataset.state === 'in-call'`, 30*time.Second)

	// The band alert, once the band has held, raised once; acknowledged.
	bandAlerts := `[...document.querySelectorAll('#news2-alerts .news2-alert')].filter((b) => /band rose/.test(b.textContent))`
	waitJS(t, doctor, "the band alert", bandAlerts+`.length === 1 && /band rose to high/.test(`+bandAlerts+`[0].textContent)`, 60*time.Second)
	// On the laptop screen, at the top of the page, the banner is in view
	// beside the patient's video: an alert below the fold is not seen.
	waitJS(t, doctor, "the band alert in view", `(() => { scrollTo(0, 0); const r = `+bandAlerts+`[0].getBoundingClientRect();
		return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight; })()`, 5*time.Second)
	screenshot(t, doctor, "3-physician-alert")
	if _, err := chromedp.Run(doctor, chromedp.Evaluate[bool](bandAlerts+`[0].querySelector('button').click() || true`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "band alert acknowledged", bandAlerts+`.length === 1 && `+bandAlerts+`[0].dataset.state === 'acknowledged'`, 15*time.Second)

	// The hub stops cleanly: it says what it measured and that the server
	// acknowledged all of it.
	stopSim()
	if simErr != nil {
		t.Fatalf("devicesim: %v\n%s", simErr, simOut.String())
	}
	sum := parseDevicesimSummary(t, simOut.String())
	if sum.acked != sum.measured || sum.unacked != 0 || sum.rejected != 0 || sum.readings == 0 || sum.waves == 0 {
		t.Fatalf("devicesim: %+v, want every message acknowledged, none rejected\n%s", sum, simOut.String())
	}
	if !strings.Contains(simOut.String(), "disconnected") {
		t.Fatalf("devicesim did not lose its link during the outage:\n%s", simOut.String())
	}

	// Every reading stored once, with no sequence missing: the device's
	// sequences of stored readings and of the waveform chunks make up 1..N.
	// Read through the store, which keeps a call's readings as one pack.
	db, err := sqlite.Open(context.Background(), filepath.Join(ts.Data, "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored, _, err := db.SearchObservations(context.Background(), store.ObservationQuery{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	seqs := make(map[int64]bool)
	var rows, maxSeq int
	for _, o := range stored {
		if o.Seq > 0 {
			seqs[o.Seq] = true
			rows++
			maxSeq = max(maxSeq, int(o.Seq))
		}
	}
	envelopes := len(seqs)
	if envelopes != sum.readings {
		t.Fatalf("%d readings stored, devicesim measured %d", envelopes, sum.readings)
	}
	// Every reading reached the physician's page, once, with no gap.
	var live struct {
		Readings int
		InOrder  bool
	}
	// Each stream message has the next offset (the snapshot has none): a
	// gap would skip some.
	jsEval(t, doctor, `(() => { const l = window.bedsideVitals.log.filter((m) => typeof m.offset === 'number');
		return { readings: l.filter((m) => m.type === 'reading').length, inOrder: l.every((m, i) => i === 0 || m.offset === l[i-1].offset + 1) }; })()`, &live)
	if live.Readings != rows || !live.InOrder {
		t.Fatalf("the physician's page saw %d readings (offsets consecutive: %v), want all %d stored, none missed",
			live.Readings, live.InOrder, rows)
	}

	// The physician leaves, completes the visit on its record, which counts
	// every reading, and exports it.
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#leave-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the record link", `!!document.querySelector('#record-link') && !document.querySelector('#left-panel').hidden`, 15*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#record-link"))); err != nil {
		t.Fatal(err)
	}
	// Loaded in full, so the button is where it will stay when clicked.
	waitJS(t, doctor, "the record", fmt.Sprintf(`location.pathname === '/visits/%d/record' && document.readyState === 'complete' && !!document.querySelector('form.complete-visit button')`, visit), 15*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("form.complete-visit button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the visit completed", `/The visit is marked completed/.test(document.body.innerText)`, 30*time.Second)
	screenshot(t, doctor, "4-record")
	waitJS(t, doctor, "the record counts every reading", fmt.Sprintf(`new RegExp('\\b%d readings during the visit').test(document.body.innerText)`, rows), 5*time.Second)
	waitJS(t, doctor, "the timeline shows the alert and its acknowledgement", `(() => { const t = document.body.innerText;
		return /NEWS2 band rose to high\s+raised/.test(t) && /NEWS2 band rose to high\s+acknowledged by Dr Ada Okafor/.test(t) &&
		  /Home vitals hub\s+disconnected/.test(t); })()`, 5*time.Second)

	var bundle struct {
		ResourceType string
		Type         string
		Entry        []struct {
			FullURL  string
			Resource struct {
				ResourceType string
				ID           string
				Status       string
				Code         struct {
					Coding []struct{ System, Code string }
				}
				Encounter   *struct{ Reference string }
				Device      *struct{ Reference string }
				DerivedFrom []struct{ Reference string }
				Component   []struct {
					Code          struct{ Coding []struct{ Code string } }
					ValueQuantity *struct {
						Value float64
						Code  string
					}
				}
				ValueQuantity *struct {
					Value float64
					Code  string
				}
				ValueInteger *int
			}
		}
	}
	raw, err := chromedp.Run(doctor, chromedp.Evaluate[string](`(async () => {
  const a = [...document.querySelectorAll('a')].find((a) => a.textContent === 'Export FHIR');
  const r = await fetch(a.href);
  return r.ok && /^application\/fhir\+json/.test(r.headers.get('Content-Type')) ? await r.text() : 'status ' + r.status + ', ' + r.headers.get('Content-Type');
})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &bundle); err != nil {
		t.Fatalf("export: %v (%.300s)", err, raw)
	}
	if bundle.ResourceType != "Bundle" {
		t.Fatalf("export: %+v, want a Bundle", bundle)
	}
	var encounter, device string
	kinds := map[string]int{}
	for _, e := range bundle.Entry {
		r := e.Resource
		kinds[r.ResourceType]++
		switch r.ResourceType {
		case "Encounter":
			encounter = "Encounter/" + r.ID
			if r.Status != "finished" {
				t.Errorf("Encounter status %q, want finished", r.Status)
			}
		case "Device":
			device = "Device/" + r.ID
		}
	}
	if encounter == "" || device == "" {
		t.Fatalf("export holds %v, want an Encounter and the Device", kinds)
	}
	var panels, news2, readings int
	for _, e := range bundle.Entry {
		r := e.Resource
		if r.ResourceType != "Observation" || len(r.Code.Coding) == 0 {
			continue
		}
		code := r.Code.Coding[0].Code
		if r.Encounter == nil || r.Encounter.Reference != encounter {
			t.Fatalf("Observation %s (%s) not linked to %s", r.ID, code, encounter)
		}
		switch {
		case code == "85354-9":
			panels++
			if len(r.Component) != 2 || r.Component[0].ValueQuantity == nil || r.Component[0].ValueQuantity.Code != "mm[Hg]" {
				t.Errorf("blood pressure %s: components %+v, want systolic and diastolic in mm[Hg]", r.ID, r.Component)
			}
		case code == "1104051000000101" || strings.Contains(strings.ToLower(r.Code.Coding[0].System), "news"):
			news2++
			if len(r.DerivedFrom) == 0 || r.ValueInteger == nil || *r.ValueInteger < 7 {
				t.Errorf("NEWS2 %s: value %v, derived from %d, want a score of 7+ derived from the readings", r.ID, r.ValueInteger, len(r.DerivedFrom))
			}
			continue
		case code == "8480-6" || code == "8462-4":
			t.Errorf("blood pressure exported as a lone %s, not as the panel", code)
		}
		readings++
		if r.Device == nil || r.Device.Reference != device {
			t.Errorf("Observation %s (%s) not linked to %s", r.ID, code, device)
		}
	}
	if panels == 0 || news2 == 0 {
		t.Fatalf("export: %d blood-pressure panels, %d NEWS2 scores; want both", panels, news2)
	}
	if readings != sum.readings {
		t.Errorf("export holds %d device Observations, devicesim measured %d readings", readings, sum.readings)
	}
}
