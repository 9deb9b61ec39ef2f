package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium. Outside CI a machine without it skips
// the browser test; in CI its absence is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BEDSIDE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs Debian's chromium package")
	}
	t.Skip("chromium not installed (apt-get install chromium); CI fails instead of skipping")
	return ""
}

// newBrowser starts a headless Chromium with a fake camera and microphone and
// its own profile, so two browsers hold two different sessions.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// recordPeerConnections makes the page keep every RTCPeerConnection it
// creates in window.__pcs, so a test can read their statistics.
const recordPeerConnections = `(() => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) { const pc = new Orig(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Orig.prototype;
})();`

// sendsSimulcast is true when the page sends its camera as at least two
// simulcast encodings (rids), each with packets out.
const sendsSimulcast = `(async () => {
  for (const pc of window.__pcs || []) {
    const rids = new Set();
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video' && r.rid && r.packetsSent > 0) rids.add(r.rid);
    });
    if (rids.size >= 2) return true;
  }
  return false;
})()`

// waitJS polls a JavaScript expression until it is true, or fails the test
// with what the page last said.
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr, chromedp.EvalAwaitPromise)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + location.search + ' | ' + (document.querySelector('#call-state')||{}).textContent + ' | ' + document.body.innerText.slice(0, 600)`))
			t.Fatalf("%s: not true after %s (%s); page: %s", what, timeout, expr, state)
		}
		time.Sleep(100 * time.Millisecond) // polling the page, not standing in for a signal
	}
}

// videoPlaying is true when the remote video has frames and its clock moves.
const videoPlaying = `(async () => {
  const v = document.querySelector('#remote-video');
  if (!v || v.videoWidth === 0) return false;
  const t0 = v.currentTime;
  await new Promise(r => setTimeout(r, 300));
  return v.videoWidth > 0 && v.currentTime > t0;
})()`

// screenTilePlaying is true when a screen share's tile, labelled
// "<name>'s screen", shows moving video.
const screenTilePlaying = `(async () => {
  const tile = document.querySelector('#extra-tiles .tile.extra.screen');
  const v = tile && tile.querySelector('video');
  if (!v || !/’s screen$/.test(tile.getAttribute('aria-label')) || v.videoWidth === 0) return false;
  const t0 = v.currentTime;
  await new Promise(r => setTimeout(r, 300));
  return v.videoWidth > 0 && v.currentTime > t0;
})()`

// remoteAudioLive is true when the remote stream carries a live, unmuted audio track.
const remoteAudioLive = `(() => {
  const s = document.querySelector('#remote-video').srcObject;
  return !!s && s.getAudioTracks().some(a => a.readyState === 'live' && !a.muted);
})()`

func TestBrowserVisit(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, map[string]string{"BEDSIDE_LOG_LEVEL": "debug"})
	// On failure, the SFU's log (identifiers only) says what media did.
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(ts.out.String(), "\n") {
				if strings.Contains(l, "room=") {
					t.Log(l)
				}
			}
		}
	})
	link := bookFirstFree(t, ts)

	// The patient opens the join link, checks devices and enters the waiting room.
	patient := newBrowser(t, chromium)
	watch := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordPeerConnections})
		return err
	})
	if err := chromedp.Do(patient, watch, chromedp.EmulateViewport(1280, 720), chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(patient, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`/visit/(\d+)$`).FindStringSubmatch(loc)
	if m == nil {
		t.Fatalf("join link landed on %q, want /visit/{id}", loc)
	}
	visit, _ := strconv.Atoi(m[1])
	waitJS(t, patient, "camera preview", `(() => { const v = document.querySelector('#local-video'); return !!v && v.videoWidth > 0; })()`, 15*time.Second)
	waitJS(t, patient, "join button enabled", `!document.querySelector('#join-button').disabled`, 15*time.Second)
	// On a 1280x720 laptop, Join is in view under the camera preview.
	const inView = `(() => { const r = document.querySelector('#join-button').getBoundingClientRect(); return scrollY === 0 && r.height > 0 && r.bottom <= innerHeight; })()`
	if ok, err := chromedp.Run(patient, chromedp.Evaluate[bool](inView)); err != nil || !ok {
		t.Errorf("the Join button is below the fold of a 1280x720 window (%v)", err)
	}
	if err := chromedp.Do(patient, chromedp.Click(chromedp.CSS("#join-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, patient, "patient waiting", `document.querySelector('#call-state').dataset.state === 'waiting'`, 10*time.Second)
	// The connectivity check ran beside all this and found the direct path.
	waitJS(t, patient, "connectivity check says direct",
		`document.querySelector('#netcheck').dataset.result === 'direct' && /works directly.*Round trip: \d+ ms/.test(document.querySelector('#netcheck-status').textContent)`,
		20*time.Second)

	// The physician signs in, opens the visit, starts it and admits the patient.
	doctor := newBrowser(t, chromium)
	err = chromedp.Do(doctor,
		chromedp.Navigate(ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#email"), "dr.okafor@demo.bedside.test"),
		chromedp.SendKeys(chromedp.CSS("#password"), ts.demoPassword(t, "dr.okafor@demo.bedside.test")),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#visits")),
		chromedp.Navigate(fmt.Sprintf("%s/consult/%d", ts.URL, visit)),
	)
	if err == nil {
		waitJS(t, doctor, "start button enabled", `!document.querySelector('#start-button').disabled`, 15*time.Second)
		err = chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#start-button")))
	}
	if err != nil {
		t.Fatalf("physician: %v", err)
	}
	waitJS(t, doctor, "patient in the lobby", `!!document.querySelector('#lobby button.admit')`, 15*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#lobby button.admit"))); err != nil {
		t.Fatal(err)
	}

	// Both see each other's video playing.
	waitJS(t, doctor, "physician sees the patient's video", videoPlaying, 20*time.Second)
	waitJS(t, patient, "patient sees the physician's video", videoPlaying, 20*time.Second)
	for who, ctx := range map[string]context.Context{"physician": doctor, "patient": patient} {
		waitJS(t, ctx, who+" receives live audio", remoteAudioLive, 10*time.Second)
	}
	// The patient's camera goes out as simulcast layers; the physician
	// still sees one video, chosen and switched by the SFU.
	waitJS(t, patient, "patient sends simulcast", sendsSimulcast, 15*time.Second)
	waitJS(t, doctor, "physician still sees the patient's video", videoPlaying, 10*time.Second)

	// The physician shares a screen (Chromium's fake capture): the patient
	// sees it on a labelled tile of its own, the physician's camera still
	// on the main tile; stopping removes the tile.
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#share-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "share button pressed", `document.querySelector('#share-button').getAttribute('aria-pressed') === 'true'`, 10*time.Second)
	waitJS(t, patient, "the physician's screen on a labelled tile", screenTilePlaying, 20*time.Second)
	waitJS(t, patient, "the physician's camera still on the main tile", videoPlaying, 5*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#share-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, patient, "the screen tile gone", `!document.querySelector('#extra-tiles .tile.screen')`, 20*time.Second)

	// The physician invites an interpreter from the consult page, in place
	// (the call goes on); the interpreter opens the link, waits, is
	// admitted, and sees the physician; the patient sees them on a tile.
	err = chromedp.Do(doctor,
		chromedp.SetValue(chromedp.CSS("#guest-role"), "interpreter"),
		chromedp.SendKeys(chromedp.CSS("#guest-name"), "Ines Duarte"),
		chromedp.Click(chromedp.CSS("#guests button[type=submit]")),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the guest link listed", `!!document.querySelector('#guests input.copy')`, 10*time.Second)
	waitJS(t, doctor, "the call still on", `document.querySelector('#call-state').dataset.state === 'in-call'`, 1*time.Second)
	guestLink, err := chromedp.Run(doctor, chromedp.Evaluate[string](`document.querySelector('#guests input.copy').value`))
	if err != nil {
		t.Fatal(err)
	}
	interpreter := newBrowser(t, chromium)
	if err := chromedp.Do(interpreter, chromedp.Navigate(guestLink)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, interpreter, "guest join button enabled", `location.pathname === '/guest/call' && !document.querySelector('#join-button').disabled`, 15*time.Second)
	if err := chromedp.Do(interpreter, chromedp.Click(chromedp.CSS("#join-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, interpreter, "guest waiting", `document.querySelector('#call-state').dataset.state === 'waiting'`, 10*time.Second)
	waitJS(t, interpreter, "the guest's connectivity check", `['direct', 'tcp', 'relay'].includes(document.querySelector('#netcheck').dataset.result)`, 20*time.Second)
	waitJS(t, doctor, "the interpreter in the lobby", `[...document.querySelectorAll('#lobby li')].some((li) => li.textContent.includes('Ines Duarte (interpreter)'))`, 15*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#lobby button.admit"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, interpreter, "the interpreter sees the physician", videoPlaying, 20*time.Second)
	waitJS(t, patient, "the patient sees the interpreter's tile", `(() => {
  const tile = document.querySelector('#extra-tiles .tile.extra[aria-label="Ines Duarte (interpreter)’s video"]');
  const v = tile && tile.querySelector('video');
  return !!v && v.videoWidth > 0;
})()`, 20*time.Second)
	waitJS(t, doctor, "the patient still under the overlay", `/^u\d+$/.test(document.querySelector('#remote-video').dataset.participant) && document.querySelector('#remote-video').videoWidth > 0`, 5*time.Second)

	// The simulated home hub streams; the overlay shows a heart rate.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simBin := filepath.Join(t.TempDir(), "devicesim")
	if out, err := exec.Command("go", "build", "-o", simBin, "../devicesim").CombinedOutput(); err != nil {
		t.Fatalf("build devicesim: %v\n%s", err, out)
	}
	sim := exec.CommandContext(ctx, simBin,
		"--token", ts.demoDeviceToken(t), "--url", strings.Replace(ts.URL, "http://", "ws://", 1)+"/ws/device", "--rate", "200ms")
	simOut := &syncBuffer{}
	sim.Stdout, sim.Stderr = simOut, simOut
	sim.Cancel = func() error { return sim.Process.Signal(os.Interrupt) }
	sim.WaitDelay = 5 * time.Second
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = sim.Wait() }()
	waitJS(t, doctor, "heart rate on the overlay",
		`(() => { const e = document.querySelector('#vital-8867-4'); const n = e && parseFloat(e.textContent); return n > 30 && n < 200; })()`,
		30*time.Second)
	if out := simOut.String(); !strings.Contains(out, "acknowledgement") && !strings.Contains(out, "acknowledged up to") {
		t.Errorf("devicesim saw no acknowledgement:\n%s", out)
	}

	// The physician leaves, follows the link to the visit's record, marks
	// the visit completed there and downloads it as FHIR.
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#leave-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the record link after leaving", `document.querySelector('#call-state').dataset.state === 'left' && !!document.querySelector('#record-link') && !document.querySelector('#left-panel').hidden`, 10*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#record-link"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the record of a visit under way", fmt.Sprintf(`location.pathname === '/visits/%d/record' && /still going on/.test(document.body.innerText)`, visit), 10*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("form.complete-visit button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the visit completed", `/The visit is marked completed/.test(document.body.innerText) && /Duration/.test(document.body.innerText) && !/still going on/.test(document.body.innerText)`, 10*time.Second)
	waitJS(t, doctor, "the FHIR export downloads", `(async () => {
  const a = [...document.querySelectorAll('a')].find((a) => a.textContent === 'Export FHIR');
  const r = await fetch(a.href);
  const b = await r.json();
  return r.ok && b.resourceType === 'Bundle' && b.entry.some((e) => e.resource.resourceType === 'Encounter' && e.resource.status === 'finished');
})()`, 10*time.Second)

	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("server unhealthy after the visit: %v", err)
	}
	resp.Body.Close()
}
