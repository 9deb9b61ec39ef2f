// The live vitals overlay on the patient's video tile (physician's page).
// Reads `reading` messages from data-vitals-ws on the page's shared vitals
// stream (vitalsstream.js speaks the protocol: batched frames, resuming,
// gaps; the NEWS2 panel reads the same socket),
// shows each numeric with its unit, greys values older than their tile's
// data-stale-ms (the catalogue's window), continuous values whose device has
// disconnected (at once, said in words), and values the server flagged as
// doubtful (the reason in words beside it), draws a small trend sparkline
// per numeric, the live waveform strip (strip.js) and each device's
// connection (devicestatus.js). The status line says the vitals are live
// only while a device that sends them is connected. Times are in the
// physician's zone (zonetime.js).
//
// window.bedsideVitals holds what a test reads: the stream messages
// handled, in order ({offset, type, code, value}, the last 5,000), and the
// strip's counters.

import { sharedStream } from './vitalsstream.js';
import { Strip } from './strip.js';
import { DeviceStatus, followsDevice } from './devicestatus.js';
import { clockTime, timeZone } from './zonetime.js';

const WINDOW_MS = 5 * 60 * 1000; // longest sparkline span
const MIN_SPAN_MS = 20 * 1000;
const MAX_POINTS = 600;
const BP_PARTNER_MS = 3000; // how long a lone systolic or diastolic waits for its pair

// LOINC code -> overlay tile and decimals shown.
const NUMERICS = {
  '8867-4': { tile: '8867-4', digits: 0 },
  '59408-5': { tile: '59408-5', digits: 0 },
  '2708-6': { tile: '59408-5', digits: 0 },
  '8310-5': { tile: '8310-5', digits: 1 },
  '9279-1': { tile: '9279-1', digits: 0 },
};
// Flags about the device rather than the value: not doubtful (protocol.md).
const INFORMATIONAL = ['device clock not set', 'device battery low'];
const doubts = (flags) => (Array.isArray(flags) ? flags.filter((f) => typeof f === 'string' && !INFORMATIONAL.includes(f)) : []);
const LOG_MAX = 5000;
const SYSTOLIC = '8480-6';
const DIASTOLIC = '8462-4';

const UNITS = {
  'Cel': ['°C', 'degrees Celsius'],
  '[degF]': ['°F', 'degrees Fahrenheit'],
  '/min': ['/min', null], // keep the tile's own spoken unit (beats or breaths)
  '%': ['%', 'percent'],
};

// clock is the server's time as best known: the browser's, corrected by
// the offset the strip estimates from the server's stamps once a waveform
// streams, so a browser whose clock is off does not mark values stale.
let clock = () => Date.now();

// deviceOff tells whether the values of a device (relayed by relay, if
// any) are known to have stopped: it, or the relay it came through,
// disconnected (set from the overlay's device status once it starts).
let deviceOff = () => false;

/** age says how long ago ms was, briefly. */
function age(ms) {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min ago`;
  return `${Math.round(m / 60)} h ago`;
}

/** Tile is one value on the overlay, with its history for the sparkline. */
class Tile {
  constructor(el) {
    this.el = el;
    this.value = el.querySelector('.value');
    this.note = el.querySelector('.stale-note');
    this.flagNote = el.querySelector('.flag-note');
    this.canvas = el.querySelector('canvas.spark');
    this.unitText = el.querySelector('.unit-text');
    this.unitSpoken = el.querySelector('.unit-spoken');
    this.staleMs = Number(el.dataset.staleMs) || 30000;
    this.time = 0; // of the value shown
    this.series = [[]]; // one or more lines of {t, v}
    this.stale = false;
    this.device = ''; // that sent the value shown
    this.relay = ''; // that relayed it, if any
    this.off = false; // its device is disconnected
  }

  // A continuous measurement stops the moment its device disconnects: its
  // last value is no longer live, whatever its age, and is shown so.
  get followsDevice() { return true; }

  /**
   * show puts text on the tile if the reading is not older than the one
   * shown; doubt lists why the value is doubtful (empty when it is not).
   */
  show(text, t, device, doubt = [], relay = '') {
    if (t < this.time) return false;
    this.time = t;
    this.device = device || '';
    this.relay = relay || '';
    this.value.textContent = text;
    this.el.classList.remove('empty');
    this.el.classList.toggle('doubtful', doubt.length > 0);
    const why = doubt.join(', ');
    this.el.dataset.flags = why;
    if (this.flagNote) this.flagNote.textContent = doubt.length ? ` doubtful: ${why}` : '';
    this.el.title = `${device ? device + ', ' : ''}${clockTime(t)} (${timeZone})${why ? ', doubtful: ' + why : ''}`;
    this.tick(clock());
    return true;
  }

  setUnit(unit) {
    const u = UNITS[unit];
    if (!u || !this.unitText) return;
    this.unitText.textContent = u[0];
    if (u[1] && this.unitSpoken) this.unitSpoken.textContent = ' ' + u[1];
  }

  add(line, t, v) {
    const s = this.series[line] || (this.series[line] = []);
    // Keep time order; a replayed reading (same time) replaces its twin.
    let i = s.length;
    while (i > 0 && s[i - 1].t > t) i--;
    if (i > 0 && s[i - 1].t === t) s[i - 1].v = v;
    else s.splice(i, 0, { t, v });
    if (s.length > MAX_POINTS) s.splice(0, s.length - MAX_POINTS);
  }

  /**
   * tick marks the tile stale when its value is older than staleMs, or
   * when the device that sent it has disconnected.
   */
  tick(now) {
    if (!this.time) return;
    const old = now - this.time;
    const off = this.followsDevice && this.device !== '' && deviceOff(this.device, this.relay);
    const stale = off || old > this.staleMs;
    if (stale !== this.stale || off !== this.off) {
      this.stale = stale;
      this.off = off;
      this.el.classList.toggle('stale', stale);
      this.el.dataset.stale = String(stale);
      this.el.dataset.deviceOff = String(off);
    }
    if (this.note) this.renderAge(stale, old);
    this.draw(now);
  }

  renderAge(stale, old) {
    // Short, so that the tiles stay on one row over the video.
    this.note.textContent = this.off ? 'disconnected' : stale ? `stale, ${age(old)}` : '';
  }

  draw(now) {
    const c = this.canvas;
    if (!c || !c.clientWidth) return; // hidden (small screens)
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(c.clientWidth * dpr);
    const h = Math.round(c.clientHeight * dpr);
    if (c.width !== w || c.height !== h) {
      c.width = w;
      c.height = h;
    }
    const g = c.getContext('2d');
    g.clearRect(0, 0, w, h);
    const lines = this.series.map((s) => s.filter((p) => p.t >= now - WINDOW_MS));
    const all = lines.flat();
    // A trend needs two points of one line: one blood pressure (a point on
    // each of two lines) is no trend, not two dots.
    if (lines.every((l) => l.length < 2)) return;
    // The time axis spans the data shown, at least MIN_SPAN_MS, at most WINDOW_MS.
    const first = Math.min(...all.map((p) => p.t));
    const span = Math.max(MIN_SPAN_MS, now - first);
    const from = now - span;
    let min = Math.min(...all.map((p) => p.v));
    let max = Math.max(...all.map((p) => p.v));
    if (max - min < 1e-9) {
      min -= 1;
      max += 1;
    }
    const pad = 3 * dpr;
    const x = (t) => ((t - from) / span) * (w - 2 * pad) + pad;
    const y = (v) => h - pad - ((v - min) / (max - min)) * (h - 2 * pad);
    g.lineWidth = 1.5 * dpr;
    g.lineJoin = 'round';
    g.strokeStyle = g.fillStyle = this.stale || this.el.classList.contains('doubtful') ? '#b0b0b0' : '#ffffff';
    for (const pts of lines) {
      if (!pts.length) continue;
      g.beginPath();
      pts.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.v)) : g.moveTo(x(p.t), y(p.v))));
      g.stroke();
      const last = pts[pts.length - 1];
      g.beginPath();
      g.arc(x(last.t), y(last.v), 2 * dpr, 0, 2 * Math.PI);
      g.fill();
    }
  }
}

/** BPTile shows systolic/diastolic and the time they were measured. */
class BPTile extends Tile {
  constructor(el, timeEl) {
    super(el);
    this.timeEl = timeEl;
    this.series = [[], []];
    this.parts = new Map(); // time -> {sys, dia, device, relay}
    this.timer = 0;
  }

  // A blood pressure is a spot measurement shown with its time: it stays
  // what it was when its device disconnects.
  get followsDevice() { return followsDevice(SYSTOLIC); }

  reading(code, v, t, device, doubt, relay) {
    const p = this.parts.get(t) || { sys: null, dia: null, device, relay, doubt: [] };
    if (code === SYSTOLIC) p.sys = v;
    else p.dia = v;
    for (const d of doubt) if (!p.doubt.includes(d)) p.doubt.push(d);
    this.parts.set(t, p);
    this.add(code === SYSTOLIC ? 0 : 1, t, v);
    if (p.sys !== null && p.dia !== null) {
      this.render(t, p);
    } else {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.render(t, p), BP_PARTNER_MS);
    }
    // Forget all but the latest few measurements.
    for (const k of [...this.parts.keys()].sort((a, b) => a - b).slice(0, -4)) this.parts.delete(k);
  }

  render(t, p) {
    if (p.sys !== null && p.dia !== null) clearTimeout(this.timer);
    const f = (v) => (v === null ? '–' : String(Math.round(v)));
    if (this.show(`${f(p.sys)}/${f(p.dia)}`, t, p.device, p.doubt, p.relay)) {
      this.timeEl.dateTime = new Date(t).toISOString();
      this.timeEl.textContent = `at ${clockTime(t)}`;
      this.timeEl.title = `Measured at ${clockTime(t)}, time in ${timeZone}`;
    }
  }

  renderAge(stale) {
    // The time is always shown; say stale too, so it is not told by colour alone.
    this.note.textContent = stale ? ', stale' : '';
  }
}

function start(path, overlay) {
  const status = document.getElementById('vitals-status');
  const tiles = {};
  for (const el of overlay.querySelectorAll('.vital[data-code]')) tiles[el.dataset.code] = new Tile(el);
  const bpEl = document.getElementById('tile-bp');
  const bp = bpEl ? new BPTile(bpEl, document.getElementById('vital-bp-time')) : null;
  const all = () => [...Object.values(tiles), ...(bp ? [bp] : [])];
  let received = 0;
  const strip = new Strip(document.getElementById('vitals-strip-canvas'), document.getElementById('vitals-strip-label'));
  const devices = new DeviceStatus(document.getElementById('vitals-devices'));
  deviceOff = (d, relay) => devices.off(d, relay);
  const log = [];
  clock = () => {
    const o = strip.clockOffset();
    return Number.isFinite(o) ? Date.now() - o : Date.now();
  };
  window.bedsideVitals = { log, strip: strip.state };

  function setStatus(text, live, off = false) {
    if (status.textContent !== text) status.textContent = text; // said once
    status.classList.toggle('live', !!live);
    status.classList.toggle('off', off);
  }
  // connected is what the status says while the socket is open: live only
  // while a device that sends vitals is connected. When every device known
  // has disconnected, nothing is coming in, whatever was received before.
  function connected() {
    const gone = devices.allDisconnected();
    if (gone.length === 1) return setStatus(`Vitals: ${gone[0]} disconnected`, false, true);
    if (gone.length > 1) return setStatus('Vitals: every device disconnected', false, true);
    setStatus(received ? 'Vitals: live' : 'Vitals: connected, no readings yet', received > 0);
  }
  // Before the visit's live vitals open the server refuses the socket:
  // say when they open rather than that the connection is lost.
  const opens = Date.parse(root?.dataset.vitalsFrom || '');
  const notYet = () => Number.isFinite(opens) && Date.now() < opens;
  const notYetText = () => `Vitals: they open at ${clockTime(opens)}, shortly before the visit`;
  if (notYet()) setStatus(notYetText(), false);

  function reading(msg) {
    const v = Number(msg.value);
    if (typeof msg.code !== 'string' || !Number.isFinite(v)) return;
    let t = Date.parse(msg.time);
    const now = clock();
    if (!Number.isFinite(t) || t > now + 5000) t = now; // missing or future clock
    received++;
    const relay = typeof msg.relay === 'string' ? msg.relay : '';
    const known = devices.state(msg.device, relay) !== '';
    const wasOff = devices.off(msg.device, relay);
    devices.seen(msg.device, relay);
    if (received === 1 || !known || wasOff) connected();
    if (wasOff && !devices.off(msg.device, relay)) {
      const now = clock();
      for (const tile of all()) tile.tick(now); // its other values are live again too
    }
    const doubt = doubts(msg.flags);
    if ((msg.code === SYSTOLIC || msg.code === DIASTOLIC) && bp) {
      bp.reading(msg.code, v, t, msg.device, doubt, relay);
      return;
    }
    const n = NUMERICS[msg.code];
    const tile = n && tiles[n.tile];
    if (!tile) return;
    tile.add(0, t, v);
    if (tile.show(v.toFixed(n.digits), t, msg.device, doubt, relay)) tile.setUnit(msg.unit);
  }

  let gapTimer = 0;
  const stream = sharedStream(path);
  // Every message, so that the test log sees each offset.
  stream.subscribe('*', {
    open: () => connected(),
    message: (msg) => {
      log.push({ offset: msg.offset, type: msg.type, code: msg.code, value: msg.value });
      if (log.length > LOG_MAX) log.splice(0, log.length - LOG_MAX);
      if (msg.type === 'reading') reading(msg);
      else if (msg.type === 'waveform') strip.push(msg, Date.now());
      else if (msg.type === 'device') {
        devices.event(msg);
        connected();
        const now = clock();
        for (const t of all()) t.tick(now);
      }
    },
    gap: () => {
      // Said briefly, then back to the live state.
      setStatus('Vitals: some readings missed', received > 0);
      clearTimeout(gapTimer);
      gapTimer = setTimeout(connected, 5000);
    },
    close: (e, willRetry) => setStatus(!willRetry ? 'Vitals: off' : notYet() ? notYetText() : 'Vitals: connection lost, reconnecting…', false),
  });
  setInterval(() => {
    const now = clock();
    for (const t of all()) t.tick(now);
  }, 1000);
  // When the physician leaves the call, stop streaming vitals too.
  document.getElementById('leave-button')?.addEventListener('click', () => stream.stop());
}

const root = document.getElementById('call');
const overlay = document.getElementById('vitals');
// A guest physician's socket opens only once they are admitted to the call
// (call.js sets #call[data-state="in-call"]); the server refuses it before.
function startWhenInCall(url) {
  if (root.dataset.state === 'in-call') return start(url, overlay);
  const watch = new MutationObserver(() => {
    if (root.dataset.state !== 'in-call') return;
    watch.disconnect();
    start(url, overlay);
  });
  watch.observe(root, { attributes: true, attributeFilter: ['data-state'] });
}
if (root && overlay && root.dataset.vitalsWs) {
  if (root.dataset.vitalsWs.startsWith('/guest/')) startWhenInCall(root.dataset.vitalsWs);
  else start(root.dataset.vitalsWs, overlay);
}
