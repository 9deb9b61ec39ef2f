// Web Bluetooth pairing on the patient's visit page: the patient pairs a
// home device, and each value its measurement characteristics send is
// relayed, raw, to the server over the device socket (docs/protocol.md,
// "Relayed Bluetooth values"), which parses it. Nothing is parsed here.
//
// Two parts, each given what it talks to so a test can drive the real code
// with a fake: Relay (the socket: numbering, a bounded queue of what is not
// acknowledged, resending after a reconnect) and Pairing (the Bluetooth
// object: requestDevice, notifications, disconnects).

import { ReconnectingSocket } from './socket.js';
import { clockTime } from './zonetime.js';

/** PROFILES are the services offered when pairing, with the measurement characteristics read from each. */
export const PROFILES = [
  { service: 0x180d, name: 'heart rate monitor', characteristics: [0x2a37] },
  { service: 0x1822, name: 'pulse oximeter', characteristics: [0x2a5f, 0x2a5e] },
  { service: 0x1810, name: 'blood pressure monitor', characteristics: [0x2a35] },
  { service: 0x1809, name: 'thermometer', characteristics: [0x2a1c] },
  { service: 0x181d, name: 'weight scale', characteristics: [0x2a9d] },
  { service: 0x1808, name: 'glucose meter', characteristics: [0x2a18] },
];

/** uuid turns a 16-bit assigned number into the 128-bit UUID Web Bluetooth uses. */
export function uuid(n) {
  return n.toString(16).padStart(8, '0') + '-0000-1000-8000-00805f9b34fb';
}

/** base64 encodes the bytes of a DataView (a characteristic value). */
export function base64(view) {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * unavailable says, in words, why this browser cannot pair devices, or
 * returns '' when it can.
 */
export function unavailable(bluetooth, secure) {
  const hub = 'If you have a Bedside device hub, it sends your readings without this page: just switch it on.';
  if (!secure) {
    return 'Pairing devices needs a secure (https) connection to this page. Open the link from your invitation again, which uses one. ' + hub;
  }
  if (!bluetooth) {
    return 'This browser cannot pair Bluetooth devices (Firefox and Safari do not support it, nor does Chrome on Linux unless it is turned on in its settings). ' +
      'Open this page in Chrome or Edge on Windows, a Mac, a Chromebook or an Android phone to pair a device. ' + hub;
  }
  return '';
}

/** REPLACED is the reason the server closes a device's connection with when a newer one took its place. */
const REPLACED = 'replaced by a newer connection';

/**
 * Relay sends messages to the device socket under its acknowledgement
 * contract: each message gets the next seq, is kept until an ack covers it,
 * and is sent again after a reconnect. The server's first message on each
 * connection is an ack saying where the sequence stands; nothing is sent
 * before it, and the first one ever numbers the queue from there.
 *
 * connect(handlers) must return a transport with start(), stop() and
 * send(obj) -> bool that calls handlers.onopen(), onmessage(obj) and
 * onclose(event, willRetry, delayMs), reconnecting with backoff itself
 * (a ReconnectingSocket). Callbacks: onrejected(meta, error) for a message
 * the server refused, onchange() when the queue or the connection changes,
 * onresumed() when a connection is ready after an earlier one was: the
 * server took every device this page relays as gone when the earlier one
 * ended (docs/protocol.md, "The browser as a relay").
 *
 * A close with 1008 is the server refusing this browser (docs/protocol.md,
 * "Credentials are re-checked on open sockets"), e.g. after the clinic
 * turned its vitals off: trying again would be refused the same way, each
 * try an audited denial. The relay then stops, keeps what it holds, and
 * sets refused to the server's reason until retry(), a user's action.
 */
export class Relay {
  constructor({ connect, max = 2000, onrejected = () => {}, onchange = () => {}, onresumed = () => {} }) {
    this.max = max;
    this.queue = []; // {seq, msg, meta}, oldest first; seq 0 until the first ack
    this.next = 0; // the last seq given out
    this.synced = false; // an ack has told where the sequence stands
    this.ready = false; // this connection's first ack has come
    this.dropped = 0; // messages pushed out of a full queue
    this.connected = false;
    this.replaced = false; // another window took over: nothing more is sent from here
    this.refused = ''; // the server's reason, while it refuses this browser
    this.onrejected = onrejected;
    this.onchange = onchange;
    this.onresumed = onresumed;
    this.wasReady = false; // a connection was ready before this one
    this.transport = connect({
      onopen: () => { this.connected = true; this.ready = false; this.onchange(); },
      onmessage: (m) => this.receive(m),
      onclose: (e) => {
        this.connected = false;
        this.ready = false;
        if (e && e.code === 1008 && e.reason === REPLACED) {
          // Another window or tab of this visit (or its link opened on
          // another device) streams as the same browser device now. Both
          // reconnecting would take the device from each other in turn,
          // numbering from each other's acks, and drop readings as already
          // handled: the newer one sends, this one stops and says so.
          this.replaced = true;
          this.transport.stop();
        } else if (e && e.code === 1008) {
          // Refused (docs/protocol.md, "Credentials are re-checked"): the
          // clinic turned this browser's vitals off, or the session ended.
          this.refused = e.reason || 'the server refused this browser';
          this.transport.stop();
        }
        this.onchange();
      },
    });
    this.started = false;
  }

  /** send queues one envelope body ({gatt} or {device}) and sends it when it can. */
  send(body, meta) {
    if (this.queue.length >= this.max) {
      this.queue.shift(); // the oldest goes: a bounded memory, and said on the page
      this.dropped++;
    }
    const e = { seq: this.synced ? ++this.next : 0, msg: body, meta };
    this.queue.push(e);
    if (!this.started) {
      this.started = true;
      this.transport.start();
    }
    if (this.ready) this.write(e);
    this.onchange();
  }

  /** pending is how many messages wait for an acknowledgement. */
  get pending() {
    return this.queue.length;
  }

  stop() {
    this.transport.stop();
  }

  /** retry connects again after a refusal (the user asked to). */
  retry() {
    if (!this.refused) return;
    this.refused = '';
    this.transport.start();
    this.onchange();
  }

  write(e) {
    this.transport.send({ seq: e.seq, ...e.msg });
  }

  receive(m) {
    if (typeof m.ack === 'number') {
      this.ack(m.ack);
    } else if (m.error && typeof m.seq === 'number') {
      // Refused for good (it counts as handled; the ack that follows drops it).
      const e = this.queue.find((q) => q.seq === m.seq);
      this.onrejected(e ? e.meta : null, m.error);
    } else if (m.error) {
      console.warn('device socket:', m.error); // the server closes, and we resend after reconnecting
    }
  }

  ack(n) {
    let resend = false;
    if (!this.synced || n > this.next) {
      // The first ack, or one beyond anything given out (the server
      // handled those numbers in an earlier run): number what is held
      // to follow it.
      this.synced = true;
      this.next = n;
      for (const e of this.queue) e.seq = ++this.next;
      resend = this.ready;
    } else {
      let i = 0;
      while (i < this.queue.length && this.queue[i].seq <= n) i++;
      if (i) this.queue.splice(0, i);
    }
    if (!this.ready && this.connected && this.queue.length && this.queue[0].seq > n + 1) {
      // A connection's first ack short of what is held: the server will
      // never get the messages between (its device is new, as when the
      // clinic allowed this browser again; or a full queue dropped them),
      // and would hold everything after them. Nothing is in flight on
      // this connection yet: number what is held to follow its ack.
      this.next = n;
      for (const e of this.queue) e.seq = ++this.next;
    }
    let resumed = false;
    if (!this.ready && this.connected) {
      this.ready = true;
      resend = true;
      resumed = this.wasReady;
      this.wasReady = true;
    }
    if (resend) for (const e of this.queue) this.write(e);
    if (resumed) this.onresumed(); // after what is held, so its events come in order
    this.onchange();
  }
}

/** socketRelay is the production Relay: the device socket of this page's origin. */
export function socketRelay(path, opts) {
  return new Relay({ ...opts, connect: (h) => new ReconnectingSocket(path, h) });
}

// What a relayed device's name may not hold, as the server refuses it:
// characters that do not show or that reorder the rest (Unicode's Other
// categories but unassigned code points, line and paragraph separators).
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Zl}\p{Zp}]/gu;

// MAX_NAME is the longest name the server accepts, in characters.
const MAX_NAME = 64;

// BROWSER_RELAY is the name the browser relays under: no device may take it.
const BROWSER_RELAY = 'Web browser';

// first is s's first n characters (code points, as the server counts).
function first(s, n) {
  return [...s].slice(0, n).join('');
}

// fold is how two names are told apart: not by case or runs of spaces.
function fold(s) {
  return s.replace(/\s+/gu, ' ').trim().toLowerCase();
}

/**
 * Pairing pairs devices through bluetooth (navigator.bluetooth, or a fake
 * with the same shape) and relays what they measure through relay. Each
 * paired device is an entry {id, name, status, lastAt, error, device};
 * onchange(entry, said) is called when one changes, said being a sentence
 * for screen readers or ''.
 */
export class Pairing {
  constructor({ bluetooth, relay, onchange = () => {}, now = () => new Date() }) {
    this.bluetooth = bluetooth;
    this.relay = relay;
    this.onchange = onchange;
    this.now = now;
    this.devices = new Map(); // device id -> entry
  }

  /** pair asks the browser to choose a device, then connects it. It rejects when the user cancels. */
  async pair() {
    const services = PROFILES.map((p) => p.service);
    const device = await this.bluetooth.requestDevice({ filters: services.map((s) => ({ services: [s] })), optionalServices: services });
    let entry = this.devices.get(device.id);
    if (!entry) {
      entry = { id: device.id, name: this.nameFor(device), status: 'connecting', lastAt: null, error: '', device, heard: new WeakSet() };
      this.devices.set(device.id, entry);
      device.addEventListener('gattserverdisconnected', () => this.lost(entry));
    }
    await this.connect(entry);
    return entry;
  }

  /**
   * nameFor is the name a newly paired device is relayed under: its own
   * (or 'Bluetooth device'), without what does not show or reorders the
   * rest, numbered when another paired device has it, or when it is the
   * browser's own name, since the server and the physician's overlay
   * tell the devices apart by it and refuse a device named as its relay
   * (docs/protocol.md, "Relayed Bluetooth values"). Names are told apart
   * as the server does: without regard to case or runs of spaces.
   */
  nameFor(device) {
    const clean = (device.name || '').replace(INVISIBLE, '').replace(/\s+/gu, ' ').trim();
    const base = first(clean, MAX_NAME).trim() || 'Bluetooth device';
    const taken = new Set([BROWSER_RELAY, ...[...this.devices.values()].map((e) => e.name)].map(fold));
    let name = base;
    for (let n = 2; taken.has(fold(name)); n++) {
      const tail = ` (${n})`;
      name = first(base, MAX_NAME - tail.length).trim() + tail;
    }
    return name;
  }

  /** connect opens the device's GATT server and subscribes to its measurements. */
  async connect(entry) {
    this.set(entry, 'connecting', `Connecting to ${entry.name}…`);
    try {
      const server = await entry.device.gatt.connect();
      let found = 0;
      for (const p of PROFILES) {
        let service;
        try {
          service = await server.getPrimaryService(p.service);
        } catch {
          continue; // the device does not offer it
        }
        for (const c of p.characteristics) {
          let ch;
          try {
            ch = await service.getCharacteristic(c);
          } catch {
            continue;
          }
          if (!entry.heard.has(ch)) {
            // A reconnect may hand back the same object: listen once.
            entry.heard.add(ch);
            ch.addEventListener('characteristicvaluechanged', (ev) => this.value(entry, service.uuid || uuid(p.service), ch.uuid || uuid(c), ev.target.value));
          }
          // Notifications and indications both arrive this way.
          await ch.startNotifications();
          found++;
        }
      }
      if (!found) throw new Error('it offers no measurement this page can read');
      entry.error = '';
      entry.live = true;
      this.event(entry, 'connected');
      this.set(entry, 'connected', `${entry.name} is connected. Take a measurement as usual: it is sent to your physician.`);
    } catch (err) {
      entry.error = `Could not connect to ${entry.name}: ${err.message || err}. Make sure it is switched on and close by, then press Reconnect.`;
      this.set(entry, 'disconnected', entry.error);
    }
  }

  /**
   * value relays one characteristic value as the device sent it, named by
   * the device, as its connect and disconnect events are: its values are
   * shown as its own, and greyed when it goes.
   */
  value(entry, service, characteristic, view) {
    const at = this.now();
    this.relay.send({ gatt: { device: entry.name, service, characteristic, value: base64(view), time: at.toISOString() } }, { id: entry.id, at });
    entry.lastAt = at;
    this.onchange(entry, '');
  }

  /** rejected shows why the server refused a value. */
  rejected(meta, error) {
    const entry = meta && this.devices.get(meta.id);
    if (!entry) return;
    entry.error = `A reading from ${entry.name} was not accepted: ${error}`;
    this.onchange(entry, entry.error);
  }

  lost(entry) {
    if (entry.status === 'disconnected') return;
    if (entry.live) {
      entry.live = false;
      this.event(entry, 'disconnected');
    }
    this.set(entry, 'disconnected', `${entry.name} disconnected. Switch it on or bring it closer, then press Reconnect.`);
  }

  /**
   * resumed says again that each device still connected is, once the
   * relay's socket is back: the server took them as gone when the socket
   * dropped, and the physician's page shows their values as off until
   * they are said connected again.
   */
  resumed() {
    for (const entry of this.devices.values()) if (entry.live) this.event(entry, 'connected');
  }

  event(entry, kind) {
    this.relay.send({ device: { name: entry.name, event: kind, time: this.now().toISOString() } }, { id: entry.id });
  }

  set(entry, status, said) {
    entry.status = status;
    this.onchange(entry, said);
  }
}

const statusText = { connecting: 'Connecting…', connected: 'Connected', disconnected: 'Disconnected' };

/**
 * mount ties the #bluetooth panel's elements to a Pairing: the Pair button,
 * the list of paired devices with their status and last reading's time,
 * and the message saying why pairing is unavailable.
 */
export function mount(root, { bluetooth, secure, relay }) {
  const $ = (id) => root.querySelector('#' + id);
  const el = {
    pair: $('bt-pair'), unavailable: $('bt-unavailable'), status: $('bt-status'), list: $('bt-devices'), queue: $('bt-queue'),
    off: $('bt-off'), offText: $('bt-off-text'), retry: $('bt-retry'),
  };
  const physician = root.dataset.physician || 'your physician';
  const why = unavailable(bluetooth, secure);
  if (why) {
    el.unavailable.textContent = why;
    el.unavailable.hidden = false;
    el.pair.hidden = true;
    root.dataset.bluetooth = 'unavailable';
    return null;
  }
  const rows = new Map();
  let retrying = false; // the patient pressed Try again: say how it went
  const say = (text) => { el.status.textContent = el.status.textContent === text ? text + '\u00a0' : text; };
  let toldReplaced = false;
  const r = relay({
    onrejected: (meta, error) => pairing.rejected(meta, error),
    onresumed: () => pairing.resumed(),
    onchange: () => {
      const n = r.pending;
      root.dataset.pending = String(n); // what waits for an acknowledgement, for anyone who must know it is all sent
      root.dataset.relay = r.replaced ? 'replaced' : r.refused ? 'refused' : r.connected && r.ready ? 'sending' : 'connecting';
      if (r.replaced) {
        const text = 'Your readings are now sent from another window or tab where this visit is open, so this one stopped sending them' +
          (n ? `; ${n === 1 ? '1 reading' : `${n} readings`} measured here may not have reached the clinic` : '') +
          '. To send from this window instead, reload it and pair your devices again.';
        if (!toldReplaced) say(text);
        toldReplaced = true;
        el.queue.hidden = false;
        el.queue.textContent = text;
        return;
      }
      if (r.refused) {
        const when = /turned off by the clinic/.test(r.refused) ? 'once the clinic has allowed them' : 'once that is done';
        const text = `Your readings are not reaching ${physician}: ${r.refused}. ` +
          `Your visit and call go on as usual. Readings taken meanwhile are kept on this page; ${when}, press Try again to send them.`;
        if (el.offText.textContent !== text || el.off.hidden) el.offText.textContent = text; // said once, not at every reading
        el.off.hidden = false;
        el.queue.hidden = true;
        if (retrying) say('Still turned off by the clinic.');
        retrying = false;
        return;
      }
      if (retrying && r.connected && r.ready) {
        retrying = false;
        say(`Connected again: your readings are sent to ${physician}.`);
      }
      if (!retrying) el.off.hidden = true; // kept while trying, so that its button keeps the focus
      el.queue.hidden = r.connected && r.ready && !r.dropped;
      el.queue.textContent = r.dropped
        ? `${r.dropped} older readings could not be kept while offline.`
        : n ? `Not connected to the visit: ${n} readings are kept and will be sent when it is back.` : 'Connecting to the visit…';
    },
  });
  const pairing = new Pairing({
    bluetooth,
    relay: r,
    onchange: (entry, said) => {
      draw(entry);
      if (said) say(said);
    },
  });

  function draw(entry) {
    let row = rows.get(entry.id);
    if (!row) {
      row = document.createElement('li');
      row.className = 'bt-device';
      row.innerHTML = '<span class="bt-name"></span> <span class="bt-state"></span> <span class="bt-last"></span>' +
        '<button type="button" class="button secondary bt-reconnect" hidden>Reconnect</button><p class="bt-error flash error" hidden></p>';
      row.querySelector('.bt-reconnect').addEventListener('click', () => pairing.connect(entry));
      rows.set(entry.id, row);
      el.list.append(row);
    }
    row.dataset.status = entry.status;
    row.querySelector('.bt-name').textContent = entry.name;
    row.querySelector('.bt-state').textContent = statusText[entry.status] || entry.status;
    row.querySelector('.bt-last').textContent = entry.lastAt ? `last reading ${clockTime(entry.lastAt)}` : 'no reading yet';
    const again = row.querySelector('.bt-reconnect');
    again.hidden = entry.status !== 'disconnected';
    again.setAttribute('aria-label', `Reconnect ${entry.name}`);
    const err = row.querySelector('.bt-error');
    err.textContent = entry.error;
    err.hidden = !entry.error;
  }

  el.retry.addEventListener('click', () => {
    retrying = true;
    say('Trying again…');
    r.retry();
  });
  el.pair.hidden = false;
  el.pair.addEventListener('click', async () => {
    el.pair.disabled = true;
    say('Choose your device in the list the browser shows.');
    try {
      await pairing.pair();
    } catch (err) {
      // Cancelling the chooser is NotFoundError: nothing to explain.
      say(err && err.name === 'NotFoundError' ? 'No device was paired.' : `Pairing failed: ${(err && err.message) || err}. Switch the device on, put it in pairing mode and try again.`);
    } finally {
      el.pair.disabled = false;
    }
  });
  root.dataset.bluetooth = 'ready';
  return pairing;
}

const root = document.getElementById('bluetooth');
if (root) {
  mount(root, {
    bluetooth: navigator.bluetooth,
    secure: window.isSecureContext,
    relay: (opts) => socketRelay(root.dataset.ws, opts),
  });
}
