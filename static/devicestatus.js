// Device status on the vitals overlay: one item per device that streams
// to the patient, connected or disconnected, from the stream's `device`
// events (a device that sends readings without a connect event in the
// history is taken as connected). Told by an icon's shape and by words,
// not by colour alone. Without a list it only keeps each device's state
// (the NEWS2 panel's use).
//
// A Bluetooth device paired to a relay (the patient's browser, a hub)
// comes with the relay's name in `relay` (docs/protocol.md): its values
// are off when it disconnects, and when its relay does, while the values
// of the relay's other devices stay live. A device is known by its name
// and its relay's together, so a relayed device named as one streaming on
// its own socket, or two relays' devices of one name, stay apart. A relay
// going takes its devices with it: they are disconnected until each says
// it is connected again, or sends a reading.

import { clockTime } from './zonetime.js';

/**
 * followsDevice says whether a reading of code stops being current when
 * the device that sent it disconnects: a continuous measurement does; a
 * blood pressure is a spot measurement, shown with its time, and stays
 * what it was.
 */
export function followsDevice(code) {
  return code !== '8480-6' && code !== '8462-4';
}

/** DeviceStatus keeps the list of devices in a <ul>, if given one. */
export class DeviceStatus {
  constructor(list) {
    this.list = list;
    // key(device, relay) -> {device, relay, li, state, relays, measures}:
    // relay is the name of the device it is relayed by ('' when it streams
    // on its own socket); relays, that it relays others; measures, that it
    // sent readings of its own.
    this.items = new Map();
  }

  /** event applies a `device` message: {event, device, relay, time}. */
  event(m) {
    if (typeof m.device !== 'string' || (m.event !== 'connected' && m.event !== 'disconnected')) return;
    const relay = relayOf(m.relay);
    const t = Date.parse(m.time);
    this.via(m.device, relay);
    this.set(m.device, relay, m.event, t);
    // A relay's socket ending takes each device it relays: none of them
    // is live again until it says so or sends a reading, even once the
    // relay is back.
    if (!relay && m.event === 'disconnected') {
      for (const it of this.items.values()) {
        if (it.relay === m.device && it.state !== 'disconnected') this.set(it.device, it.relay, 'disconnected', t);
      }
    }
  }

  /** state is the device's own state: 'connected', 'disconnected' or '' if not known. */
  state(device, relay) {
    return this.items.get(key(device, relayOf(relay)))?.state || '';
  }

  /**
   * off says whether the values the device (relayed by relay, if given)
   * sent are no longer coming: it disconnected, or the relay it came
   * through did.
   */
  off(device, relay) {
    relay = relayOf(relay);
    const it = this.items.get(key(device, relay));
    if (!it) return false;
    return it.state === 'disconnected' || (!!relay && this.state(relay) === 'disconnected');
  }

  /**
   * allDisconnected lists what went away when no device that measures is
   * still sending, else nothing: each such device by its name, or by its
   * relay's when the relay went. A relay that only relays others is not
   * counted as measuring.
   */
  allDisconnected() {
    const sources = [...this.items.values()].filter((it) => !it.relays || it.measures);
    if (!sources.every((it) => this.off(it.device, it.relay))) return [];
    const gone = sources.map((it) => (it.relay && this.state(it.relay) === 'disconnected' ? it.relay : it.device));
    return [...new Set(gone)];
  }

  /**
   * seen notes a reading from the device (relayed by relay, if given):
   * each is connected if not known, and a relayed device is connected
   * again, since its relay has it.
   */
  seen(device, relay) {
    if (!device) return;
    relay = relayOf(relay);
    this.via(device, relay);
    const it = this.items.get(key(device, relay));
    if (!it || it.state === '' || (relay && it.state === 'disconnected')) this.set(device, relay, 'connected', NaN);
    this.items.get(key(device, relay)).measures = true;
  }

  // via notes that relay relays device.
  via(device, relay) {
    if (!relay) return;
    if (!this.items.has(key(relay, ''))) this.set(relay, '', 'connected', NaN);
    this.items.get(key(relay, '')).relays = true;
    if (!this.items.has(key(device, relay))) this.set(device, relay, '', NaN);
  }

  set(device, relay, state, t) {
    const k = key(device, relay);
    let it = this.items.get(k);
    if (!it) {
      it = { device, relay, state: '', relays: false, measures: false };
      this.items.set(k, it);
      if (this.list) {
        const li = document.createElement('li');
        li.className = 'device';
        li.dataset.device = device;
        if (relay) li.dataset.relay = relay;
        const icon = document.createElement('span');
        icon.className = 'device-icon';
        icon.setAttribute('aria-hidden', 'true');
        const text = document.createElement('span');
        text.className = 'device-text';
        li.append(icon, text);
        this.list.append(li);
        Object.assign(it, { li, icon, text });
      }
    }
    it.state = state;
    if (!it.li) return;
    it.li.dataset.state = state;
    it.icon.textContent = state === 'connected' ? '●' : '○';
    const said = state || 'not known yet';
    const when = Number.isFinite(t) ? ` at ${clockTime(t)}` : '';
    it.text.textContent = `${device}: ${said}`;
    it.li.title = `${device}${relay ? ` (through ${relay})` : ''} ${said}${when}`;
  }
}

// relayOf is a message's relay, '' when it names none.
function relayOf(relay) {
  return typeof relay === 'string' ? relay : '';
}

// key is how a device is known: by its name and its relay's together.
function key(device, relay) {
  return JSON.stringify([relay, device]);
}
