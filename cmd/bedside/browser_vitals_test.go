package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// stripBufferChecks exercises static/strip-buffer.js on its own and
// returns what went wrong, or "".
const stripBufferChecks = `(async () => {
  const { StripBuffer, chunkFromMessage } = await import('/static/strip-buffer.js');
  const bad = [];
  const eq = (what, got, want) => { if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(what + ': got ' + JSON.stringify(got) + ', want ' + JSON.stringify(want)); };
  const chunk = (t0, n, f = (i) => i) => ({ time: t0, period: 4, values: Array.from({ length: n }, (_, i) => f(t0 / 4 + i)) });
  const b = new StripBuffer({ delayMs: 500 });
  // Chunk 0 arrives 100 ms after its last sample, chunk 1 250 ms after:
  // the offset is the faster delivery.
  b.push(chunk(0, 25), 96 + 100);
  b.push(chunk(100, 25), 196 + 250);
  eq('offset', b.offset(), 100);
  eq('nothing due before the delay', b.take(100 + 499).length, 0);
  const first = b.take(196 + 100 + 500);
  eq('all due after the delay', first.map((s) => s.t), Array.from({ length: 50 }, (_, i) => i * 4));
  // A chunk sent twice is drawn once.
  b.push(chunk(100, 25), 400);
  eq('duplicates', b.stats.duplicates, 25);
  // Chunk 2 is lost: chunk 3 comes after a gap, drawn as a break.
  b.push(chunk(300, 25), 396 + 100);
  eq('gaps', b.stats.gaps, 1);
  const next = b.take(396 + 100 + 500);
  eq('gap then chunk 3', next.map((s) => s.v === null ? null : s.t), [null, ...Array.from({ length: 25 }, (_, i) => 300 + i * 4)]);
  eq('gap at the first missing sample', next[0].t, 200);
  // A device's own gap samples stay gaps.
  const m = chunkFromMessage({ time: new Date(1000).toISOString(), origin: 1, factor: 0.5, period: 4, data: [2, null, 4] });
  eq('message', m, { time: 1000, period: 4, values: [2, null, 3] });
  eq('message received', chunkFromMessage({ time: new Date(1000).toISOString(), period: 4, data: [1], received: new Date(1040).toISOString() }).received, 1040);
  // With the server's stamp: a device 40 ms from the server, a browser
  // clock 1000 ms ahead of the server's and 10 ms away.
  const s = new StripBuffer({ delayMs: 500 });
  s.push({ ...chunk(0, 25), received: 96 + 40 }, 96 + 40 + 1000 + 10);
  s.push({ ...chunk(100, 25), received: 196 + 60 }, 196 + 60 + 1000 + 30);
  eq('clock offset', s.clockOffset(), 1010);
  eq('offset with received', s.offset(), 1010 + 40);
  eq('no clock offset without received', b.clockOffset(), NaN);
  // Starved: one break, not a line across the silence.
  const starved = b.take(2000);
  eq('starved', starved.map((s) => s.v), [null]);
  eq('starved once', b.take(2100).length, 0);
  // A chunk whose moment has been drawn is late, not drawn out of place.
  b.push(chunk(500, 25), 2200);
  eq('late', b.stats.late, 25);
  eq('late not played', b.take(2300).length, 0);
  // The lost chunk turning up after its successor: out of order, dropped
  // and counted; a resent old chunk is a duplicate.
  b.push(chunk(200, 5), 2300);
  b.push(chunk(60, 5), 2300);
  eq('duplicates of old', b.stats.duplicates, 30);
  eq('backwards', b.stats.backwards, 5);
  eq('played (the break when starved is not a sample)', b.stats.played, 50 + 26);
  eq('last value', b.stats.last, 300 / 4 + 24);
  return bad.join('; ');
})()`

// TestBrowserStripBuffer runs the strip's jitter buffer module in Chromium.
func TestBrowserStripBuffer(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	b := newBrowser(t, chromium)
	if err := chromedp.Do(b, chromedp.Navigate(ts.URL+"/healthz")); err != nil {
		t.Fatal(err)
	}
	bad, err := chromedp.Run(b, chromedp.Evaluate[string](stripBufferChecks, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if bad != "" {
		t.Error(bad)
	}
}

// TestBrowserVitalsOverlay streams readings and an ECG into a visit
// through the device socket and checks what the physician's consult page
// shows over the patient's video tile.
func TestBrowserVitalsOverlay(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	visit := visitID(t, bookFirstFree(t, ts))
	doctor := newBrowser(t, chromium)
	openConsult(t, ts, doctor, ts.URL, visit)

	dev := dialDevice(t, ts)
	waitJS(t, doctor, "device shown connected",
		`!!document.querySelector('#vitals-devices li[data-state="connected"]')`, 20*time.Second)

	now := time.Now()
	// Heart rate and respiratory rate measured 20 s ago: the heart rate
	// (30 s window) goes stale before the respiratory rate (60 s).
	dev.send(quantityObs("8867-4", "/min", 72, now.Add(-20*time.Second)))
	dev.send(quantityObs("9279-1", "/min", 16, now.Add(-20*time.Second)))
	dev.send(quantityObs("59408-5", "%", 97, now))
	dev.send(quantityObs("8310-5", "Cel", 37.2, now))
	dev.send(bloodPressureObs(124, 81, now.Add(-2*time.Minute)))
	for id, want := range map[string]string{"8867-4": "72", "9279-1": "16", "59408-5": "97", "8310-5": "37.2", "bp": "124/81"} {
		waitJS(t, doctor, id+" shows "+want,
			fmt.Sprintf(`document.querySelector('#vital-%s').textContent === %q`, id, want), 20*time.Second)
	}
	waitJS(t, doctor, "blood pressure says when it was measured",
		`(() => { const e = document.querySelector('#vital-bp-time'); return /^at /.test(e.textContent) && Math.abs(Date.parse(e.dateTime) - `+
			fmt.Sprint(now.Add(-2*time.Minute).UnixMilli())+`) < 1000; })()`, 10*time.Second)
	for _, id := range []string{"59408-5", "8310-5", "bp"} {
		var cls string
		jsEval(t, doctor, `document.querySelector('#tile-`+id+`').className`, &cls)
		if strings.Contains(cls, "doubtful") || strings.Contains(cls, "stale") {
			t.Errorf("tile %s is %q right after a sound, fresh reading", id, cls)
		}
	}

	// An improbable saturation is shown, greyed, with the reason.
	dev.send(quantityObs("59408-5", "%", 65, now.Add(time.Millisecond)))
	waitJS(t, doctor, "flagged SpO2 greyed with its reason",
		`(() => { const e = document.querySelector('#tile-59408-5');
		  return document.querySelector('#vital-59408-5').textContent === '65' && e.classList.contains('doubtful') &&
		    e.title.includes('improbable value') && e.querySelector('.flag-note').textContent.includes('improbable value') &&
		    getComputedStyle(document.querySelector('#vital-59408-5')).color === 'rgb(184, 184, 184)'; })()`, 10*time.Second)

	// The heart rate goes stale after its window; the respiratory rate,
	// as old but with a longer window, does not.
	waitJS(t, doctor, "heart rate marked stale",
		`(() => { const e = document.querySelector('#tile-8867-4'); return e.dataset.stale === 'true' && /stale/.test(e.querySelector('.stale-note').textContent); })()`,
		30*time.Second)
	var rrStale string
	jsEval(t, doctor, `document.querySelector('#tile-9279-1').dataset.stale || ''`, &rrStale)
	if rrStale == "true" {
		t.Error("respiratory rate stale after 30 s; its window is 60 s")
	}

	// An ECG, 10 chunks a second of 25 samples; chunk 15 is lost and
	// chunk 20 holds a gap sample.
	const chunks, per = 30, 25
	start := time.Now().Truncate(time.Millisecond)
	tick := time.NewTicker(100 * time.Millisecond) // the device's pace, not a synchronisation
	defer tick.Stop()
	last := 0
	for c := range chunks {
		samples := make([]*int, per)
		for i := range samples {
			v := (c*per + i) % 1000
			samples[i] = &v
			last = v
		}
		samples[3] = nil
		if c == 15 {
			<-tick.C
			continue
		}
		if c != 20 {
			v := (c*per + 3) % 1000
			samples[3] = &v
		}
		dev.send(ecgObs(start.Add(time.Duration(c*per*4)*time.Millisecond), samples))
		<-tick.C
	}
	sent := (chunks - 1) * per
	// Played counts the break the lost chunk leaves in the line as well,
	// so it reaches the samples sent one sample early: done is when the
	// last sample has played too (or came late, and was dropped).
	waitJS(t, doctor, "strip played every sample",
		fmt.Sprintf(`(() => { const s = window.bedsideVitals.strip; return s.code === '131330' && s.stats.samples === %d && s.stats.played + s.stats.late >= %d && (s.stats.late > 0 || Math.abs(s.stats.last - %v) < 1e-9) && s.drawn > 300; })()`, sent, sent, float64(last)*0.001),
		20*time.Second)
	var st struct {
		Stats struct {
			Chunks, Samples, Duplicates, Backwards, Late, Gaps int
			Last                                               float64
		}
	}
	jsEval(t, doctor, `window.bedsideVitals.strip`, &st)
	// Late samples (a stall longer than the playout delay on a busy
	// machine) are dropped, not drawn out of place: allowed, but said.
	if s := st.Stats; s.Chunks != chunks-1 || s.Duplicates != 0 || s.Backwards != 0 || s.Gaps < 1 {
		t.Errorf("strip buffer: %+v, want %d chunks, no duplicates, nothing out of order, the lost chunk as a gap", s, chunks-1)
	} else if s.Late > 0 {
		t.Logf("strip buffer: %d samples came later than the playout delay", s.Late)
	}
	if want := float64(last) * 0.001; st.Stats.Late == 0 && (st.Stats.Last < want-1e-9 || st.Stats.Last > want+1e-9) {
		t.Errorf("strip's last value %v, want %v mV", st.Stats.Last, want)
	}
	var label string
	jsEval(t, doctor, `document.querySelector('#vitals-strip').hidden ? '' : document.querySelector('#vitals-strip-label').textContent`, &label)
	if !strings.HasPrefix(label, "ECG II") {
		t.Errorf("strip label %q, want ECG II and the strip shown", label)
	}

	// The ECG has stopped: the strip says so rather than freezing.
	waitJS(t, doctor, "strip says no signal",
		`document.querySelector('#vitals-strip-label').textContent === 'ECG II: no signal'`, 20*time.Second)

	// The device goes away: the overlay says so.
	dev.conn.Close()
	waitJS(t, doctor, "device shown disconnected",
		`(() => { const e = document.querySelector('#vitals-devices li[data-state="disconnected"]'); return !!e && /disconnected/.test(e.textContent); })()`,
		20*time.Second)
}

// TestBrowserVitalsResume pulls the physician's network mid-stream: the
// readings sent while it is down arrive after it is back, each once.
func TestBrowserVitalsResume(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	visit := visitID(t, bookFirstFree(t, ts))
	proxy := newCutProxy(t, strings.TrimPrefix(ts.URL, "http://"))
	doctor := newBrowser(t, chromium)
	openConsult(t, ts, doctor, proxy.URL(), visit)
	dev := dialDevice(t, ts)

	var want []float64
	base := time.Now().Add(-10 * time.Second)
	send := func(n int) {
		for range n {
			v := float64(60 + len(want))
			dev.send(quantityObs("8867-4", "/min", v, base.Add(time.Duration(len(want))*100*time.Millisecond)))
			want = append(want, v)
		}
	}
	heartRates := `window.bedsideVitals.log.filter((m) => m.type === 'reading' && m.code === '8867-4')`
	send(10)
	waitJS(t, doctor, "first readings shown", heartRates+`.length === 10`, 20*time.Second)

	proxy.cut()
	waitJS(t, doctor, "page noticed the drop", `/reconnecting/.test(document.querySelector('#vitals-status').textContent)`, 20*time.Second)
	send(10) // while the physician is offline
	proxy.restore()
	send(10)
	waitJS(t, doctor, "every reading shown", heartRates+fmt.Sprintf(`.length >= %d`, len(want)), 60*time.Second)

	var got []struct {
		Offset int64
		Value  float64
	}
	jsEval(t, doctor, heartRates, &got)
	values := make([]float64, len(got))
	for i, m := range got {
		values[i] = m.Value
		if i > 0 && m.Offset <= got[i-1].Offset {
			t.Errorf("offset %d after %d: not in order or repeated", m.Offset, got[i-1].Offset)
		}
	}
	if !slices.Equal(values, want) {
		t.Errorf("heart rates on the page %v, want each of %v exactly once, in order", values, want)
	}
	var shown string
	jsEval(t, doctor, `document.querySelector('#vital-8867-4').textContent`, &shown)
	if shown != fmt.Sprint(want[len(want)-1]) {
		t.Errorf("overlay shows %q, want the last reading %v", shown, want[len(want)-1])
	}
}
