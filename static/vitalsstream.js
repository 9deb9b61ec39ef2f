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

// One socket per consult. The overlay (vitals.js) and the NEWS2 panel
// (news2.js) each subscribe to the message types they draw; both are fed
// by the same VitalsStream, so the page holds one /ws/vitals socket.
//
// sharedStream(path).subscribe(types, handlers) calls handlers.message(m)
// for each message whose type is in types (an array, or '*' for all), and
// every subscriber's gap, open, close and error. A subscriber that comes
// after the socket opened (module scripts may run after the first frames
// arrive) is told it is open and handed, in order, the last snapshot and
// what followed it (up to REPLAY_MAX non-waveform messages), so it starts
// from the same state as the others. subscribe returns a function that
// ends the subscription; the socket stops when none is left, or on stop().

const REPLAY_MAX = 500;
const shared = new Map(); // path -> SharedStream

class SharedStream {
  constructor(path) {
    this.path = path;
    this.subs = new Set();
    this.isOpen = false;
    this.replay = []; // the last snapshot and the messages since
    this.stream = new VitalsStream(path, {
      message: (m) => {
        this.remember(m);
        for (const s of this.subs) if (s.wants(m.type)) s.h.message(m);
      },
      gap: (m) => { for (const s of this.subs) s.h.gap(m); },
      open: () => {
        this.isOpen = true;
        for (const s of this.subs) s.h.open();
      },
      close: (e, willRetry) => {
        this.isOpen = false;
        for (const s of this.subs) s.h.close(e, willRetry);
      },
      error: (m) => { for (const s of this.subs) s.h.error(m); },
    });
    this.started = false;
  }

  remember(m) {
    if (m.type === 'snapshot') this.replay = [m];
    else if (m.type !== 'waveform' && this.replay.length > 0) {
      this.replay.push(m);
      if (this.replay.length > REPLAY_MAX) this.replay.splice(1, this.replay.length - REPLAY_MAX);
    }
  }

  subscribe(types, handlers = {}) {
    const s = {
      wants: types === '*' ? () => true : (t) => types.includes(t),
      h: { message: () => {}, gap: () => {}, open: () => {}, close: () => {}, error: () => {}, ...handlers },
    };
    this.subs.add(s);
    if (this.isOpen) s.h.open();
    for (const m of this.replay) if (s.wants(m.type)) s.h.message(m);
    if (!this.started) {
      this.started = true;
      this.stream.start();
    }
    return () => {
      this.subs.delete(s);
      if (this.subs.size === 0) this.stop();
    };
  }

  stop() {
    this.subs.clear();
    this.stream.stop();
    shared.delete(this.path);
  }
}

/** sharedStream is the page's one stream of path's vitals. */
export function sharedStream(path) {
  let s = shared.get(path);
  if (!s) {
    s = new SharedStream(path);
    shared.set(path, s);
  }
  return s;
}
