package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// whipPublish publishes the page's fake camera by WHIP into visit %d with
// API token %s, as a standard WHIP client does (non-trickle: the offer
// waits for all candidates), offering only the video codec %q
// (packetization mode 1 for H.264) unless that is empty; it resolves to ""
// or what went wrong.
const whipPublish = `(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ video: true });
  const pc = new RTCPeerConnection();
  const tr = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly' });
  const only = %[3]q;
  if (only) {
    tr.setCodecPreferences(RTCRtpReceiver.getCapabilities('video').codecs.filter((c) =>
      c.mimeType === only && !/packetization-mode=0/.test(c.sdpFmtpLine || '')));
  }
  await pc.setLocalDescription(await pc.createOffer());
  if (only && /VP8\/90000/.test(pc.localDescription.sdp)) return 'the offer still has VP8';
  await new Promise((done) => {
    if (pc.iceGatheringState === 'complete') return done();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') done(); };
  });
  const res = await fetch('/whip/%[1]d', { method: 'POST', body: pc.localDescription.sdp,
    headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer %[2]s' } });
  const body = await res.text();
  if (res.status !== 201 || res.headers.get('Content-Type') !== 'application/sdp') return 'POST: ' + res.status + ' ' + body;
  window.__whip = { pc, location: res.headers.get('Location') };
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  return '';
})()`

// whipDelete ends the page's WHIP session with API token %s, closes its
// connection, and resolves to the status.
const whipDelete = `fetch(window.__whip.location, { method: 'DELETE', headers: { Authorization: 'Bearer %s' } })
  .then((r) => { window.__whip.pc.close(); return r.status; })`

// extraTilePlaying is true when the exam camera's labelled tile shows
// decoded video whose clock moves.
const extraTilePlaying = `(async () => {
  const tile = document.querySelector('#extra-tiles .tile.extra[aria-label="Exam camera’s video"]');
  const v = tile && tile.querySelector('video');
  if (!v || v.videoWidth === 0 || tile.querySelector('.name').textContent !== 'Exam camera') return false;
  const t0 = v.currentTime;
  await new Promise(r => setTimeout(r, 300));
  return v.currentTime > t0;
})()`

// TestBrowserExamCamera: in a consult, an exam camera published by WHIP
// (the physician's browser plays the standard WHIP client with the
// physician's API token, so its frames are real VP8, then real H.264)
// shows on the consult page as a labelled extra tile with moving video,
// while the main tile stays on the patient; DELETE takes the tile away. The patient is a Go
// client on the call WebSocket, to keep to one browser.
func TestBrowserExamCamera(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	link := bookFirstFree(t, ts)

	// The patient opens the join link and waits, publishing numbered VP8.
	jar, _ := cookiejar.New(nil)
	pc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := pc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m := regexp.MustCompile(`^/visit/(\d+)$`).FindStringSubmatch(resp.Header.Get("Location"))
	if m == nil {
		t.Fatalf("join link: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	visit := m[1]
	hdr := http.Header{}
	for _, c := range resp.Cookies() {
		hdr.Add("Cookie", c.Name+"="+c.Value)
	}
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "patient")
	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "patient")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	patient, err := sigclient.Dial(ctx, strings.Replace(ts.URL, "http://", "ws://", 1)+"/ws/call/"+visit,
		sigclient.Options{Header: hdr, API: audioLevelAPI(t), Tracks: []webrtc.TrackLocal{video, audio}})
	if err != nil {
		t.Fatal(err)
	}
	defer patient.Close()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ctx.Err() == nil; n++ {
			<-tick.C
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true},
				Payload: sigclient.VP8Payload(n, 'f', n%30 == 0, 600)})
		}
	}()
	// The patient talks: audio whose level extension says -20 dBov,
	// louder than the physician's fake microphone.
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var id uint8
		for n := uint32(0); ctx.Err() == nil; n++ {
			<-tick.C
			if id == 0 {
				id = audioLevelID(patient.Publisher())
			}
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 960}, Payload: sigclient.NumberedPayload(n, 80)}
			if id != 0 {
				_ = p.Header.SetExtension(id, []byte{0x80 | 20})
			}
			_ = audio.WriteRTP(p)
		}
	}()

	// The physician starts the visit and admits the patient.
	doctor := newBrowser(t, chromium)
	err = chromedp.Do(doctor,
		chromedp.Navigate(ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#email"), "dr.okafor@demo.bedside.test"),
		chromedp.SendKeys(chromedp.CSS("#password"), ts.demoPassword(t, "dr.okafor@demo.bedside.test")),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#visits")),
		chromedp.Navigate(ts.URL+"/consult/"+visit),
	)
	if err == nil {
		waitJS(t, doctor, "start button enabled", `!document.querySelector('#start-button').disabled`, 60*time.Second)
		err = chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#start-button")))
	}
	if err != nil {
		t.Fatalf("physician: %v", err)
	}
	waitJS(t, doctor, "patient in the lobby", `!!document.querySelector('#lobby button.admit')`, 30*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#lobby button.admit"))); err != nil {
		t.Fatal(err)
	}
	if _, err := patient.Await(ctx, signaling.TypeAdmitted); err != nil {
		t.Fatalf("patient not admitted: %v", err)
	}
	waitJS(t, doctor, "the patient on the main tile", `/^u\d+$/.test(document.querySelector('#remote-video').dataset.participant)`, 30*time.Second)

	// The quality indicator names the patient's clean loopback link good,
	// and /metrics shows the streams with plausible figures.
	waitJS(t, doctor, "the patient's network quality shown as good", patientQualityGood, 30*time.Second)
	// An entry for someone the page has no media of (yet) names nobody:
	// the indicator skips it rather than label it with a fallback name.
	if got, err := chromedp.Run(doctor, chromedp.Evaluate[string](qualitySkipsUnknown, chromedp.EvalAwaitPromise)); err != nil || got != "self,u1|" {
		t.Errorf("the quality indicator given a participant it does not know: %q (%v), want self and u1 shown, nothing said", got, err)
	}
	checkMediaMetrics(t, ts.URL)
	// The talking patient is the dominant speaker: the main tile is
	// outlined and described as speaking.
	waitJS(t, doctor, "the patient's tile marked as speaking", `(() => {
  const tile = document.querySelector('#remote-tile');
  return tile.classList.contains('speaking') && tile.getAttribute('aria-description') === 'speaking' &&
    !document.querySelector('#local-tile').classList.contains('speaking');
})()`, 30*time.Second)

	// The exam camera joins by WHIP: a labelled extra tile with moving
	// video; the main tile stays on the patient.
	token := strings.TrimSpace(ts.cli(t, "", "token", "issue", "--email", "dr.okafor@demo.bedside.test", "--ttl", "1h"))
	if whipErr, err := chromedp.Run(doctor, chromedp.Evaluate[string](fmt.Sprintf(whipPublish, mustAtoi(t, visit), token, ""), chromedp.EvalAwaitPromise)); err != nil || whipErr != "" {
		t.Fatalf("WHIP publish from the browser: %v %s", err, whipErr)
	}
	waitJS(t, doctor, "the exam camera's tile playing", extraTilePlaying, 45*time.Second)
	waitJS(t, doctor, "the main tile still on the patient", `/^u\d+$/.test(document.querySelector('#remote-video').dataset.participant)`, 5*time.Second)

	// DELETE ends it: the tile goes, the patient stays.
	if status, err := chromedp.Run(doctor, chromedp.Evaluate[int](fmt.Sprintf(whipDelete, token), chromedp.EvalAwaitPromise)); err != nil || status != http.StatusOK {
		t.Fatalf("WHIP DELETE: %v %d", err, status)
	}
	waitJS(t, doctor, "the exam camera's tile gone", `!document.querySelector('#extra-tiles .tile.extra')`, 30*time.Second)
	waitJS(t, doctor, "the patient still on the main tile", `/^u\d+$/.test(document.querySelector('#remote-video').dataset.participant)`, 5*time.Second)

	// A camera that offers only H.264, as OBS, GStreamer and ffmpeg do:
	// Chromium's real H.264 reaches the page through the SFU and plays.
	if whipErr, err := chromedp.Run(doctor, chromedp.Evaluate[string](fmt.Sprintf(whipPublish, mustAtoi(t, visit), token, "video/H264"), chromedp.EvalAwaitPromise)); err != nil || whipErr != "" {
		t.Fatalf("WHIP publish of H.264 from the browser: %v %s", err, whipErr)
	}
	waitJS(t, doctor, "the H.264 exam camera's tile playing", extraTilePlaying, 45*time.Second)
	if status, err := chromedp.Run(doctor, chromedp.Evaluate[int](fmt.Sprintf(whipDelete, token), chromedp.EvalAwaitPromise)); err != nil || status != http.StatusOK {
		t.Fatalf("WHIP DELETE of the H.264 camera: %v %d", err, status)
	}
	waitJS(t, doctor, "the H.264 exam camera's tile gone", `!document.querySelector('#extra-tiles .tile.extra')`, 30*time.Second)
}

// patientQualityGood is true once the quality indicator lists the patient
// (a u<id> participant) as good, in words, beside the page's own entry.
const patientQualityGood = `(() => {
  const q = document.querySelector('#quality');
  const li = q && !q.hidden && q.querySelector('li[data-participant^="u"]');
  return !!li && li.dataset.level === 'good' && li.querySelector('.level').textContent === 'Good' &&
    /Your connection/.test(q.textContent);
})()`

// qualitySkipsUnknown runs the page's quality indicator module on entries
// for the page itself, a known participant and one it has no media of,
// and resolves to the participants listed and what the live region said.
const qualitySkipsUnknown = `(async () => {
  const { QualityIndicator } = await import('/static/quality.js');
  const at = document.createElement('div');
  document.body.append(at);
  const known = new Map([['u1', 'Dr Ada']]);
  const q = new QualityIndicator(at, (id) => known.get(id));
  const e = (participant, level) => ({ participant, level, recvLoss: 0, sendLoss: 0, jitterMs: 1, rttMs: 1, recvKbps: 1, sendKbps: 1 });
  q.update([e('self', 'good'), e('u1', 'good'), e('g7', 'poor')], 'self');
  const got = [...q.list.children].map((li) => li.dataset.participant).join(',') + '|' + q.live.textContent;
  q.root.remove();
  at.remove();
  return got;
})()`

// checkMediaMetrics scrapes /metrics (from loopback, which needs no token)
// and checks the media quality series: a video stream received and sent,
// both classed good, at a bitrate between 50 kbit/s and 50 Mbit/s, and no
// loss ratio outside 0 to 1.
func checkMediaMetrics(t *testing.T, base string) {
	t.Helper()
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, b := get(t, http.DefaultClient, base+"/metrics")
		if status != http.StatusOK {
			t.Fatalf("/metrics: %d %s", status, b)
		}
		body = b
		// The bitrate needs a second between two looks.
		if metricValue(t, body, `bedside_media_bitrate_bits_per_second{direction="down",kind="video"}`) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond) // polling a figure that needs time to exist
	}
	for _, dir := range []string{"up", "down"} {
		if n := metricValue(t, body, `bedside_media_streams{direction="`+dir+`",kind="video",level="good"}`); n < 1 {
			t.Errorf("%s: %v good video streams, want at least 1", dir, n)
		}
		if bps := metricValue(t, body, `bedside_media_bitrate_bits_per_second{direction="`+dir+`",kind="video"}`); bps < 50e3 || bps > 50e6 {
			t.Errorf("%s video bitrate %v bit/s, want 50 kbit/s to 50 Mbit/s", dir, bps)
		}
		for _, kind := range []string{"audio", "video"} {
			if l := metricValue(t, body, `bedside_media_loss_ratio_max{direction="`+dir+`",kind="`+kind+`"}`); l < 0 || l > 1 {
				t.Errorf("%s %s loss ratio %v", dir, kind, l)
			}
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// metricValue is the value of one series in a Prometheus text body.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no series %s", series)
	return 0
}

// audioLevelAPI is a loopback client API that offers the audio level header
// extension (RFC 6464), as browsers do.
func audioLevelAPI(t *testing.T) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// audioLevelID is the id pc's senders negotiated for the audio level
// extension, 0 while it has none (or pc is nil).
func audioLevelID(pc *webrtc.PeerConnection) uint8 {
	if pc == nil {
		return 0
	}
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == nil {
			continue
		}
		for _, e := range tr.Sender().GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI {
				return uint8(e.ID)
			}
		}
	}
	return 0
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
