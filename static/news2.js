// The physician's NEWS2 panel (templates/news2.templ): the live score, its
// band and clinical response, each input's source (measured, entered,
// stale, or from a device now disconnected, as the overlay greys it),
// alert banners with Acknowledge, and the form for what no device
// measures. It follows the visit's vitals stream (docs/protocol.md, "NEWS2,
// alerts and staleness") on the page's shared vitals stream (the overlay's
// socket, vitalsstream.js), and posts inputs and
// acknowledgements as JSON to /consult/{id}/....

import { sharedStream } from './vitalsstream.js';
import { DeviceStatus, followsDevice } from './devicestatus.js';
import { clockTime } from './zonetime.js';

const PARAM_TITLES = {
  'respiration-rate': 'Respiration rate',
  'spo2': 'SpO₂',
  'air-or-oxygen': 'Air or oxygen',
  'systolic': 'Systolic BP',
  'pulse': 'Pulse',
  'consciousness': 'Consciousness',
  'temperature': 'Temperature',
};

/** el makes an element with a class and text. */
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

class NEWS2Panel {
  constructor(root) {
    this.root = root;
    this.visit = root.dataset.appointment;
    this.total = root.querySelector('#news2-total');
    this.band = root.querySelector('#news2-band');
    this.response = root.querySelector('#news2-response');
    this.params = root.querySelector('#news2-params');
    this.alertsEl = root.querySelector('#news2-alerts');
    this.form = root.querySelector('#news2-form');
    this.formStatus = root.querySelector('#news2-form-status');
    this.alerts = new Map(); // alert id -> banner element
    this.staleCodes = new Set();
    // Which device sent each code's latest reading, and whether it is
    // still connected: a measured input whose device has gone says so.
    this.latest = new Map(); // code -> {time, device, relay}
    this.devices = new DeviceStatus(null);
    this.last = null; // the last news2 message
    this.scale2 = false;
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.unsubscribe = sharedStream(root.dataset.vitalsWs).subscribe(['snapshot', 'news2', 'alert', 'stale', 'reading', 'device'], {
      message: (m) => this.handle(m),
    });
  }

  handle(m) {
    switch (m.type) {
      case 'snapshot':
        // The current state: banners not in it are over.
        for (const [id, b] of this.alerts) {
          if (!m.events.some((e) => e.type === 'alert' && e.id === id)) {
            b.remove();
            this.alerts.delete(id);
          }
        }
        this.staleCodes.clear();
        for (const e of m.events) this.handle(e);
        return;
      case 'news2':
        this.last = m;
        this.render();
        return;
      case 'alert':
        this.alert(m);
        return;
      case 'reading': {
        const t = Date.parse(m.time);
        if (typeof m.code !== 'string' || typeof m.device !== 'string' || !Number.isFinite(t)) return;
        const was = this.latest.get(m.code);
        if (was && was.time > t) return; // an older reading does not replace the newest (protocol.md)
        const relay = typeof m.relay === 'string' ? m.relay : '';
        const off = this.devices.off(m.device, relay);
        this.latest.set(m.code, { time: t, device: m.device, relay });
        this.devices.seen(m.device, relay);
        if (!was || was.device !== m.device || was.relay !== relay || off) this.render();
        return;
      }
      case 'device':
        this.devices.event(m);
        this.render();
        return;
      case 'stale':
        if (m.code) {
          if (m.stale) this.staleCodes.add(m.code); else this.staleCodes.delete(m.code);
          this.render();
        }
    }
  }

  render() {
    const m = this.last;
    if (!m) return;
    this.scale2 = m.scale === 2;
    this.root.querySelector('#news2-scale2').checked = this.scale2;
    // With nothing measured or entered yet the score is 0 of nothing: say
    // so rather than show a reassuring "Low risk".
    const none = (m.params || []).every((p) => p.source === 'missing');
    this.total.textContent = none ? '–' : String(m.score);
    const band = m.band;
    this.root.dataset.band = none ? 'none' : band;
    this.root.dataset.empty = String(none);
    if (none) {
      this.band.textContent = 'no readings yet';
      this.response.textContent = 'The score appears once a device sends a reading or you enter one below.';
    } else {
      this.band.textContent = m.complete
        ? `${m.response.risk} risk (${band})`
        : `${m.response.risk} risk so far (incomplete: ${(m.missing || []).concat(m.stale || []).map((p) => PARAM_TITLES[p] || p).join(', ')})`;
      this.response.textContent = `${m.response.urgency}: ${m.response.action} Observations: ${m.response.monitoring}.`;
    }
    this.params.replaceChildren(...m.params.map((p) => {
      let source = p.source;
      if (source === 'measured' && p.code && this.staleCodes.has(p.code)) source = 'stale';
      const latest = source === 'measured' && p.code ? this.latest.get(p.code) : undefined;
      const from = latest?.device || '';
      const gone = from && this.devices.off(from, latest.relay);
      // As on the overlay: a continuous value is no longer current once
      // its device has gone; a blood pressure stays what it was, with
      // its device's going said beside it.
      if (gone && followsDevice(p.code)) source = 'disconnected';
      const li = el('li', `news2-param src-${source}`);
      li.dataset.param = p.param;
      li.append(el('span', 'pname', PARAM_TITLES[p.param] || p.param));
      li.append(el('span', 'ppoints', source === 'missing' ? '–' : `${p.score}`));
      let what = source;
      if (gone) what = followsDevice(p.code) ? `${from} disconnected` : `measured, ${from} since disconnected`;
      if (p.entered) what = `entered: ${p.value}${p.time ? ', ' + clockTime(new Date(p.time)) : ''}`;
      if (p.doubtful) what += ', doubtful readings set aside';
      li.append(el('span', 'psource', what));
      return li;
    }));
  }

  alert(a) {
    let b = this.alerts.get(a.id);
    if (a.state === 'cleared') {
      if (b) b.remove();
      this.alerts.delete(a.id);
      return;
    }
    if (!b) {
      b = el('div', 'news2-alert');
      b.dataset.id = a.id;
      b.append(el('p', 'atitle'), el('p', 'ameta'));
      this.alertsEl.prepend(b); // in the live region: read out
      this.alerts.set(a.id, b);
    }
    b.dataset.severity = a.severity;
    b.dataset.state = a.state === 'reminder' ? 'raised' : a.state;
    b.querySelector('.atitle').textContent = a.title;
    const meta = b.querySelector('.ameta');
    const raised = `Raised ${clockTime(new Date(a.raised))}`;
    let btn = b.querySelector('button');
    if (a.state === 'notice') {
      meta.textContent = `${clockTime(new Date(a.raised))}, for information`;
      if (!btn) {
        btn = el('button', 'button secondary', 'Dismiss');
        btn.type = 'button';
        btn.setAttribute('aria-label', `Dismiss: ${a.title}`);
        btn.addEventListener('click', () => { b.remove(); this.alerts.delete(a.id); });
        b.append(btn);
      }
      return;
    }
    if (a.ack) {
      meta.textContent = `${raised}. Acknowledged ${clockTime(new Date(a.ack.at))}.`;
      b.dataset.state = 'acknowledged';
      if (btn) btn.remove();
      return;
    }
    meta.textContent = raised;
    if (!btn) {
      btn = el('button', 'button primary', 'Acknowledge');
      btn.type = 'button';
      btn.setAttribute('aria-label', `Acknowledge: ${a.title}`);
      btn.addEventListener('click', () => this.acknowledge(a.id, btn));
      b.append(btn);
    }
  }

  async post(path, body) {
    const resp = await fetch(`/consult/${this.visit}/${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body ?? {}),
      credentials: 'same-origin',
    });
    const out = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(out.error || `the server answered ${resp.status}`);
    return out;
  }

  async acknowledge(id, btn) {
    btn.disabled = true;
    btn.textContent = 'Acknowledging…';
    try {
      const out = await this.post(`alerts/${encodeURIComponent(id)}/ack`);
      const b = this.alerts.get(id);
      if (b && out.ack) {
        b.dataset.state = 'acknowledged';
        b.querySelector('.ameta').textContent = `Acknowledged ${clockTime(new Date(out.ack.at))}.`;
        btn.remove();
      }
    } catch (err) {
      btn.disabled = false;
      btn.textContent = 'Acknowledge';
      this.formStatus.textContent = `Could not acknowledge: ${err.message}`;
    }
  }

  async submit() {
    const f = this.form.elements;
    const inputs = [];
    if (f.consciousness.value) inputs.push({ kind: 'consciousness', text: f.consciousness.value });
    if (f.oxygen.value) inputs.push({ kind: 'oxygen', text: f.oxygen.value });
    if (f.scale2.checked !== this.scale2) inputs.push({ kind: 'scale2', text: f.scale2.checked ? 'on' : 'off' });
    if (f.code.value) {
      const v = Number(f.value.value);
      if (f.value.value === '' || !Number.isFinite(v)) {
        this.formStatus.textContent = 'Enter the value measured by hand, or choose None.';
        f.value.focus();
        return;
      }
      inputs.push({ kind: 'value', code: f.code.value, value: v });
    }
    if (inputs.length === 0) {
      this.formStatus.textContent = 'Nothing to save: choose a value first.';
      return;
    }
    this.formStatus.textContent = 'Saving…';
    try {
      for (const body of inputs) await this.post('news2', body);
      this.formStatus.textContent = 'Saved. The score below includes your entries.';
      f.consciousness.value = '';
      f.oxygen.value = '';
      f.code.value = '';
      f.value.value = '';
    } catch (err) {
      this.formStatus.textContent = `Not saved: ${err.message}`;
    }
  }
}

const root = document.getElementById('news2-panel');
if (root) new NEWS2Panel(root);
