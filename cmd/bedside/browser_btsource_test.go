package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// fakeBluetoothDevices stands in for navigator.bluetooth before the page
// loads: each requestDevice hands out the next of two devices, a heart
// rate strap and a thermometer. window.__bt.emit(i, characteristic, hex)
// makes device i send a value, window.__bt.disconnect(i) makes it go.
const fakeBluetoothDevices = `(() => {
  const uuid = (n) => n.toString(16).padStart(8, '0') + '-0000-1000-8000-00805f9b34fb';
  const norm = (x) => typeof x === 'number' ? uuid(x) : String(x).toLowerCase();
  class Target {
    constructor() { this.listeners = {}; }
    addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
    removeEventListener(type, fn) { this.listeners[type] = (this.listeners[type] || []).filter((f) => f !== fn); }
    fire(type, ev) { for (const fn of this.listeners[type] || []) fn(ev); }
  }
  const make = (id, name, offered) => {
    const chars = new Map();
    const device = new Target();
    Object.assign(device, { id, name, chars });
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
    return device;
  };
  const devices = [
    make('fake-strap', 'Polar H10 7E2F', { [uuid(0x180d)]: [0x2a37] }),
    make('fake-thermometer', 'Braun IRT 6525', { [uuid(0x1809)]: [0x2a1c] }),
  ];
  let next = 0;
  window.__bt = {
    emit(i, c, hex) {
      const ch = devices[i].chars.get(uuid(c));
      if (!ch || !ch.notifying) throw new Error('characteristic ' + c.toString(16) + ' of device ' + i + ' is not subscribed');
      const bytes = new Uint8Array(hex.split(' ').map((h) => parseInt(h, 16)));
      ch.value = new DataView(bytes.buffer);
      ch.fire('characteristicvaluechanged', { target: ch });
      return true;
    },
    disconnect(i) {
      const d = devices[i];
      d.gatt.connected = false;
      for (const ch of d.chars.values()) ch.notifying = false;
      d.fire('gattserverdisconnected', { target: d });
      return true;
    },
  };
  const bluetooth = { async requestDevice() { return devices[next++]; } };
  Object.defineProperty(Navigator.prototype, 'bluetooth', { get: () => bluetooth, configurable: true });
})();`

// TestBrowserBluetoothDeviceGoes: the patient's browser relays two
// Bluetooth devices, a heart rate strap and a thermometer. When the strap
// goes, the physician's overlay greys the heart rate it sent, says it has
// disconnected, and keeps the thermometer's temperature live; when it
// comes back, the heart rate is live again. With the strap alone, its
// going is what the status line says.
func TestBrowserBluetoothDeviceGoes(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	link := bookFirstFree(t, ts)

	patient := newBrowser(t, chromium)
	fake := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: fakeBluetoothDevices})
		return err
	})
	if err := chromedp.Do(patient, fake, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(patient, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	visit := 0
	if _, err := fmt.Sscanf(loc[len(ts.URL):], "/visit/%d", &visit); err != nil {
		t.Fatalf("patient's page %q: %v", loc, err)
	}
	doctor := newBrowser(t, chromium)
	openConsult(t, ts, doctor, ts.URL, visit)

	row := func(name string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('.bt-device')].find((r) => r.querySelector('.bt-name').textContent === %q)`, name)
	}
	pair := func(name string) {
		t.Helper()
		waitJS(t, patient, "pairing offered", `document.querySelector('#bluetooth').dataset.bluetooth === 'ready' && !document.querySelector('#bt-pair').disabled`, 15*time.Second)
		click(t, patient, "pair", "#bt-pair", 10*time.Second)
		waitJS(t, patient, name+" connected", fmt.Sprintf(`(() => { const r = %s; return !!r && r.dataset.status === 'connected'; })()`, row(name)), 10*time.Second)
	}
	emit := func(i int, characteristic int, hex string) {
		t.Helper()
		if _, err := chromedp.Run(patient, chromedp.Evaluate[bool](fmt.Sprintf(`window.__bt.emit(%d, %d, %q)`, i, characteristic, hex))); err != nil {
			t.Fatal(err)
		}
	}
	disconnect := func(i int) {
		t.Helper()
		if _, err := chromedp.Run(patient, chromedp.Evaluate[bool](fmt.Sprintf(`window.__bt.disconnect(%d)`, i))); err != nil {
			t.Fatal(err)
		}
	}
	// tileOff is whether a tile is shown as from a device that went.
	tileOff := func(code string) string {
		return fmt.Sprintf(`(() => { const e = document.querySelector('#tile-%s'); return e.dataset.deviceOff === 'true' && e.classList.contains('stale') && e.querySelector('.stale-note').textContent === 'disconnected'; })()`, code)
	}
	tileLive := func(code string) string {
		return fmt.Sprintf(`document.querySelector('#tile-%s').dataset.deviceOff !== 'true'`, code)
	}
	item := func(name, state string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('#vitals-devices li')].some((li) => li.dataset.device === %q && li.dataset.state === %q)`, name, state)
	}
	status := `document.querySelector('#vitals-status').textContent`

	// The strap alone: its heart rate, then its going, said as such.
	pair("Polar H10 7E2F")
	emit(0, 0x2a37, "00 48")
	waitJS(t, doctor, "heart rate shown", `document.querySelector('#vital-8867-4').textContent === '72'`, 20*time.Second)
	waitJS(t, doctor, "strap listed connected", item("Polar H10 7E2F", "connected"), 10*time.Second)
	disconnect(0)
	waitJS(t, doctor, "heart rate greyed as disconnected", tileOff("8867-4"), 20*time.Second)
	waitJS(t, doctor, "strap listed disconnected", item("Polar H10 7E2F", "disconnected"), 10*time.Second)
	waitJS(t, doctor, "status says the strap disconnected", status+` === 'Vitals: Polar H10 7E2F disconnected'`, 10*time.Second)

	// It comes back: live again.
	click(t, patient, "reconnect the strap", `.bt-device .bt-reconnect:not([hidden])`, 10*time.Second)
	waitJS(t, patient, "strap connected again", fmt.Sprintf(`%s.dataset.status === 'connected'`, row("Polar H10 7E2F")), 10*time.Second)
	waitJS(t, doctor, "heart rate live again", tileLive("8867-4")+` && `+item("Polar H10 7E2F", "connected"), 20*time.Second)
	waitJS(t, doctor, "status live again", status+` === 'Vitals: live'`, 10*time.Second)

	// With the thermometer too (37.2 °C as an IEEE 11073 FLOAT), only the
	// strap's values follow the strap.
	pair("Braun IRT 6525")
	emit(1, 0x2a1c, "00 74 01 00 FF")
	emit(0, 0x2a37, "00 49")
	waitJS(t, doctor, "temperature and heart rate shown",
		`document.querySelector('#vital-8310-5').textContent === '37.2' && document.querySelector('#vital-8867-4').textContent === '73'`, 20*time.Second)
	disconnect(0)
	waitJS(t, doctor, "heart rate greyed again", tileOff("8867-4"), 20*time.Second)
	var shown struct {
		TempOff, TempNote, Status string
		Thermometer               bool
	}
	jsEval(t, doctor, `(() => { const e = document.querySelector('#tile-8310-5'); return { TempOff: e.dataset.deviceOff || '', TempNote: e.querySelector('.stale-note').textContent, Status: `+status+`, Thermometer: `+item("Braun IRT 6525", "connected")+` }; })()`, &shown)
	if shown.TempOff == "true" || shown.TempNote == "disconnected" {
		t.Errorf("temperature from the connected thermometer shown as disconnected (deviceOff %q, note %q)", shown.TempOff, shown.TempNote)
	}
	if !shown.Thermometer {
		t.Error("thermometer not listed connected")
	}
	if shown.Status != "Vitals: live" {
		t.Errorf("status %q with the thermometer still sending, want Vitals: live", shown.Status)
	}
	// The thermometer goes too: nothing measures any more.
	disconnect(1)
	waitJS(t, doctor, "temperature greyed", tileOff("8310-5"), 20*time.Second)
	waitJS(t, doctor, "status says every device went", status+` === 'Vitals: every device disconnected'`, 10*time.Second)
}

// deviceStatusChecks exercises static/devicestatus.js and the naming of
// static/bluetooth.js on their own and returns what went wrong, or "":
// values relayed through a relay follow their own device and the relay,
// not each other's, and each relayed value names its device.
const deviceStatusChecks = `(async () => {
  const { DeviceStatus } = await import('/static/devicestatus.js');
  const bad = [];
  const eq = (what, got, want) => { if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(what + ': got ' + JSON.stringify(got) + ', want ' + JSON.stringify(want)); };
  const list = document.createElement('ul');
  const d = new DeviceStatus(list);
  const ev = (device, event, relay) => d.event({ device, event, relay, time: '2026-11-25T10:00:00Z' });
  ev('Web browser', 'connected');
  eq('a socket alone', d.allDisconnected(), []);
  d.seen('Strap', 'Web browser');
  d.seen('Thermometer', 'Web browser');
  d.seen('Hub', undefined);
  eq('all live', ['Strap', 'Thermometer', 'Hub'].map((x) => d.off(x)), [false, false, false]);
  ev('Strap', 'disconnected', 'Web browser');
  eq('the strap goes', ['Strap', 'Thermometer', 'Hub'].map((x) => d.off(x)), [true, false, false]);
  eq('its own state', [d.state('Strap'), d.state('Thermometer')], ['disconnected', 'connected']);
  ev('Web browser', 'disconnected');
  eq('the browser goes', ['Strap', 'Thermometer', 'Hub'].map((x) => d.off(x)), [true, true, false]);
  eq('the hub still sends', d.allDisconnected(), []);
  ev('Hub', 'disconnected');
  eq('nothing sends', d.allDisconnected(), ['Strap', 'Web browser', 'Hub']);
  ev('Web browser', 'connected');
  eq('the browser back, the strap not', ['Strap', 'Thermometer'].map((x) => d.off(x)), [true, false]);
  ev('Strap', 'connected', 'Web browser');
  eq('the strap back', d.off('Strap'), false);
  eq('listed', [...list.children].map((li) => li.dataset.device + ' ' + li.dataset.state + ' ' + (li.dataset.relay || '-')),
    ['Web browser connected -', 'Strap connected Web browser', 'Thermometer connected Web browser', 'Hub disconnected -']);
  const one = new DeviceStatus(null);
  one.event({ device: 'Strap', event: 'connected', relay: 'Web browser', time: '2026-11-25T10:00:00Z' });
  one.seen('Strap', 'Web browser');
  one.event({ device: 'Strap', event: 'disconnected', relay: 'Web browser', time: '2026-11-25T10:00:00Z' });
  eq('the one device named, not its relay', one.allDisconnected(), ['Strap']);
  // The patient's page relays each value under its device's name, and
  // keeps two devices of one name apart.
  const { Pairing } = await import('/static/bluetooth.js');
  const sent = [];
  const p = new Pairing({ bluetooth: null, relay: { send: (body) => sent.push(body) } });
  p.devices.set('a', { name: 'Polar H10' });
  eq('a second device of a name', p.nameFor({ name: 'Polar H10' }), 'Polar H10 (2)');
  p.devices.set('b', { name: 'Polar H10 (2)' });
  eq('a third', p.nameFor({ name: ' Polar H10\u0007 ' }), 'Polar H10 (3)');
  eq('no name', p.nameFor({}), 'Bluetooth device');
  eq('a long name stays within 64', p.nameFor({ name: 'x'.repeat(70) }).length, 64);
  p.devices.set('c', { name: 'x'.repeat(64) });
  eq('a long name numbered', p.nameFor({ name: 'x'.repeat(70) }), 'x'.repeat(60) + ' (2)');
  p.value({ id: 'a', name: 'Polar H10' }, 'svc', 'chr', new DataView(new Uint8Array([0, 72]).buffer));
  eq('a value names its device', sent.map((b) => b.gatt.device), ['Polar H10']);
  return bad.join('; ');
})()`

// TestBrowserDeviceStatus runs the overlay's device status module, and the
// patient page's naming of its devices, in Chromium.
func TestBrowserDeviceStatus(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	b := newBrowser(t, chromium)
	if err := chromedp.Do(b, chromedp.Navigate(ts.URL+"/healthz")); err != nil {
		t.Fatal(err)
	}
	bad, err := chromedp.Run(b, chromedp.Evaluate[string](deviceStatusChecks, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if bad != "" {
		t.Error(bad)
	}
}
