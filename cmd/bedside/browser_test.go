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
	"github.com/chromedp/cdproto/runtime"
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

// clickScript clicks the element a selector names, as a user would, in one
// step of the page: scrolled into view, and only if it is enabled and
// nothing covers its centre. It returns why it did not click, or "". Done
// in one step, the click cannot land beside the element when the layout
// moves between finding it and pressing it (a video starting next to it
// on a busy machine), as a click sent to coordinates can.
const clickScript = `((sel) => {
  const el = document.querySelector(sel);
  if (!el) return 'not on the page';
  if (el.disabled) return 'disabled';
  el.scrollIntoView({ block: 'center', inline: 'center' });
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return 'not shown';
  const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  if (top !== el && !el.contains(top)) return 'covered by ' + (top ? top.outerHTML.slice(0, 120) : 'nothing');
  el.click();
  return '';
})(%s)`

// click clicks sel (clickScript) with a user's gesture once it can be
// clicked, or fails the test with why it could not within timeout.
func click(t *testing.T, ctx context.Context, what, sel string, timeout time.Duration) {
	t.Helper()
	expr := fmt.Sprintf(clickScript, strconv.Quote(sel))
	yes := true
	gesture := func(p *runtime.EvaluateParams) { p.UserGesture = &yes }
	deadline := time.Now().Add(timeout)
	for {
		why, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, gesture))
		if err != nil {
			t.Fatalf("click %s (%s): %v", what, sel, err)
		}
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("click %s (%s): %s after %v", what, sel, why, timeout)
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

// mainTileShowsMain is true when the main tile (#remote-video) holds the
// camera of the person the page keeps there (its data-main): that
// participant's stream, with a live video track. It asks which stream is
// shown, not whether frames are decoding: adding a tile re-attaches the
// main stream, and on a starved machine the SFU's congestion control may
// hold that video paused for a while, which is no fault of the tiles.
const mainTileShowsMain = `(() => {
  const v = document.querySelector('#remote-video');
  const main = document.querySelector('[data-main]');
  return !!v && !!main && main.dataset.main !== '' && v.dataset.participant === main.dataset.main &&
    !!v.srcObject && v.srcObject.getVideoTracks().some((t) => t.readyState === 'live');
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

// TestBrowserVisit walks a whole visit through three Chromiums. Every step
// waits for what the page shows (waitJS) or clicks once the page can take
// the click (click); the bounds are generous, as three browsers, the
// server and its media on a busy two-core machine can take many seconds
// for what takes one when it is quiet, and they cost nothing when it is.
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
	waitJS(t, patient, "camera preview", `(() => { const v = document.querySelector('#local-video'); return !!v && v.videoWidth > 0; })()`, 30*time.Second)
	waitJS(t, patient, "join button enabled", `!document.querySelector('#join-button').disabled`, 30*time.Second)
	// On a 1280x720 laptop, Join is in view under the camera preview.
	const inView = `(() => { const r = document.querySelector('#join-button').getBoundingClientRect(); return scrollY === 0 && r.height > 0 && r.bottom <= innerHeight; })()`
	if ok, err := chromedp.Run(patient, chromedp.Evaluate[bool](inView)); err != nil || !ok {
		t.Errorf("the Join button is below the fold of a 1280x720 window (%v)", err)
	}
	click(t, patient, "Join", "#join-button", 30*time.Second)
	waitJS(t, patient, "patient waiting", `document.querySelector('#call-state').dataset.state === 'waiting'`, 20*time.Second)
	// The connectivity check ran beside all this and found the direct path.
	waitJS(t, patient, "connectivity check says direct",
		`document.querySelector('#netcheck').dataset.result === 'direct' && /works directly.*Round trip: \d+ ms/.test(document.querySelector('#netcheck-status').textContent)`,
		45*time.Second)

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
	if err != nil {
		t.Fatalf("physician: %v", err)
	}
	click(t, doctor, "Start visit", "#start-button", 30*time.Second)
	click(t, doctor, "Admit the patient", "#lobby button.admit", 30*time.Second)

	// Both see each other's video playing.
	waitJS(t, doctor, "physician sees the patient's video", videoPlaying, 45*time.Second)
	waitJS(t, patient, "patient sees the physician's video", videoPlaying, 45*time.Second)
	for who, ctx := range map[string]context.Context{"physician": doctor, "patient": patient} {
		waitJS(t, ctx, who+" receives live audio", remoteAudioLive, 20*time.Second)
	}
	// The patient's camera goes out as simulcast layers; the physician
	// still sees one video, chosen and switched by the SFU.
	waitJS(t, patient, "patient sends simulcast", sendsSimulcast, 30*time.Second)
	waitJS(t, doctor, "physician still sees the patient's video", videoPlaying, 20*time.Second)

	// The physician shares a screen (Chromium's fake capture): the patient
	// sees it on a labelled tile of its own, the physician's camera still
	// on the main tile; stopping removes the tile.
	click(t, doctor, "Share screen", "#share-button", 30*time.Second)
	waitJS(t, doctor, "share button pressed", `document.querySelector('#share-button').getAttribute('aria-pressed') === 'true'`, 20*time.Second)
	waitJS(t, patient, "the physician's screen on a labelled tile", screenTilePlaying, 45*time.Second)
	waitJS(t, patient, "the physician's camera still on the main tile", mainTileShowsMain, 20*time.Second)
	click(t, doctor, "Stop sharing", "#share-button", 30*time.Second)
	waitJS(t, patient, "the screen tile gone", `!document.querySelector('#extra-tiles .tile.screen')`, 45*time.Second)

	// The physician invites an interpreter from the consult page, in place
	// (the call goes on); the interpreter opens the link, waits, is
	// admitted, and sees the physician; the patient sees them on a tile.
	err = chromedp.Do(doctor,
		chromedp.SetValue(chromedp.CSS("#guest-role"), "interpreter"),
		chromedp.SendKeys(chromedp.CSS("#guest-name"), "Ines Duarte"),
	)
	if err != nil {
		t.Fatal(err)
	}
	click(t, doctor, "Invite", "#guests button[type=submit]", 30*time.Second)
	waitJS(t, doctor, "the guest link listed", `!!document.querySelector('#guests input.copy')`, 20*time.Second)
	waitJS(t, doctor, "the call still on", `document.querySelector('#call-state').dataset.state === 'in-call'`, 20*time.Second)
	guestLink, err := chromedp.Run(doctor, chromedp.Evaluate[string](`document.querySelector('#guests input.copy').value`))
	if err != nil {
		t.Fatal(err)
	}
	interpreter := newBrowser(t, chromium)
	if err := chromedp.Do(interpreter, chromedp.Navigate(guestLink)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, interpreter, "guest join button enabled", `location.pathname === '/guest/call' && !document.querySelector('#join-button').disabled`, 30*time.Second)
	click(t, interpreter, "the guest's Join", "#join-button", 30*time.Second)
	waitJS(t, interpreter, "guest waiting", `document.querySelector('#call-state').dataset.state === 'waiting'`, 20*time.Second)
	waitJS(t, interpreter, "the guest's connectivity check", `['direct', 'tcp', 'relay'].includes(document.querySelector('#netcheck').dataset.result)`, 45*time.Second)
	waitJS(t, doctor, "the interpreter in the lobby", `[...document.querySelectorAll('#lobby li')].some((li) => li.textContent.includes('Ines Duarte (interpreter)'))`, 30*time.Second)
	click(t, doctor, "Admit the interpreter", "#lobby button.admit", 30*time.Second)
	waitJS(t, interpreter, "the interpreter sees the physician", videoPlaying, 45*time.Second)
	waitJS(t, patient, "the patient sees the interpreter's tile", `(() => {
  const tile = document.querySelector('#extra-tiles .tile.extra[aria-label="Ines Duarte (interpreter)’s video"]');
  const v = tile && tile.querySelector('video');
  return !!v && v.videoWidth > 0;
})()`, 45*time.Second)
	waitJS(t, doctor, "the patient still under the overlay", mainTileShowsMain, 20*time.Second)

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
		45*time.Second)
	// The overlay shows a reading as soon as it is published, before it is
	// stored and acknowledged, and devicesim reports an acknowledgement in
	// its own time: wait for the report rather than expect it already.
	for deadline := time.Now().Add(30 * time.Second); ; {
		out := simOut.String()
		if strings.Contains(out, "acknowledgement") || strings.Contains(out, "acknowledged up to") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("devicesim saw no acknowledgement within 30 s:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond) // polling the simulator's output
	}

	// The physician leaves, follows the link to the visit's record, marks
	// the visit completed there and downloads it as FHIR.
	click(t, doctor, "Leave", "#leave-button", 30*time.Second)
	waitJS(t, doctor, "the record link after leaving", `document.querySelector('#call-state').dataset.state === 'left' && !!document.querySelector('#record-link') && !document.querySelector('#left-panel').hidden`, 20*time.Second)
	click(t, doctor, "the record link", "#record-link", 30*time.Second)
	waitJS(t, doctor, "the record of a visit under way", fmt.Sprintf(`location.pathname === '/visits/%d/record' && /still going on/.test(document.body.innerText)`, visit), 20*time.Second)
	click(t, doctor, "Mark the visit completed", "form.complete-visit button", 30*time.Second)
	waitJS(t, doctor, "the visit completed", `/The visit is marked completed/.test(document.body.innerText) && /Duration/.test(document.body.innerText) && !/still going on/.test(document.body.innerText)`, 20*time.Second)
	waitJS(t, doctor, "the FHIR export downloads", `(async () => {
  const a = [...document.querySelectorAll('a')].find((a) => a.textContent === 'Export FHIR');
  const r = await fetch(a.href);
  const b = await r.json();
  return r.ok && b.resourceType === 'Bundle' && b.entry.some((e) => e.resource.resourceType === 'Encounter' && e.resource.status === 'finished');
})()`, 20*time.Second)

	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("server unhealthy after the visit: %v", err)
	}
	resp.Body.Close()
}
