// The live waveform strip on the patient's video tile: an ECG (or, without
// one, a plethysmogram) swept left to right like a bedside monitor, drawn
// each animation frame from a jitter buffer (strip-buffer.js) so the trace
// moves at the sample rate however the chunks arrive. A gap in the data is
// left blank, never bridged by a line.

import { StripBuffer, chunkFromMessage } from './strip-buffer.js';

const SWEEP_MS = 6000; // one sweep across the strip
const ERASE_PX = 10; // blank band ahead of the sweep
const PLAYOUT_DELAY_MS = 500;
const NAMES = { 131328: 'ECG', 131329: 'ECG I', 131330: 'ECG II', 150452: 'Pleth' };
const isECG = (code) => code !== '150452';

/** Strip draws one waveform on a canvas; state holds what a test reads. */
export class Strip {
  constructor(canvas, label) {
    this.canvas = canvas;
    this.label = label;
    this.code = '';
    this.buf = null;
    this.prev = null; // last point drawn {x, y} or null after a break
    this.range = null; // [lo, hi] of the current scale
    this.sweep = { lo: Infinity, hi: -Infinity, n: 0 };
    this.state = { code: '', drawn: 0, stats: null, starved: false };
    this.frame = this.frame.bind(this);
    this.raf = 0;
  }

  /** push takes a `waveform` message that arrived at browser time arrival. */
  push(m, arrival) {
    const code = String(m.code);
    if (!NAMES[code]) return;
    if (this.code !== code) {
      // Prefer an ECG; otherwise follow the first waveform seen.
      if (this.code && (isECG(this.code) || !isECG(code))) return;
      this.use(code);
    }
    const c = chunkFromMessage(m);
    if (c) this.buf.push(c, arrival);
    if (!this.raf) this.raf = requestAnimationFrame(this.frame);
  }

  /** clockOffset is the browser's clock minus the server's, NaN when unknown. */
  clockOffset() {
    return this.buf ? this.buf.clockOffset() : NaN;
  }

  use(code) {
    this.code = code;
    this.buf = new StripBuffer({ delayMs: PLAYOUT_DELAY_MS });
    this.state.code = code;
    this.state.stats = this.buf.stats;
    this.range = null;
    this.prev = null;
    this.canvas.closest('.strip')?.removeAttribute('hidden');
    if (this.label) this.label.textContent = NAMES[code];
    this.canvas.setAttribute('aria-label', `${NAMES[code]}, live trace`);
  }

  frame() {
    this.raf = requestAnimationFrame(this.frame);
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(c.clientWidth * dpr);
    const h = Math.round(c.clientHeight * dpr);
    if (!w || !h) return; // hidden: the buffer keeps its bounded backlog
    if (c.width !== w || c.height !== h) {
      c.width = w;
      c.height = h;
      this.prev = null;
    }
    const g = c.getContext('2d');
    g.lineWidth = 1.5 * dpr;
    g.lineJoin = 'round';
    g.strokeStyle = '#7ee2a8';
    for (const s of this.buf.take(Date.now())) this.draw(g, s, w, h, dpr);
    this.say(this.buf.starved);
  }

  /** say labels the strip, and tells when the samples stopped coming. */
  say(starved) {
    if (starved === this.state.starved) return;
    this.state.starved = starved;
    const text = starved ? `${NAMES[this.code]}: no signal` : NAMES[this.code];
    if (this.label) this.label.textContent = text;
    this.canvas.setAttribute('aria-label', starved ? text : `${text}, live trace`);
  }

  draw(g, s, w, h, dpr) {
    const x = ((((s.t % SWEEP_MS) + SWEEP_MS) % SWEEP_MS) / SWEEP_MS) * w;
    if (this.prev && x < this.prev.x) this.wrap();
    if (s.v === null) {
      g.clearRect(x, 0, ERASE_PX * dpr, h);
      this.prev = null;
      return;
    }
    const sw = this.sweep;
    sw.lo = Math.min(sw.lo, s.v);
    sw.hi = Math.max(sw.hi, s.v);
    sw.n++;
    if (!this.range && sw.n > 50 && sw.hi > sw.lo) this.range = [sw.lo, sw.hi];
    const [lo, hi] = this.range || [s.v - 1, s.v + 1];
    const pad = 3 * dpr;
    const y = h - pad - ((Math.min(hi, Math.max(lo, s.v)) - lo) / (hi - lo)) * (h - 2 * pad);
    const from = this.prev ? this.prev.x : x;
    g.clearRect(from + 1, 0, x - from + ERASE_PX * dpr, h);
    if (this.prev) {
      g.beginPath();
      g.moveTo(this.prev.x, this.prev.y);
      g.lineTo(x, y);
      g.stroke();
      this.state.drawn++;
    }
    this.prev = { x, y };
  }

  /** wrap starts a new sweep, rescaling to the last one's extent. */
  wrap() {
    const sw = this.sweep;
    if (sw.n > 50 && sw.hi > sw.lo) {
      const m = (sw.hi - sw.lo) * 0.1;
      this.range = [sw.lo - m, sw.hi + m];
    }
    this.sweep = { lo: Infinity, hi: -Infinity, n: 0 };
    this.prev = null;
  }
}
