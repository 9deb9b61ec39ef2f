// Device status on the vitals overlay: one item per device that streams
// to the patient, connected or disconnected, from the stream's `device`
// events (a device that sends readings without a connect event in the
// history is taken as connected). Told by an icon's shape and by words,
// not by colour alone. Without a list it only keeps each device's state
// (the NEWS2 panel's use).

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
    this.items = new Map(); // device name -> {li, state}
  }

  /** event applies a `device` message: {event, device, time}. */
  event(m) {
    if (typeof m.device !== 'string' || (m.event !== 'connected' && m.event !== 'disconnected')) return;
    this.set(m.device, m.event, Date.parse(m.time));
  }

  /** state is device's state: 'connected', 'disconnected' or '' if not known. */
  state(device) {
    return this.items.get(device)?.state || '';
  }

  /** allDisconnected lists the devices known when none of them is connected, else nothing. */
  allDisconnected() {
    const all = [...this.items.entries()];
    return all.every(([, it]) => it.state === 'disconnected') ? all.map(([d]) => d) : [];
  }

  /** seen notes a reading from device: it is connected if not known. */
  seen(device) {
    if (device && !this.items.has(device)) this.set(device, 'connected', NaN);
  }

  set(device, state, t) {
    let it = this.items.get(device);
    if (!it) {
      it = { state: '' };
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
    const when = Number.isFinite(t) ? ` at ${clockTime(t)}` : '';
    it.text.textContent = `${device}: ${state}`;
    it.li.title = `${device} ${state}${when}`;
  }
}
