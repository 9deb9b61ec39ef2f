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
// not each other's; a relay's going takes its devices until each comes
// back; a device is known by its name and its relay's together; and each
// relayed value names its device by a name the server accepts.
const deviceStatusChecks = `(async () => {
  const { DeviceStatus } = await import('/static/devicestatus.js');
  const bad = [];
  const eq = (what, got, want) => { if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(what + ': got ' + JSON.stringify(got) + ', want ' + JSON.stringify(want)); };
  const at = '2026-11-25T10:00:00Z';
  const list = document.createElement('ul');
  const d = new DeviceStatus(list);
  const ev = (device, event, relay) => d.event({ device, event, relay, time: at });
  const W = 'Web browser';
  const offs = () => [d.off('Strap', W), d.off('Thermometer', W), d.off('Hub')];
  ev(W, 'connected');
  eq('a socket alone', d.allDisconnected(), []);
  d.seen('Strap', W);
  d.seen('Thermometer', W);
  d.seen('Hub', undefined);
  eq('all live', offs(), [false, false, false]);
  ev('Strap', 'disconnected', W);
  eq('the strap goes', offs(), [true, false, false]);
  eq('its own state', [d.state('Strap', W), d.state('Thermometer', W)], ['disconnected', 'connected']);
  ev(W, 'disconnected');
  eq('the browser goes', offs(), [true, true, false]);
  eq('its devices go with it', [d.state('Strap', W), d.state('Thermometer', W)], ['disconnected', 'disconnected']);
  eq('the hub still sends', d.allDisconnected(), []);
  ev('Hub', 'disconnected');
  eq('nothing sends', d.allDisconnected(), [W, 'Hub']);
  // The browser back (a reloaded page, another tab): what it relayed is
  // still gone until it says it is connected, or sends a reading.
  ev(W, 'connected');
  eq('the browser back, its devices not', offs().slice(0, 2), [true, true]);
  ev('Strap', 'connected', W);
  eq('the strap back', offs().slice(0, 2), [false, true]);
  d.seen('Thermometer', W);
  eq('the thermometer sends again', offs().slice(0, 2), [false, false]);
  eq('listed', [...list.children].map((li) => li.dataset.device + ' ' + li.dataset.state + ' ' + (li.dataset.relay || '-')),
    [W + ' connected -', 'Strap connected ' + W, 'Thermometer connected ' + W, 'Hub disconnected -']);

  // A device streaming on its own socket, and one of its name that the
  // browser relays, are two devices: the browser's going greys only the
  // relayed one's values.
  const n = new DeviceStatus(null);
  n.event({ device: 'Nonin 3230', event: 'connected', time: at });
  n.seen('Nonin 3230');
  n.event({ device: W, event: 'connected', time: at });
  n.seen('Nonin 3230', W);
  n.event({ device: W, event: 'disconnected', time: at });
  n.seen('Nonin 3230');
  eq('a name on its own socket and relayed', [n.off('Nonin 3230'), n.off('Nonin 3230', W)], [false, true]);
  eq('the one on its own socket still sends', n.allDisconnected(), []);
  // And the other way: the device on its own socket going leaves the
  // relayed one's values live.
  n.event({ device: W, event: 'connected', time: at });
  n.seen('Nonin 3230', W);
  n.event({ device: 'Nonin 3230', event: 'disconnected', time: at });
  eq('its own socket goes', [n.off('Nonin 3230'), n.off('Nonin 3230', W)], [true, false]);
  // Two relays each relaying a device of one name: the hub going greys
  // the values it relayed, not the browser's.
  const two = new DeviceStatus(null);
  two.seen('Omron BP', 'Home hub');
  two.seen('Omron BP', W);
  two.event({ device: 'Home hub', event: 'disconnected', time: at });
  eq('one name, two relays', [two.off('Omron BP', 'Home hub'), two.off('Omron BP', W)], [true, false]);
  eq('one name, two relays, still sending', two.allDisconnected(), []);
  // A relayed event named as its relay (refused by the server, whatever
  // it sends) is another device's, not the relay's.
  const self = new DeviceStatus(null);
  self.event({ device: W, event: 'connected', time: at });
  self.seen('Strap', W);
  self.event({ device: W, relay: W, event: 'disconnected', time: at });
  eq('a device named as its relay', [self.state(W), self.off('Strap', W)], ['connected', false]);
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
  eq('the browser name is numbered', [p.nameFor({ name: 'Web browser' }), p.nameFor({ name: ' web   BROWSER' })], ['Web browser (2)', 'web BROWSER (2)']);
  eq('names told apart as the server does', p.nameFor({ name: 'polar  h10' }), 'polar h10 (3)');
  eq('invisible and reordering characters dropped',
    ['Polar\u200bH10', '\u202eStrap', 'Nonin\u2066 3230\u2069', 'A\u2028B\u2029C', 'Omron\ue000', 'a\u00adb', 'Thermomètre 血压'].map((name) => p.nameFor({ name })),
    ['PolarH10', 'Strap', 'Nonin 3230', 'ABC', 'Omron', 'ab', 'Thermomètre 血压']);
  eq('64 characters, not UTF-16 units', [...p.nameFor({ name: '🫀'.repeat(70) })].length, 64);
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
