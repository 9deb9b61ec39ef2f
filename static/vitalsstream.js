// The live vitals viewer protocol (docs/protocol.md, "Live vitals for
// viewers"), in one place: frames are JSON arrays of messages; each
// patient's stream has an epoch and offsets; on reconnect the socket
// resumes from the last offset it handled, so nothing is shown twice and
// anything the server could not replay arrives as a gap marker.
//
// VitalsStream(path, handlers) calls:
//   message(msg)  for each stream message (reading, waveform, device, and
//                 any type added later), in offset order, and for the
//                 NEWS2 snapshot a subscription starts with (no offset);
//   gap(msg)      when readings were missed ({patient, epoch, from, to});
//   open(), close(event, willRetry) as the socket comes and goes;
//   error(msg)    for a refused request.

import { ReconnectingSocket } from './socket.js';

export class VitalsStream {
  constructor(path, handlers = {}) {
    this.path = path;
    this.on = {
      message: () => {}, gap: () => {}, open: () => {}, close: () => {}, error: () => {}, ...handlers,
    };
    // patient id -> {epoch, offset, live}: live once the server has placed
    // this connection in the stream (its `stream` message).
    this.streams = new Map();
    this.sock = new ReconnectingSocket(() => this.url(), {
      onopen: () => {
        for (const s of this.streams.values()) s.live = false;
        this.on.open();
      },
      onmessage: (frame) => {
        for (const m of Array.isArray(frame) ? frame : [frame]) this.handle(m);
      },
      onclose: (e, willRetry) => this.on.close(e, willRetry),
    });
  }

  /** url resumes where the visit's patient's stream was, if anywhere. */
  url() {
    const [s] = this.streams.values();
    if (!s || s.epoch === undefined) return this.path;
    const sep = this.path.includes('?') ? '&' : '?';
    return `${this.path}${sep}epoch=${encodeURIComponent(s.epoch)}&offset=${s.offset}`;
  }

  start() { this.sock.start(); }

  stop() { this.sock.stop(); }

  handle(m) {
    if (!m || typeof m !== 'object') return;
    if (m.type === 'error') {
      this.on.error(m);
      return;
    }
    if (typeof m.patient !== 'number') return;
    let s = this.streams.get(m.patient);
    if (!s) {
      s = { epoch: undefined, offset: 0, live: false };
      this.streams.set(m.patient, s);
    }
    switch (m.type) {
      case 'stream':
        s.epoch = m.epoch;
        s.offset = m.offset;
        s.live = true;
        return;
      case 'gap':
        if (s.epoch === m.epoch && m.to) s.offset = Math.max(s.offset, m.to);
        this.on.gap(m);
        return;
      case 'snapshot':
        this.on.message(m);
        return;
    }
    if (typeof m.offset !== 'number') return;
    if (s.live) {
      if (m.offset <= s.offset) return; // already handled
      s.offset = m.offset;
    }
    this.on.message(m);
  }
}
