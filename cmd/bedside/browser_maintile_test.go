package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// watchMainVideo counts, before the page loads, what restarts the main
// video (#remote-video): each assignment of its srcObject, and each time
// the element empties (its media reloads, a visible flash).
const watchMainVideo = `(() => {
  const d = Object.getOwnPropertyDescriptor(HTMLMediaElement.prototype, 'srcObject');
  window.__main = { sets: 0, emptied: 0 };
  Object.defineProperty(HTMLMediaElement.prototype, 'srcObject', {
    configurable: true, enumerable: d.enumerable,
    get() { return d.get.call(this); },
    set(v) { if (this.id === 'remote-video') window.__main.sets++; d.set.call(this, v); },
  });
  document.addEventListener('emptied', (e) => { if (e.target.id === 'remote-video') window.__main.emptied++; }, true);
})();`

// TestBrowserMainVideoKeepsPlaying: on the physician's visit page the
// patient is on the main video; when another participant's tile appears
// (an exam camera, by WHIP), the main video is left alone: its srcObject
// is not assigned again and it does not reload, which would flash. The
// patient is a Go client on the call WebSocket, to keep to one browser.
func TestBrowserMainVideoKeepsPlaying(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	link := bookFirstFree(t, ts)

	// The patient opens the join link and waits, publishing VP8 and Opus.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(link)
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
	for _, ck := range resp.Cookies() {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "patient")
	audio, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "patient")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	patient, err := sigclient.Dial(ctx, strings.Replace(ts.URL, "http://", "ws://", 1)+"/ws/call/"+visit,
		sigclient.Options{Header: hdr, Tracks: []webrtc.TrackLocal{video, audio}})
	if err != nil {
		t.Fatal(err)
	}
	defer patient.Close()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond) // the media's pace, not a synchronisation
		defer tick.Stop()
		for n := uint32(0); ctx.Err() == nil; n++ {
			<-tick.C
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 3000, Marker: true},
				Payload: sigclient.VP8Payload(n, 'f', n%30 == 0, 600)})
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(n), Timestamp: n * 960}, Payload: sigclient.NumberedPayload(n, 80)})
		}
	}()

	// The physician starts the visit and admits the patient.
	doctor := newBrowser(t, chromium)
	watch := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watchMainVideo})
		return err
	})
	err = chromedp.Do(doctor, watch,
		chromedp.Navigate(ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#email"), "dr.okafor@demo.bedside.test"),
		chromedp.SendKeys(chromedp.CSS("#password"), ts.demoPassword(t, "dr.okafor@demo.bedside.test")),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#visits")),
		chromedp.Navigate(ts.URL+"/consult/"+visit),
	)
	if err != nil {
		t.Fatalf("physician: %v", err)
	}
	click(t, doctor, "start the visit", "#start-button", 60*time.Second)
	click(t, doctor, "admit the patient", "#lobby button.admit", 30*time.Second)
	if _, err := patient.Await(ctx, signaling.TypeAdmitted); err != nil {
		t.Fatalf("patient not admitted: %v", err)
	}
	// The patient's audio and video both on the main video.
	waitJS(t, doctor, "the patient's camera and microphone on the main video", `(() => {
  const v = document.querySelector('#remote-video');
  return /^u\d+$/.test(v.dataset.participant) && !!v.srcObject && v.srcObject.getVideoTracks().length === 1 && v.srcObject.getAudioTracks().length === 1;
})()`, 30*time.Second)
	if _, err := chromedp.Run(doctor, chromedp.Evaluate[bool](`(() => {
  const v = document.querySelector('#remote-video');
  window.__before = { ...window.__main, stream: v.srcObject, tracks: v.srcObject.getTracks().map((t) => t.id).sort().join() };
  return true;
})()`)); err != nil {
		t.Fatal(err)
	}

	// The exam camera joins by WHIP: its own tile, playing.
	token := strings.TrimSpace(ts.cli(t, "", "token", "issue", "--email", "dr.okafor@demo.bedside.test", "--ttl", "1h"))
	if whipErr, err := chromedp.Run(doctor, chromedp.Evaluate[string](fmt.Sprintf(whipPublish, mustAtoi(t, visit), token, ""), chromedp.EvalAwaitPromise)); err != nil || whipErr != "" {
		t.Fatalf("WHIP publish from the browser: %v %s", err, whipErr)
	}
	waitJS(t, doctor, "the exam camera's tile playing", extraTilePlaying, 45*time.Second)

	var after struct {
		Sets, Emptied         int
		SameStream, SameTrack bool
		Participant           string
	}
	jsEval(t, doctor, `(() => {
  const v = document.querySelector('#remote-video');
  return { Sets: window.__main.sets - window.__before.sets, Emptied: window.__main.emptied - window.__before.emptied,
    SameStream: v.srcObject === window.__before.stream,
    SameTrack: !!v.srcObject && v.srcObject.getTracks().map((t) => t.id).sort().join() === window.__before.tracks,
    Participant: v.dataset.participant };
})()`, &after)
	if after.Sets != 0 || after.Emptied != 0 {
		t.Errorf("the exam camera's tile arriving reset the main video: srcObject assigned %d times, emptied %d times; want neither", after.Sets, after.Emptied)
	}
	if !after.SameStream || !after.SameTrack || !regexp.MustCompile(`^u\d+$`).MatchString(after.Participant) {
		t.Errorf("the main video changed: same stream %v, same tracks %v, participant %q; want the patient's, untouched", after.SameStream, after.SameTrack, after.Participant)
	}
}
