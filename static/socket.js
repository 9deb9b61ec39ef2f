// A JSON WebSocket that reconnects with exponential backoff and jitter.
// Used by the call signaling (call.js) and the vitals overlay (vitals.js).

/** wsURL turns a same-site path into a ws: or wss: URL matching the page. */
export function wsURL(path) {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/**
 * ReconnectingSocket opens a WebSocket to path (a string, or a function
 * returning one, asked again at each reconnect) and reopens it when it drops,
 * waiting minDelay, 2*minDelay, ... up to maxDelay (each ±20%). The delay
 * resets once a connection delivers a message or stays open for stableMs.
 *
 * Callbacks: onopen(), onmessage(obj), onclose(event, willRetry, delayMs).
 */
export class ReconnectingSocket {
  constructor(path, { onopen, onmessage, onclose, minDelay = 500, maxDelay = 15000, stableMs = 10000 } = {}) {
    this.path = path;
    this.onopen = onopen || (() => {});
    this.onmessage = onmessage || (() => {});
    this.onclose = onclose || (() => {});
    this.minDelay = minDelay;
    this.maxDelay = maxDelay;
    this.stableMs = stableMs;
    this.attempt = 0;
    this.ws = null;
    this.timer = 0;
    this.stableTimer = 0;
    this.stopped = true;
    this.onOnline = () => {
      // The network is back: skip the rest of the wait.
      if (!this.stopped && !this.ws && this.timer) {
        clearTimeout(this.timer);
        this.timer = 0;
        this.open();
      }
    };
  }

  /** start connects; calling it again while running does nothing. */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    addEventListener('online', this.onOnline);
    this.open();
  }

  /** stop closes the connection and stops reconnecting. */
  stop(code = 1000) {
    this.stopped = true;
    removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    clearTimeout(this.stableTimer);
    this.timer = 0;
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(code);
  }

  /** isOpen reports whether messages can be sent now. */
  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** send writes obj as JSON; it returns false when not connected. */
  send(obj) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  open() {
    this.timer = 0;
    let ws;
    try {
      ws = new WebSocket(wsURL(typeof this.path === 'function' ? this.path() : this.path));
    } catch (err) {
      console.error('websocket', err);
      this.retry(new CloseEvent('close', { code: 1006 }));
      return;
    }
    this.ws = ws;
    let delivered = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.stableTimer = setTimeout(() => { this.attempt = 0; }, this.stableMs);
      this.onopen();
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      if (!delivered) {
        delivered = true;
        this.attempt = 0;
      }
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        console.warn('websocket: not JSON', e.data);
        return;
      }
      if (msg && typeof msg === 'object') this.onmessage(msg);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return; // replaced or stopped on purpose
      this.ws = null;
      clearTimeout(this.stableTimer);
      if (sessionEnded(e)) {
        // Every retry would be refused until the user signs in again.
        this.stop();
        showSessionEnded();
        this.onclose(e, false, 0);
        return;
      }
      this.retry(e);
    };
    // An error is always followed by close; nothing to do here.
    ws.onerror = () => {};
  }

  retry(e) {
    if (this.stopped) {
      this.onclose(e, false, 0);
      return;
    }
    const base = Math.min(this.maxDelay, this.minDelay * 2 ** this.attempt);
    this.attempt++;
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.timer = setTimeout(() => this.open(), delay);
    this.onclose(e, true, delay);
  }
}

/**
 * sessionEnded reports whether the server closed a socket because the
 * user's session ended (signed out, timed out, or the account was turned
 * off): 1008 with a reason beginning "your session ended".
 */
export function sessionEnded(e) {
  return e.code === 1008 && typeof e.reason === 'string' && e.reason.startsWith('your session ended');
}

/**
 * showSessionEnded tells the user, once per page, that the page no longer
 * updates and how to go on: sign in again (back to this page), or reload,
 * which a patient's or guest's link does.
 */
export function showSessionEnded() {
  if (document.getElementById('session-ended')) return;
  const box = document.createElement('div');
  box.id = 'session-ended';
  box.className = 'session-ended';
  box.setAttribute('role', 'alert');
  const text = document.createElement('p');
  text.textContent = 'Your session has ended, so this page no longer updates.';
  const signIn = document.createElement('a');
  signIn.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
  signIn.textContent = 'Sign in again';
  const reload = document.createElement('button');
  reload.type = 'button';
  reload.textContent = 'Reload the page';
  reload.addEventListener('click', () => location.reload());
  const hint = document.createElement('p');
  hint.append(signIn, ' or ', reload, ' (if you came by a link from the clinic).');
  box.append(text, hint);
  document.body.prepend(box);
}
