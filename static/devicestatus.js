// Device status on the vitals overlay: one item per device that streams
// to the patient, connected or disconnected, from the stream's `device`
// events (a device that sends readings without a connect event in the
// history is taken as connected). Told by an icon's shape and by words,
// not by colour alone.

import { clockTime } from './zonetime.js';

/** DeviceStatus keeps the list of devices in a <ul>. */
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

  /** seen notes a reading from device: it is connected if not known. */
  seen(device) {
    if (device && !this.items.has(device)) this.set(device, 'connected', NaN);
  }

  set(device, state, t) {
    if (!this.list) return;
    let it = this.items.get(device);
    if (!it) {
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
      it = { li, icon, text, state: '' };
      this.items.set(device, it);
    }
    it.state = state;
    it.li.dataset.state = state;
    it.icon.textContent = state === 'connected' ? '●' : '○';
    const when = Number.isFinite(t) ? ` at ${clockTime(t)}` : '';
    it.text.textContent = `${device}: ${state}`;
    it.li.title = `${device} ${state}${when}`;
  }
}
