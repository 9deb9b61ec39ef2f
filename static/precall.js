// The pre-call check: camera and microphone preview, device selection,
// permission help and a microphone level meter. The call (call.js) sends the
// tracks this module holds, and is told when a device switch replaces one.

const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** help turns a getUserMedia error into a sentence that says what to do. */
export function help(err, what = 'camera and microphone') {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return `Your browser is blocking the ${what} for this page. ` +
        'Select the camera or lock icon at the left of the address bar, choose Allow for the camera and the microphone, then press Try again. ' +
        'On a phone, also check that the browser may use them in the phone’s settings (Privacy, Camera and Microphone).';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return `No ${what.replace(' and ', ' or ')} was found. Connect one or switch it on, then press Try again.`;
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return `Your ${what} could not be started. Another app (such as another video call) may be using it: close that app, then press Try again.`;
    default:
      return `Your ${what} could not be started (${(err && err.name) || 'unknown error'}). Press Try again, or try another browser.`;
  }
}

/**
 * MediaCheck owns the local camera and microphone. Its elements are found
 * by id below root: #local-video, #local-placeholder, #camera-select,
 * #mic-select, #mic-level, #mic-hint, #media-help, #retry-media.
 */
export class MediaCheck {
  constructor(root) {
    const $ = (id) => root.querySelector('#' + id);
    this.video = $('local-video');
    this.placeholder = $('local-placeholder');
    this.cameraSelect = $('camera-select');
    this.micSelect = $('mic-select');
    this.meter = $('mic-level');
    this.micHint = $('mic-hint');
    this.helpBox = $('media-help');
    this.retryButton = $('retry-media');
    this.stream = new MediaStream();
    this.micOn = true;
    this.cameraOn = true;
    this.listeners = [];
    this.audio = null; // { ctx, source, analyser, data }
    this.metering = false;
    this.heard = false;
    this.stopped = false;
    this.ready = Promise.resolve();

    this.video.muted = true;
    this.retryButton.addEventListener('click', () => this.start());
    this.cameraSelect.addEventListener('change', () => this.switchDevice('video', this.cameraSelect.value));
    this.micSelect.addEventListener('change', () => this.switchDevice('audio', this.micSelect.value));
    if (navigator.mediaDevices) {
      navigator.mediaDevices.addEventListener('devicechange', () => this.listDevices());
    }
    // Browsers keep an AudioContext suspended until the user interacts.
    const resume = () => this.resumeAudio();
    addEventListener('pointerdown', resume, { capture: true });
    addEventListener('keydown', resume, { capture: true });
  }

  /** onTrack registers fn(kind, track) called when a device switch replaces a track. */
  onTrack(fn) {
    this.listeners.push(fn);
  }

  /** track returns the current local track of kind 'audio' or 'video', or null. */
  track(kind) {
    return this.stream.getTracks().find((t) => t.kind === kind && t.readyState === 'live') || null;
  }

  /**
   * start asks for camera and microphone. It resolves (never rejects) when
   * the attempt is over; this.ready is the same promise. Whatever could be
   * started is kept: a missing camera still allows a sound-only visit.
   */
  start() {
    this.ready = this.acquire();
    return this.ready;
  }

  async acquire() {
    this.showHelp('');
    this.stopped = false;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.showHelp(window.isSecureContext
        ? 'This browser cannot use a camera. Please open the link in a current version of Chrome, Edge, Firefox or Safari.'
        : 'The camera can only be used on a secure (https) page. Please open the link exactly as it was sent to you.', false);
      this.finishDevices();
      return;
    }
    for (const t of this.stream.getTracks()) this.dropTrack(t);
    let stream = null;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: AUDIO, video: VIDEO });
    } catch (err) {
      if (err.name === 'NotAllowedError' || err.name === 'SecurityError') {
        this.showHelp(help(err));
      } else {
        // One of the two may still work on its own.
        const parts = [];
        const problems = [];
        for (const [kind, c, what] of [['audio', AUDIO, 'microphone'], ['video', VIDEO, 'camera']]) {
          try {
            parts.push(await navigator.mediaDevices.getUserMedia({ [kind]: c }));
          } catch (err2) {
            problems.push([err2, what]);
          }
        }
        if (parts.length) stream = new MediaStream(parts.flatMap((s) => s.getTracks()));
        if (problems.length === 2 && problems[0][0].name === problems[1][0].name) {
          this.showHelp(help(problems[0][0]));
        } else if (problems.length) {
          this.showHelp(problems.map(([e, what]) => help(e, what)).join(' ') +
            (parts.length ? ' You can still join; the other side will not see or hear what is missing.' : ''));
        }
      }
    }
    if (this.stopped) {
      if (stream) stream.getTracks().forEach((t) => t.stop());
      return;
    }
    if (stream) {
      for (const t of stream.getTracks()) this.useTrack(t);
    }
    this.attachPreview();
    // A retry during the call hands the new tracks to the senders.
    this.notify('audio', this.track('audio'));
    this.notify('video', this.track('video'));
    await this.listDevices();
    this.finishDevices();
  }

  finishDevices() {
    this.cameraSelect.disabled = this.cameraSelect.options.length === 0 || !this.cameraSelect.options[0].value;
    this.micSelect.disabled = this.micSelect.options.length === 0 || !this.micSelect.options[0].value;
  }

  showHelp(text, retry = true) {
    this.helpBox.textContent = text;
    this.helpBox.hidden = !text;
    this.retryButton.hidden = !text || !retry;
    // The physician's device panel starts closed: open it so the help is seen.
    const details = this.helpBox.closest('details');
    if (text && details) details.open = true;
  }

  /** useTrack adds t to the local stream, replacing a track of its kind. */
  useTrack(t) {
    for (const old of this.stream.getTracks()) {
      if (old.kind === t.kind) this.dropTrack(old);
    }
    t.enabled = t.kind === 'audio' ? this.micOn : this.cameraOn;
    t.addEventListener('ended', () => {
      // Unplugged, or revoked by the system.
      if (this.stopped || !this.stream.getTracks().includes(t)) return;
      this.showHelp(`Your ${t.kind === 'audio' ? 'microphone' : 'camera'} stopped. Check it is connected, then press Try again.`);
      this.updatePlaceholder();
    });
    this.stream.addTrack(t);
    if (t.kind === 'audio') this.startMeter(t);
  }

  dropTrack(t) {
    this.stream.removeTrack(t);
    t.stop();
  }

  attachPreview() {
    // A fresh srcObject assignment makes every browser pick up track changes.
    this.video.srcObject = null;
    if (this.stream.getTracks().length) {
      this.video.srcObject = this.stream;
      this.video.play().catch(() => {});
    }
    this.updatePlaceholder();
  }

  updatePlaceholder() {
    const v = this.track('video');
    const off = !v || !this.cameraOn;
    this.placeholder.textContent = v ? 'Your camera is off' : 'No camera';
    this.placeholder.hidden = !off;
    this.video.closest('.tile')?.classList.toggle('no-video', off);
  }

  /** listDevices fills the selects; labels are known once permission is given. */
  async listDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      return;
    }
    this.fill(this.cameraSelect, devices.filter((d) => d.kind === 'videoinput' && d.deviceId), this.track('video'), 'Camera', 'No camera found');
    this.fill(this.micSelect, devices.filter((d) => d.kind === 'audioinput' && d.deviceId), this.track('audio'), 'Microphone', 'No microphone found');
    this.finishDevices();
  }

  fill(select, devices, current, noun, none) {
    const currentId = current ? current.getSettings().deviceId : '';
    select.replaceChildren();
    if (!devices.length) {
      select.append(new Option(none, ''));
      return;
    }
    devices.forEach((d, i) => {
      const o = new Option(d.label || `${noun} ${i + 1}`, d.deviceId);
      o.selected = d.deviceId === currentId;
      select.append(o);
    });
  }

  /** switchDevice replaces the track of kind with one from deviceId. */
  async switchDevice(kind, deviceId) {
    if (!deviceId) return;
    const old = this.track(kind);
    if (old && old.getSettings().deviceId === deviceId) return;
    const base = kind === 'audio' ? AUDIO : VIDEO;
    const what = kind === 'audio' ? 'microphone' : 'camera';
    // Phones often cannot open two cameras at once: release the old one first.
    if (old && kind === 'video') this.dropTrack(old);
    let t;
    try {
      const s = await navigator.mediaDevices.getUserMedia({ [kind]: { ...base, deviceId: { exact: deviceId } } });
      t = s.getTracks()[0];
    } catch (err) {
      this.showHelp(help(err, what));
      if (old && kind === 'video') this.notify(kind, null);
      this.attachPreview();
      return;
    }
    this.showHelp('');
    this.useTrack(t);
    this.attachPreview();
    this.notify(kind, t);
  }

  notify(kind, track) {
    for (const fn of this.listeners) {
      try {
        fn(kind, track);
      } catch (err) {
        console.error(err);
      }
    }
  }

  /** setMic turns the microphone on or off (track.enabled); it returns the new state. */
  setMic(on) {
    this.micOn = on;
    for (const t of this.stream.getAudioTracks()) t.enabled = on;
    return on;
  }

  /** setCamera turns the camera on or off (track.enabled); it returns the new state. */
  setCamera(on) {
    this.cameraOn = on;
    for (const t of this.stream.getVideoTracks()) t.enabled = on;
    this.updatePlaceholder();
    return on;
  }

  resumeAudio() {
    if (this.audio && this.audio.ctx.state === 'suspended') this.audio.ctx.resume().catch(() => {});
  }

  startMeter(track) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return;
    if (!this.audio) {
      const ctx = new Ctx();
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      this.audio = { ctx, analyser, source: null, data: new Float32Array(analyser.fftSize) };
    }
    const a = this.audio;
    if (a.source) a.source.disconnect();
    a.source = a.ctx.createMediaStreamSource(new MediaStream([track]));
    a.source.connect(a.analyser); // not to the destination: no echo
    this.resumeAudio();
    this.setMetering(true);
  }

  /** setMetering starts or stops updating the level meter. */
  setMetering(on) {
    if (on === this.metering) return;
    this.metering = on;
    if (!on) {
      this.meter.value = 0;
      return;
    }
    let last = 0;
    const tick = (now) => {
      if (!this.metering) return;
      if (this.audio && now - last > 66) { // about 15 updates a second is plenty
        last = now;
        const { analyser, data } = this.audio;
        analyser.getFloatTimeDomainData(data);
        let sum = 0;
        for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
        const rms = Math.sqrt(sum / data.length);
        const db = 20 * Math.log10(rms || 1e-8);
        const level = Math.max(0, Math.min(1, (db + 60) / 60)); // -60 dBFS..0
        this.meter.value = level;
        if (!this.heard && level > 0.25) {
          this.heard = true;
          this.micHint.textContent = 'We can hear your microphone.';
        }
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  /** stop ends every local track and the meter. */
  stop() {
    this.stopped = true;
    this.setMetering(false);
    for (const t of this.stream.getTracks()) this.dropTrack(t);
    this.video.srcObject = null;
    if (this.audio) {
      this.audio.ctx.close().catch(() => {});
      this.audio = null;
    }
    this.updatePlaceholder();
  }
}
