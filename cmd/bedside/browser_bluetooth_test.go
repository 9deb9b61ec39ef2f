package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/bedside-health/bedside/store"
)

// fakeBluetooth stands in for navigator.bluetooth before the page loads:
// one device offering heart rate, pulse oximeter and blood pressure, whose
// characteristics send what window.__bt.emit(characteristic, hex) gives
// them. It also keeps every WebSocket the page opens in window.__sockets,
// so the test can cut one.
const fakeBluetooth = `(() => {
  const uuid = (n) => n.toString(16).padStart(8, '0') + '-0000-1000-8000-00805f9b34fb';
  const norm = (x) => typeof x === 'number' ? uuid(x) : String(x).toLowerCase();
  class Target {
    constructor() { this.listeners = {}; }
    addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
    removeEventListener(type, fn) { this.listeners[type] = (this.listeners[type] || []).filter((f) => f !== fn); }
    fire(type, ev) { for (const fn of this.listeners[type] || []) fn(ev); }
  }
  const offered = { [uuid(0x180d)]: [0x2a37], [uuid(0x1822)]: [0x2a5f], [uuid(0x1810)]: [0x2a35] };
  const chars = new Map();
  const device = new Target();
  device.id = 'fake-monitor';
  device.name = 'Fake Monitor 7E2F';
  const server = {
    device,
    async getPrimaryService(s) {
      s = norm(s);
      if (!offered[s]) throw new DOMException('No service ' + s, 'NotFoundError');
      return {
        uuid: s,
        async getCharacteristic(c) {
          c = norm(c);
          if (!offered[s].map(uuid).includes(c)) throw new DOMException('No characteristic ' + c, 'NotFoundError');
          if (!chars.has(c)) {
            const ch = new Target();
            ch.uuid = c;
            ch.notifying = false;
            ch.startNotifications = async () => { ch.notifying = true; return ch; };
            chars.set(c, ch);
          }
          return chars.get(c);
        },
      };
    },
  };
  device.gatt = { connected: false, async connect() { this.connected = true; return server; }, disconnect() {} };
  window.__bt = {
    requests: [],
    emit(c, hex) {
      const ch = chars.get(uuid(c));
      if (!ch || !ch.notifying) throw new Error('characteristic ' + c.toString(16) + ' is not subscribed');
      const bytes = new Uint8Array(hex.split(' ').map((h) => parseInt(h, 16)));
      ch.value = new DataView(bytes.buffer);
      ch.fire('characteristicvaluechanged', { target: ch });
    },
    disconnect() {
      device.gatt.connected = false;
      for (const ch of chars.values()) ch.notifying = false;
      device.fire('gattserverdisconnected', { target: device });
    },
  };
  const bluetooth = { async requestDevice(opts) { window.__bt.requests.push(opts); return device; } };
  Object.defineProperty(Navigator.prototype, 'bluetooth', { get: () => bluetooth, configurable: true });
  const Orig = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Orig {
    constructor(...args) { super(...args); window.__sockets.push(this); }
  };
})();`

// TestBrowserBluetoothRelay drives the patient's real visit page with a
// fake Bluetooth device sending real characteristic values: the server
// stores what they mean, a bad value's error is shown beside the device,
// and a socket cut mid-stream loses and duplicates nothing.
func TestBrowserBluetoothRelay(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	link := bookFirstFree(t, ts)
	ctx := context.Background()
	db := testStore(t, ts)
	patient := storedUser(t, db, "maria.silva@demo.bedside.test")
	since := time.Now().Add(-time.Minute)

	b := newBrowser(t, chromium)
	fake := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: fakeBluetooth})
		return err
	})
	if err := chromedp.Do(b, fake, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	// The module loaded under the page's CSP and found Bluetooth usable.
	waitJS(t, b, "pairing offered", `document.querySelector('#bluetooth').dataset.bluetooth === 'ready' && !document.querySelector('#bt-pair').hidden`, 15*time.Second)
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("#bt-pair"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "device connected", `(() => { const r = document.querySelector('.bt-device'); return !!r && r.dataset.status === 'connected' && r.textContent.includes('Fake Monitor 7E2F'); })()`, 10*time.Second)
	services, err := chromedp.Run(b, chromedp.Evaluate[[]int](`window.__bt.requests[0].filters.map((f) => f.services[0])`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0x180d, 0x1822, 0x1810, 0x1809, 0x181d, 0x1808}; !slices.Equal(services, want) {
		t.Errorf("requestDevice asked for services %x, want %x", services, want)
	}

	// Real byte vectors: a heart rate with an RR interval, a continuous
	// pulse oximeter value, a blood pressure in kPa with pulse, and a heart
	// rate cut short (16-bit flag, one byte).
	emit := `window.__bt.emit(0x2a37, '10 48 00 04'); window.__bt.emit(0x2a5f, '00 62 00 4B 00');
	  window.__bt.emit(0x2a35, '05 A0 F0 6B F0 00 00 48 00'); window.__bt.emit(0x2a37, '01 48'); true`
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](emit)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "the bad value's error shown", `(() => { const e = document.querySelector('.bt-device .bt-error'); return !!e && !e.hidden && /not accepted: gatt\.value: Heart Rate Measurement: too short/.test(e.textContent); })()`, 10*time.Second)
	waitJS(t, b, "last reading time shown", `/last reading \d/.test(document.querySelector('.bt-device .bt-last').textContent)`, 5*time.Second)

	// A stream of heart rates 100..139; the device socket is cut after the
	// 20th while values and acks are in flight, and the rest is measured
	// while it is down.
	stream := `(async () => {
	  const socket = () => window.__sockets.filter((s) => s.url.includes('/ws/device')).at(-1);
	  const opened = window.__sockets.length;
	  for (let i = 0; i < 40; i++) {
	    window.__bt.emit(0x2a37, '00 ' + (100 + i).toString(16));
	    if (i === 19) socket().close(4000, 'cut by the test');
	    await new Promise((r) => setTimeout(r, 5)); // pacing, so some values cross the cut
	  }
	  return opened;
	})()`
	opened, err := chromedp.Run(b, chromedp.Evaluate[int](stream, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "device socket reopened", fmt.Sprintf(`window.__sockets.length > %d`, opened), 20*time.Second)
	// Sending again: the page has said the monitor is still connected,
	// since the server took it as gone with the cut socket.
	waitJS(t, b, "relay sending again", `document.querySelector('#bluetooth').dataset.relay === 'sending'`, 20*time.Second)

	// The device goes away: its disconnect reaches the timeline.
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.__bt.disconnect(); true`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "device shown disconnected", `(() => { const r = document.querySelector('.bt-device'); return r.dataset.status === 'disconnected' && !r.querySelector('.bt-reconnect').hidden; })()`, 5*time.Second)
	// What the page holds lives in the page: everything is sent and
	// acknowledged before it is reloaded.
	waitJS(t, b, "everything acknowledged", `document.querySelector('#bluetooth').dataset.pending === '0'`, 30*time.Second)

	// A reloaded page numbers afresh from the server's first ack: its
	// first reading (141) is stored, not taken for one already handled.
	if err := chromedp.Do(b, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "pairing offered again", `document.querySelector('#bluetooth').dataset.bluetooth === 'ready'`, 15*time.Second)
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS("#bt-pair"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "device connected again", `(() => { const r = document.querySelector('.bt-device'); return !!r && r.dataset.status === 'connected'; })()`, 10*time.Second)
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.__bt.emit(0x2a37, '00 8D'); true`)); err != nil {
		t.Fatal(err)
	}

	// The store ends with every reading exactly once.
	want := map[string]int{"8867-4 72": 2, "8867-4 75": 1, "59408-5 98": 1, "8480-6 120": 1, "8462-4 80.3": 1, "8867-4 141": 1}
	for v := 100; v < 140; v++ {
		want[fmt.Sprintf("8867-4 %d", v)] = 1
	}
	var got map[string]int
	deadline := time.Now().Add(30 * time.Second)
	for {
		obs, err := db.ObservationsBetween(ctx, patient.ID, since, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]int{}
		for _, o := range obs {
			got[fmt.Sprintf("%s %g", o.Code, o.Value)]++
		}
		if len(obs) >= 47 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the store, not standing in for a signal
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("stored %q %d times, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("stored %q %d times, want never", k, n)
		}
	}

	// The device's coming and going is on the timeline, once each, under
	// the browser relaying it: its going with the cut socket and its
	// coming back with the next, then its own going and its connecting
	// again after the reload.
	var kinds []string
	deadline = time.Now().Add(10 * time.Second)
	for {
		evs, err := db.DeviceEventsBetween(ctx, patient.ID, since, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		kinds = kinds[:0]
		for _, e := range evs {
			if e.Device == "Fake Monitor 7E2F" {
				kinds = append(kinds, e.Kind)
				if e.Relay != "Web browser" {
					t.Errorf("the monitor's %s stored as relayed by %q, want the browser", e.Kind, e.Relay)
				}
			}
		}
		if len(kinds) >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the store, not standing in for a signal
	}
	if want := []string{store.DeviceConnected, store.DeviceDisconnected, store.DeviceConnected, store.DeviceDisconnected, store.DeviceConnected}; !slices.Equal(kinds, want) {
		t.Errorf("device events %q, want %q", kinds, want)
	}

	// A browser without Web Bluetooth (as Firefox and Safari) is told why
	// and pointed to a device hub, in a second tab of the same session.
	visit, err := chromedp.Run(b, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	tab, cancel := chromedp.NewContext(b)
	defer cancel()
	noBluetooth := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `Object.defineProperty(Navigator.prototype, 'bluetooth', { get: () => undefined, configurable: true });`})
		return err
	})
	if err := chromedp.Do(tab, noBluetooth, chromedp.Navigate(visit)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, "unavailability explained",
		`(() => { const u = document.querySelector('#bt-unavailable'); return document.querySelector('#bluetooth').dataset.bluetooth === 'unavailable' && !u.hidden && /Firefox and Safari/.test(u.textContent) && /device hub/.test(u.textContent) && document.querySelector('#bt-pair').hidden; })()`,
		15*time.Second)
}

// TestBrowserBluetoothSecondTabTakesOver: the patient's visit is open in
// two tabs and both pair a device. The tabs stream as the one browser
// device of the patient, with one sequence, so they cannot both send: the
// newer one does, and the older one stops, says why (and what it holds
// that may not have been sent), rather than reconnecting to take the
// device back, which would have the two replace each other and number
// from each other's acks, dropping readings as already handled.
func TestBrowserBluetoothSecondTabTakesOver(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	link := bookFirstFree(t, ts)
	ctx := context.Background()
	db := testStore(t, ts)
	patient := storedUser(t, db, "maria.silva@demo.bedside.test")
	since := time.Now().Add(-time.Minute)
	fake := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: fakeBluetooth})
		return err
	})
	pair := func(tab context.Context, name string) {
		t.Helper()
		waitJS(t, tab, name+": pairing offered", `document.querySelector('#bluetooth').dataset.bluetooth === 'ready' && !document.querySelector('#bt-pair').hidden`, 15*time.Second)
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#bt-pair"))); err != nil {
			t.Fatal(err)
		}
		waitJS(t, tab, name+": device connected", `(() => { const r = document.querySelector('.bt-device'); return !!r && r.dataset.status === 'connected'; })()`, 10*time.Second)
	}
	// heartRates emits heart rates from..to-1, one every 50 ms.
	heartRates := func(tab context.Context, from, to int) {
		t.Helper()
		js := fmt.Sprintf(`(async () => {
		  for (let v = %d; v < %d; v++) {
		    window.__bt.emit(0x2a37, '00 ' + v.toString(16));
		    await new Promise((r) => setTimeout(r, 50));
		  }
		  return true;
		})()`, from, to)
		if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise)); err != nil {
			t.Fatal(err)
		}
	}
	deviceSockets := func(tab context.Context) int {
		t.Helper()
		n, err := chromedp.Run(tab, chromedp.Evaluate[int](`window.__sockets.filter((s) => s.url.includes('/ws/device')).length`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	older := newBrowser(t, chromium)
	if err := chromedp.Do(older, fake, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	pair(older, "older tab")
	heartRates(older, 60, 65)
	waitJS(t, older, "older tab: everything acknowledged", `document.querySelector('#bluetooth').dataset.pending === '0'`, 30*time.Second)

	visit, err := chromedp.Run(older, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	newer, cancel := chromedp.NewContext(older)
	defer cancel()
	if err := chromedp.Do(newer, fake, chromedp.Navigate(visit)); err != nil {
		t.Fatal(err)
	}
	pair(newer, "newer tab")
	waitJS(t, older, "older tab told the newer one sends",
		`(() => { const q = document.querySelector('#bt-queue'); return !q.hidden && /now sent from another window or tab/.test(q.textContent) && /now sent from another window or tab/.test(document.querySelector('#bt-status').textContent); })()`,
		15*time.Second)
	// A reading the older tab measures now is kept there, not sent, and
	// the page says so.
	heartRates(older, 70, 71)
	waitJS(t, older, "older tab says a reading was not sent", `/1 reading measured here may not have reached the clinic/.test(document.querySelector('#bt-queue').textContent)`, 5*time.Second)
	// The newer tab streams on, for longer than the older tab's first
	// reconnect would wait (at most 600 ms), had it tried.
	heartRates(newer, 80, 100)
	waitJS(t, newer, "newer tab: everything acknowledged", `document.querySelector('#bluetooth').dataset.pending === '0'`, 30*time.Second)
	if o, n := deviceSockets(older), deviceSockets(newer); o != 1 || n != 1 {
		t.Errorf("device sockets opened: %d by the older tab, %d by the newer, want one each (neither taking the device back)", o, n)
	}

	// The store holds each reading sent exactly once, and the one kept in
	// the older tab not at all.
	want := map[string]int{}
	for _, v := range []int{60, 61, 62, 63, 64} {
		want[fmt.Sprintf("8867-4 %d", v)] = 1
	}
	for v := 80; v < 100; v++ {
		want[fmt.Sprintf("8867-4 %d", v)] = 1
	}
	var got map[string]int
	deadline := time.Now().Add(30 * time.Second)
	for {
		obs, err := db.ObservationsBetween(ctx, patient.ID, since, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]int{}
		for _, o := range obs {
			got[fmt.Sprintf("%s %g", o.Code, o.Value)]++
		}
		if len(obs) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the store, not standing in for a signal
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("stored %q %d times, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("stored %q %d times, want never", k, n)
		}
	}
}
