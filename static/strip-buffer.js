// The jitter buffer behind the live waveform strip: a pure module (no DOM,
// no clock of its own), so it can be tested on its own.
//
// Waveform chunks arrive in bursts (a device sends ten a second, the
// network and the server's flush tick add jitter). The buffer puts each
// sample on the stream's timeline (the chunk's `time` plus `period` per
// sample), estimates the offset between the browser's clock and that
// timeline, and plays samples out a fixed delay behind the newest moment
// every chunk so far could have arrived by:
//
//   playout(now) = now - offset - delayMs
//   offset = min(arrival - received) + min(received - last sample's time)
//
// each minimum taken over the last offsetWindowMs. `received` is the
// server's clock when it handled the chunk, so the first term is the
// browser's clock minus the server's (plus the fastest delivery from the
// server) and the second the server's minus the device's (plus the fastest
// delivery from the device). Without `received` the offset is the smallest
// (arrival - last sample's time). A later chunk that is slower than the
// fastest by up to delayMs still arrives before its samples are due. Samples are kept in time order; a
// sample at or before one already held is a duplicate and dropped; one
// whose time has already been played out is late and dropped (the strip
// is live: a backlog resent after a reconnect is not drawn); a hole in
// the timeline (a missing chunk, or samples the device marked as gaps)
// comes out as a null, which the strip draws as a break, never a line.

/** StripBuffer orders, de-duplicates and plays out one waveform's samples. */
export class StripBuffer {
  constructor({ delayMs = 500, offsetWindowMs = 10000, maxSeconds = 20 } = {}) {
    this.delayMs = delayMs;
    this.offsetWindowMs = offsetWindowMs;
    this.maxSeconds = maxSeconds;
    this.queue = []; // {t, v}, time order; v null is a gap
    this.lastT = -Infinity; // newest sample time held or played
    this.playedT = -Infinity; // newest time played out
    this.period = 0;
    this.starved = false;
    this.seen = []; // [first, last, period] of recent chunks, to tell a duplicate
    this.estimates = []; // {at, d}: arrival time and arrival - last sample time
    this.stats = { chunks: 0, samples: 0, duplicates: 0, backwards: 0, late: 0, gaps: 0, played: 0, last: null, lastTime: null };
  }

  /**
   * push adds a chunk: time is its first sample's time (ms on the stream's
   * clock), period the ms between samples, values the physical values
   * (null for a gap), received the server's clock when it took the chunk
   * (ms, optional), arrival the browser's clock when it came (ms).
   */
  push({ time, period, values, received }, arrival) {
    if (!Number.isFinite(time) || !(period > 0) || !Array.isArray(values) || !values.length) return;
    this.stats.chunks++;
    this.period = period;
    const end = time + (values.length - 1) * period;
    if (Number.isFinite(received)) this.estimate({ at: arrival, bs: arrival - received, sd: received - end, server: true });
    else this.estimate({ at: arrival, bs: arrival - end, sd: 0, server: false });
    const tol = period / 2;
    for (let i = 0; i < values.length; i++) {
      const t = time + i * period;
      const v = values[i] === null || !Number.isFinite(values[i]) ? null : values[i];
      if (t <= this.lastT + tol) {
        if (this.seenAt(t, tol)) this.stats.duplicates++;
        else this.stats.backwards++;
        continue;
      }
      if (t <= this.playedT) {
        this.stats.late++;
        continue;
      }
      if (this.lastT > -Infinity && t > this.lastT + 1.5 * period) {
        this.queue.push({ t: this.lastT + period, v: null }); // a hole in the timeline
        this.stats.gaps++;
      }
      this.queue.push({ t, v });
      this.lastT = t;
      this.stats.samples++;
    }
    this.seen.push([time, end, period]);
    if (this.seen.length > 200) this.seen.shift();
    const keep = Math.ceil((this.maxSeconds * 1000) / period);
    if (this.queue.length > keep) this.queue.splice(0, this.queue.length - keep);
  }

  /** seenAt reports whether a sample at t came in a recent chunk. */
  seenAt(t, tol) {
    for (const [first, last, period] of this.seen) {
      if (t < first - tol || t > last + tol) continue;
      const k = (t - first) / period;
      if (Math.abs(k - Math.round(k)) * period <= tol) return true;
    }
    return false;
  }

  estimate(x) {
    const e = this.estimates;
    e.push(x);
    while (e.length > 1 && e[0].at < x.at - this.offsetWindowMs) e.shift();
  }

  /** offset is browser clock minus stream clock, plus the fastest delivery; NaN before any chunk. */
  offset() {
    if (!this.estimates.length) return NaN;
    let bs = Infinity;
    let sd = Infinity;
    for (const e of this.estimates) {
      bs = Math.min(bs, e.bs);
      sd = Math.min(sd, e.sd);
    }
    return bs + sd;
  }

  /**
   * clockOffset is the browser's clock minus the server's (plus the
   * fastest delivery), from the chunks' `received`; NaN when unknown.
   */
  clockOffset() {
    let bs = Infinity;
    for (const e of this.estimates) if (e.server) bs = Math.min(bs, e.bs);
    return Number.isFinite(bs) ? bs : NaN;
  }

  /** playout is the stream time due to be drawn at browser time now. */
  playout(now) {
    return now - this.offset() - this.delayMs;
  }

  /**
   * take returns the samples due by browser time now, in time order, and
   * forgets them. When the data runs out before the playout time (the
   * stream stalled), a null is returned once so the line breaks.
   */
  take(now) {
    const due = this.playout(now);
    if (!Number.isFinite(due)) return [];
    let n = 0;
    while (n < this.queue.length && this.queue[n].t <= due) n++;
    const out = this.queue.splice(0, n);
    if (out.length) {
      this.stats.played += out.length;
      const real = out.filter((s) => s.v !== null);
      if (real.length) {
        this.stats.last = real[real.length - 1].v;
        this.stats.lastTime = real[real.length - 1].t;
      }
    }
    // Starved: nothing is held for two periods past the last sample held.
    if (!this.queue.length && this.lastT > -Infinity && due > this.lastT + 2 * this.period && !this.starved) {
      this.starved = true;
      out.push({ t: due, v: null });
    } else if (this.queue.length) {
      this.starved = false;
    }
    // Whatever comes later for a moment already drawn is late.
    this.playedT = Math.max(this.playedT, due);
    return out;
  }

  /** buffered is how many samples wait to be drawn. */
  get buffered() { return this.queue.length; }
}

/** chunkFromMessage turns a `waveform` message into push's chunk, or null. */
export function chunkFromMessage(m) {
  const time = Date.parse(m.time);
  const origin = Number(m.origin) || 0;
  const factor = m.factor === undefined ? 1 : Number(m.factor);
  const period = Number(m.period);
  if (!Number.isFinite(time) || !(period > 0) || !Number.isFinite(factor) || !Array.isArray(m.data)) return null;
  const values = m.data.map((s) => (typeof s === 'number' && Number.isFinite(s) ? origin + factor * s : null));
  const received = Date.parse(m.received);
  return Number.isFinite(received) ? { time, period, values, received } : { time, period, values };
}
