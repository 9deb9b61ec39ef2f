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
// of the relay's other devices stay live.

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
    // device name -> {li, state, relay, relays, measures}: relay is the
    // device it is relayed by; relays, that it relays others; measures,
    // that it sent readings of its own.
    this.items = new Map();
  }

  /** event applies a `device` message: {event, device, relay, time}. */
  event(m) {
    if (typeof m.device !== 'string' || (m.event !== 'connected' && m.event !== 'disconnected')) return;
    this.via(m.device, m.relay);
    this.set(m.device, m.event, Date.parse(m.time));
  }

  /** state is device's own state: 'connected', 'disconnected' or '' if not known. */
  state(device) {
    return this.items.get(device)?.state || '';
  }

  /**
   * off says whether the values device sent are no longer coming: it
   * disconnected, or the relay it came through did.
   */
  off(device) {
    const it = this.items.get(device);
    if (!it) return false;
    return it.state === 'disconnected' || (!!it.relay && this.state(it.relay) === 'disconnected');
  }

  /**
   * allDisconnected lists what went away when no device that measures is
   * still sending, else nothing: each such device by its name, or by its
   * relay's when the relay went. A relay that only relays others is not
   * counted as measuring.
   */
  allDisconnected() {
    const sources = [...this.items.entries()].filter(([, it]) => !it.relays || it.measures);
    if (!sources.every(([d]) => this.off(d))) return [];
    const gone = sources.map(([d, it]) => (it.state === 'disconnected' || !it.relay ? d : it.relay));
    return [...new Set(gone)];
  }

  /** seen notes a reading from device (relayed by relay, if given): each is connected if not known. */
  seen(device, relay) {
    if (!device) return;
    this.via(device, relay);
    if (!this.items.has(device) || this.items.get(device).state === '') this.set(device, 'connected', NaN);
    this.items.get(device).measures = true;
  }

  // via notes that relay relays device.
  via(device, relay) {
    if (typeof relay !== 'string' || !relay || relay === device) return;
    if (!this.items.has(relay)) this.set(relay, 'connected', NaN);
    this.items.get(relay).relays = true;
    if (!this.items.has(device)) this.set(device, '', NaN);
    const it = this.items.get(device);
    it.relay = relay;
    if (it.li) {
      it.li.dataset.relay = relay;
      this.label(device, it, NaN);
    }
  }

  set(device, state, t) {
    let it = this.items.get(device);
    if (!it) {
      it = { state: '', relay: '', relays: false, measures: false };
      this.items.set(device, it);
      if (this.list) {
        const li = document.createElement('li');
        li.className = 'device';
        li.dataset.device = device;
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
    this.label(device, it, t);
  }

  label(device, it, t) {
    const state = it.state || 'not known yet';
    const when = Number.isFinite(t) ? ` at ${clockTime(t)}` : '';
    it.text.textContent = `${device}: ${state}`;
    it.li.title = `${device}${it.relay ? ` (through ${it.relay})` : ''} ${state}${when}`;
  }
}
