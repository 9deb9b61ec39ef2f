// The browser side of a visit: pre-call check, signaling (docs/protocol.md,
// "Call signaling"), the waiting room, and the call itself. Used by both the
// patient's page (data-role="patient"), a guest's (data-role="guest": an
// interpreter, family member or second physician, who waits to be admitted
// like the patient) and the physician's (data-role="physician").
//
// Page states, shown on #call[data-state] and #call-state[data-state]:
//   ready -> connecting -> waiting (patient only) -> in-call -> left,
//   and reconnecting whenever the signaling socket drops or the media path
//   is being restored after a network change (docs/protocol.md, "Resuming"
//   and "ICE restart").
// Elements carrying data-show="state state ..." are visible only in those states.

import { MediaCheck } from './precall.js';
import { ConnectivityCheck } from './netcheck.js';
import { Publisher, Subscriber } from './peers.js';
import { ReconnectingSocket } from './socket.js';
import { QualityIndicator } from './quality.js';

const root = document.getElementById('call');
if (root) new Call(root).init();

/** Call ties the page's elements to one signaling session. */
function Call(root) {
  const $ = (id) => document.getElementById(id);
  const role = root.dataset.role;
  const waits = role !== 'physician'; // admitted by the physician
  const remoteName = root.dataset.remoteName || (waits ? 'Your physician' : 'The patient');
  // The participant the main tile is for (the patient, on the physician's
  // page, under the vitals overlay); others get tiles of their own.
  const mainId = root.dataset.main || '';
  const el = {
    state: $('call-state'),
    status: $('status-message'),
    error: $('call-error'),
    stage: $('stage'),
    remoteTile: $('remote-tile'),
    remoteVideo: $('remote-video'),
    remotePlaceholder: $('remote-placeholder'),
    remoteName: $('remote-name'),
    extras: $('extra-tiles'),
    soundButton: $('sound-button'),
    startButton: $(waits ? 'join-button' : 'start-button'),
    share: $('share-button'),
    mute: $('mute-button'),
    camera: $('camera-button'),
    leave: $('leave-button'),
    devices: $('devices'),
    lobby: $('lobby'),
    lobbyEmpty: $('lobby-empty'),
  };
  const placeholderText = el.remotePlaceholder.textContent;
  const media = new MediaCheck(root);

  let state = '';
  let sock = null;
  let gen = 0; // bumps whenever the session's peers are torn down; stale async work checks it
  let iceServers = [];
  let pub = null;
  let sub = null;
  let admitted = false;
  let leaving = false;
  let lobbyIds = new Set();
  // Who watches the call by WHEP (docs/protocol.md, "viewers"): listed
  // under the video and announced, so nobody watches unseen.
  let viewerIds = new Set();
  const viewersEl = document.createElement('p');
  viewersEl.id = 'viewers';
  viewersEl.className = 'viewers';
  viewersEl.hidden = true;
  let lastError = '';
  let failures = 0; // socket closes since the last welcome
  // The signaling session (docs/protocol.md, "Resuming"): the resume token,
  // the seq of the last server message handled, and our numbered messages
  // kept for resending after a resume.
  const session = { token: '', lastIn: 0, outSeq: 0, sent: [] };
  let restartWanted = false; // restart ICE once the socket is back
  let lastRestart = 0;
  let disconnectTimer = 0;
  // One entry per remote participant: {id, name, stream}.
  const remotes = new Map();
  const trackOwner = new Map(); // remote track -> participant id
  const trackIds = new Map(); // remote track -> the server's track id
  const tilesSent = new Map(); // server track id -> the tile size last sent
  let shown = null; // the participant on #remote-video
  let lastShownName = ''; // who was last on it, to say they left
  // Everyone else with media (a second person, an exam camera) gets a
  // small labelled tile in #extra-tiles: participant id -> {tile, video}.
  const extraTiles = new Map();
  let selfId = '';
  let speaker = ''; // the dominant speaker's participant id
  // Only those whose media this page has are named: a participant whose
  // tracks have not arrived is nobody the page can label yet.
  const quality = new QualityIndicator(el.stage, (id) => remotes.get(id)?.name);

  // ---- state and announcements ----

  const stateText = { ready: 'ready', connecting: 'connecting', waiting: 'waiting', 'in-call': 'in call', reconnecting: 'reconnecting', left: 'left' };

  function setState(next, message) {
    if (next !== state) {
      const prev = state;
      state = next;
      root.dataset.state = next;
      el.state.dataset.state = next;
      el.state.textContent = stateText[next] || next;
      for (const node of root.querySelectorAll('[data-show]')) {
        node.hidden = !node.dataset.show.split(/\s+/).includes(next);
      }
      el.stage.classList.toggle('solo', el.remoteTile.hidden);
      media.setMetering(next !== 'left' && (next !== 'in-call' || el.devices.open));
      if (prev) keepFocus();
    }
    if (message) announce(message);
  }

  /** announce writes a sentence to the polite live region. */
  /** renderViewers lists the call's WHEP viewers; quiet: no announcement. */
  function renderViewers(viewers, quiet) {
    if (!viewersEl.isConnected) el.stage.after(viewersEl);
    const fresh = new Set();
    const said = [];
    for (const v of viewers) {
      if (!v || typeof v.participant !== 'string') continue;
      fresh.add(v.participant);
      if (!viewerIds.has(v.participant)) said.push(`${v.name || 'A viewer'} is watching the call.`);
    }
    if (!quiet && viewerIds.size > fresh.size && said.length === 0) said.push('A viewer stopped watching the call.');
    viewerIds = fresh;
    const names = viewers.filter((v) => v && typeof v.participant === 'string').map((v) => v.name || 'A viewer');
    viewersEl.textContent = names.length ? `Also watching: ${names.join(', ')}` : '';
    viewersEl.hidden = names.length === 0;
    if (!quiet && said.length) announce(said.join(' '));
  }

  function announce(text) {
    // Re-setting identical text is not announced; make each message distinct.
    el.status.textContent = el.status.textContent === text ? text + '\u00a0' : text;
  }

  function showError(text) {
    lastError = text;
    el.error.textContent = text;
    el.error.hidden = !text;
  }

  /** keepFocus moves focus to the new state's heading when its element vanished. */
  function keepFocus() {
    const a = document.activeElement;
    if (a && a !== document.body && a.offsetParent !== null && !a.closest('[hidden]')) return;
    const target = root.querySelector(`[data-show~="${state}"]:not([hidden]) h2[tabindex="-1"]`) ||
      [el.mute, el.leave].find((b) => b && !b.hidden);
    if (target) target.focus({ preventScroll: false });
  }

  // ---- signaling ----

  /** wsPath is the signaling URL, asking to resume while we hold a session. */
  function wsPath() {
    const base = root.dataset.ws;
    if (!session.token) return base;
    const q = new URLSearchParams({ resume: session.token, last: String(session.lastIn) });
    return base + (base.includes('?') ? '&' : '?') + q;
  }

  function connect() {
    leaving = false;
    showError('');
    setState('connecting', 'Connecting to the visit…');
    sock = new ReconnectingSocket(wsPath, {
      onmessage: (msg) => handle(msg, gen),
      onclose: (e, willRetry) => {
        if (!session.token) teardown(); // nothing to resume: start afresh
        if (leaving || !willRetry) return;
        failures++;
        if (failures === 3) {
          showError('The visit cannot be reached right now. We keep trying; check your internet connection, or reload the page.');
        }
        if (state === 'connecting' || state === 'reconnecting') return; // said already
        setState('reconnecting', 'Connection to the visit lost. Reconnecting…');
      },
    });
    sock.start();
  }

  /** send numbers obj and sends it, or keeps it for resending after a resume. */
  function send(obj) {
    const msg = { ...obj, seq: ++session.outSeq };
    session.sent.push(msg);
    if (session.sent.length > 128) session.sent.shift();
    if (!sock || !sock.send(msg)) console.warn('not connected; kept for the resume', obj.type);
  }

  /** fresh forgets the session: a new join numbers everything from 1. */
  function fresh() {
    session.token = '';
    session.lastIn = 0;
    session.outSeq = 0;
    session.sent = [];
  }

  function handle(msg, g) {
    if (msg.type === 'resumed' || msg.type === 'resume-failed') {
      onResume(msg);
      return;
    }
    if (typeof msg.seq === 'number') {
      if (msg.seq <= session.lastIn) return; // had it already
      session.lastIn = msg.seq;
    }
    switch (msg.type) {
      case 'welcome':
        session.token = msg.resume || '';
        selfId = msg.participant || '';
        tilesSent.clear(); // a new connection: the server knows no tile yet
        iceServers = Array.isArray(msg.iceServers) ? msg.iceServers : [];
        failures = 0;
        showError('');
        if (el.lobby) renderLobby([], true);
        if (msg.state === 'admitted') onAdmitted(g);
        else setState('waiting', `You are in the waiting room. ${remoteName} will let you in shortly.`);
        break;
      case 'lobby':
        renderLobby(Array.isArray(msg.waiting) ? msg.waiting : []);
        break;
      case 'admitted':
        onAdmitted(g);
        break;
      case 'publish-answer':
        if (pub) pub.answer(msg.sdp).catch((err) => fail('Could not start sending your video', err));
        break;
      case 'subscribe-offer':
        onSubscribeOffer(msg);
        break;
      case 'candidate': {
        const link = msg.target === 'publish' ? pub : msg.target === 'subscribe' ? ensureSubscriber() : null;
        if (link) link.addRemoteCandidate(msg.candidate);
        break;
      }
      case 'speaker':
        speaker = msg.participant || '';
        markSpeaker();
        break;
      case 'quality':
        if (admitted) quality.update(msg.quality, selfId);
        break;
      case 'viewers':
        renderViewers(Array.isArray(msg.viewers) ? msg.viewers : []);
        break;
      case 'peer-left':
        removeParticipant(msg.participant);
        removeParticipant(`${msg.participant}:screen`, true);
        break;
      case 'error':
        showError(msg.error || 'The server refused a request.');
        for (const b of root.querySelectorAll('button.admit:disabled')) {
          b.disabled = false;
          b.firstChild.textContent = 'Admit';
        }
        break;
      default:
        // Unknown types are ignored, as the protocol asks.
    }
  }

  /** onResume handles the server's answer to a resume. */
  function onResume(msg) {
    if (msg.type === 'resume-failed') {
      // The server let our session go; a welcome follows on this socket.
      console.warn('resume refused:', msg.error);
      teardown();
      fresh();
      setState('connecting', 'Rejoining the visit…');
      return;
    }
    session.token = msg.resume || '';
    const last = typeof msg.last === 'number' ? msg.last : 0;
    for (const m of session.sent) {
      if (m.seq > last) sock.send(m);
    }
    failures = 0;
    showError('');
    if (admitted) {
      setState('in-call', 'Reconnected.');
      if (restartWanted || linksDown()) restartIce();
    } else {
      setState('waiting', `Reconnected. You are in the waiting room. ${remoteName} will let you in shortly.`);
    }
  }

  /** linksDown reports whether a peer connection lost its path. */
  function linksDown() {
    return [pub, sub].some((l) => l && !l.closed && ['disconnected', 'failed'].includes(l.pc.iceConnectionState));
  }

  /**
   * restartIce asks for new ICE paths on both connections, as after a
   * network change: a publish offer with iceRestart, and ice-restart for the
   * subscribe connection. Without a socket it waits for the resume.
   */
  function restartIce() {
    if (!admitted || leaving) return;
    if (!sock || !sock.isOpen) {
      restartWanted = true;
      return;
    }
    restartWanted = false;
    lastRestart = Date.now();
    if (state === 'in-call' && linksDown()) setState('reconnecting', 'Your network changed. Reconnecting the video…');
    // The others' media first: the server handles messages in order.
    send({ type: 'ice-restart' });
    if (pub) pub.offer(true).catch((err) => console.warn('ICE restart', err));
  }

  // The browser's own hints that the network changed.
  addEventListener('online', () => restartIce());
  if (navigator.connection && navigator.connection.addEventListener) {
    // change also fires when only the bandwidth estimate moves: restart
    // when the kind of network changed (Wi-Fi to cellular) or a path is down.
    let kind = navigator.connection.type;
    navigator.connection.addEventListener('change', () => {
      const now = navigator.connection.type;
      if (now !== kind || linksDown()) restartIce();
      kind = now;
    });
  }

  async function onAdmitted(g) {
    if (admitted) return;
    admitted = true;
    setState('in-call', waits
      ? `You are in the visit with ${remoteName}.`
      : `The visit has started. ${remoteName} can join once you admit them.`);
    if (waits && el.devices.open) el.devices.open = false;
    // The physician may press Start before the camera prompt is answered.
    await media.ready;
    if (g !== gen || pub || !admitted) return;
    pub = new Publisher(iceServers, send, media.stream);
    pub.pc.onconnectionstatechange = () => watchConnection(pub, 'sending');
    try {
      await pub.offer();
    } catch (err) {
      fail('Could not start sending your video', err);
    }
  }

  function ensureSubscriber() {
    if (!sub) {
      sub = new Subscriber(iceServers, send, { ontrack: addTrack, onremoved: removeTrack });
      sub.pc.onconnectionstatechange = () => watchConnection(sub, 'receiving');
    }
    return sub;
  }

  function onSubscribeOffer(msg) {
    const s = ensureSubscriber();
    s.offer(msg).catch((err) => {
      if (s === sub) fail('Could not receive the other side’s video', err);
    });
  }

  function watchConnection(link, what) {
    if (!link || link.closed) return;
    const st = link.pc.connectionState;
    clearTimeout(disconnectTimer);
    if (st === 'failed' && Date.now() - lastRestart > 15000) {
      restartIce(); // the path is gone: find a new one
    } else if (st === 'failed') {
      // A restart did not help: rejoin from scratch.
      showError(`The connection for ${what} media failed. Reconnecting…`);
      if (sock) {
        sock.stop(4000);
        teardown();
        fresh();
        connect();
      }
    } else if (st === 'disconnected') {
      // Often a blip that heals by itself; restart if it lasts.
      disconnectTimer = setTimeout(() => { if (linksDown()) restartIce(); }, 2000);
    } else if (st === 'connected') {
      if (lastError.startsWith('The connection for')) showError('');
      if (state === 'reconnecting' && sock && sock.isOpen && !linksDown()) setState('in-call', 'Video reconnected.');
    }
  }

  function fail(text, err) {
    console.error(text, err);
    showError(`${text}. Please leave and join again.`);
  }

  /** teardown closes both connections and forgets remote media. */
  function teardown() {
    gen++;
    admitted = false;
    if (pub) pub.close();
    if (sub) sub.close();
    pub = null;
    sub = null;
    for (const id of [...remotes.keys()]) removeParticipant(id, true);
    lastShownName = ''; // our own leaving or a reconnect: nobody "left"
    el.remotePlaceholder.textContent = placeholderText;
    trackOwner.clear();
    quality.clear();
    renderViewers([], true);
    speaker = '';
    markSpeaker();
    endShare(true);
    if (el.lobby) renderLobby([], true);
  }

  // ---- remote media ----

  function addTrack(track, meta, streams) {
    const owner = (meta && meta.participant) || (streams[0] && streams[0].id) || 'remote';
    // A screen share is a participant of its own: "<name>'s screen".
    const screen = !!meta && meta.source === 'screen';
    const id = screen ? `${owner}:screen` : owner;
    const name = meta && meta.name ? (screen ? `${meta.name}’s screen` : meta.name) : '';
    let r = remotes.get(id);
    if (!r) {
      r = { id, name: name || remoteName, stream: new MediaStream(), screen };
      remotes.set(id, r);
    } else if (name) {
      r.name = name;
    }
    // One audio and one video per participant: a newer track of a kind replaces the older.
    for (const t of r.stream.getTracks()) {
      if (t.kind === track.kind && t !== track) {
        r.stream.removeTrack(t);
        trackOwner.delete(t);
      }
    }
    if (!r.stream.getTracks().includes(track)) r.stream.addTrack(track);
    trackOwner.set(track, id);
    if (meta && meta.id) trackIds.set(track, meta.id);
    track.onmute = track.onunmute = () => { if (shown === r) updateRemoteTile(); };
    render();
  }

  function removeTrack(track) {
    const id = trackOwner.get(track);
    trackOwner.delete(track);
    tilesSent.delete(trackIds.get(track));
    trackIds.delete(track);
    const r = id && remotes.get(id);
    if (!r) return;
    r.stream.removeTrack(track);
    render();
  }

  function removeParticipant(id, quiet = false) {
    const r = remotes.get(id);
    if (!r) {
      if (!quiet && id) announce(`${remoteName} left the call.`);
      return;
    }
    remotes.delete(id);
    for (const t of r.stream.getTracks()) trackOwner.delete(t);
    if (!quiet) announce(`${r.name} left the call.`);
    render();
  }

  /**
   * render puts the first remote person with media on #remote-video (an
   * exam camera only when nobody else sends media) and everyone else with
   * media on a tile of their own. A video is given its stream again only
   * when that stream's tracks changed: someone else's tile coming or going
   * leaves it playing.
   */
  function render() {
    const withMedia = [...remotes.values()].filter((r) => r.stream.getTracks().length);
    const next = mainId
      ? withMedia.find((r) => r.id === mainId) || null
      : withMedia.find((r) => !isCamera(r.id) && !r.screen) || withMedia[0] || null;
    const arrived = next && next !== shown;
    shown = next;
    if (attach(el.remoteVideo, shown ? shown.stream : null) && shown) playRemote();
    if (arrived) announce(`${shown.name} is connected.`);
    renderExtras(withMedia.filter((r) => r !== shown));
    updateRemoteTile();
    markSpeaker();
  }

  // The tracks each video was last given (video -> their ids), so that
  // attach assigns a stream again only when it has to.
  const attachedTracks = new WeakMap();

  /**
   * attach shows stream (or nothing) on video, and says whether it did
   * anything. Assigning srcObject reloads the video, a visible flash, so
   * it is done only for another stream, or for the same one whose tracks
   * changed: re-assigning it is what makes every browser notice an added
   * or removed track.
   */
  function attach(video, stream) {
    const tracks = stream ? stream.getTracks().map((t) => t.id).sort().join(' ') : '';
    if (video.srcObject === stream && attachedTracks.get(video) === tracks) return false;
    video.srcObject = null;
    video.srcObject = stream;
    attachedTracks.set(video, tracks);
    return true;
  }

  /** markSpeaker outlines the dominant speaker's tile and describes it as speaking. */
  function markSpeaker() {
    const tiles = [[el.remoteTile, shown && shown.id], [$('local-tile'), selfId]];
    for (const [id, x] of extraTiles) tiles.push([x.tile, id]);
    for (const [tile, id] of tiles) {
      if (!tile) continue;
      const on = !!speaker && id === speaker;
      tile.classList.toggle('speaking', on);
      if (on) tile.setAttribute('aria-description', 'speaking');
      else tile.removeAttribute('aria-description');
    }
  }

  /** isCamera reports whether a participant is a device published by WHIP. */
  function isCamera(id) {
    return id.startsWith('whip-');
  }

  /** renderExtras keeps one labelled tile per participant in list. */
  function renderExtras(list) {
    if (!el.extras) return;
    const want = new Set(list.map((r) => r.id));
    for (const [id, x] of extraTiles) {
      if (want.has(id)) continue;
      x.video.srcObject = null;
      x.tile.remove();
      extraTiles.delete(id);
    }
    for (const r of list) {
      let x = extraTiles.get(r.id);
      if (!x) {
        const tile = document.createElement('div');
        tile.className = 'tile extra';
        tile.setAttribute('role', 'group');
        tile.setAttribute('aria-label', r.screen ? r.name : `${r.name}’s video`);
        if (r.screen) tile.classList.add('screen');
        tile.dataset.participant = r.id;
        const video = document.createElement('video');
        video.autoplay = true;
        video.playsInline = true;
        const name = document.createElement('p');
        name.className = 'name';
        name.setAttribute('aria-hidden', 'true');
        name.textContent = r.name;
        tile.append(video, name);
        el.extras.append(tile);
        x = { tile, video };
        extraTiles.set(r.id, x);
        if (resizes) resizes.observe(video);
        announce(`${r.name} is connected.`);
      }
      if (!attach(x.video, r.stream)) continue;
      x.video.muted = el.remoteVideo.muted; // the sound button unmutes both
      x.video.play().catch(() => {});
    }
  }

  function updateRemoteTile() {
    const v = shown && shown.stream.getVideoTracks()[0];
    const hasVideo = !!v && !v.muted;
    el.remoteTile.classList.toggle('no-video', !hasVideo);
    el.remoteName.textContent = shown ? shown.name : remoteName;
    if (shown) lastShownName = shown.name;
    // Once someone has been seen and gone, "will appear when the visit
    // starts" would be wrong: say they left.
    if (!shown) el.remotePlaceholder.textContent = lastShownName ? `${lastShownName} left the call. You can wait here in case they come back, or leave.` : placeholderText;
    else if (!v) el.remotePlaceholder.textContent = `${shown.name}’s camera is off. You can still talk.`;
    else el.remotePlaceholder.textContent = `Waiting for ${shown.name}’s video…`;
    el.remotePlaceholder.hidden = hasVideo;
    el.remoteVideo.dataset.participant = shown ? shown.id : '';
    sendTiles();
  }

  /**
   * sendTiles tells the server how large each received video is drawn, in
   * device pixels, so it sends a simulcast layer no larger than needed; a
   * video that is not shown is sent as 0 by 0 and paused.
   */
  function sendTiles() {
    const dpr = window.devicePixelRatio || 1;
    const sizeOf = (video) => [Math.round(video.clientWidth * dpr), Math.round(video.clientHeight * dpr)];
    for (const r of remotes.values()) {
      const x = extraTiles.get(r.id);
      const video = r === shown ? el.remoteVideo : x ? x.video : null;
      for (const t of r.stream.getVideoTracks()) {
        const id = trackIds.get(t);
        if (!id) continue;
        const size = video ? sizeOf(video) : [0, 0];
        if (video && (size[0] === 0 || size[1] === 0)) continue; // not laid out yet
        const key = size.join('x');
        if (tilesSent.get(id) === key) continue;
        tilesSent.set(id, key);
        send({ type: 'tile', track: id, width: size[0], height: size[1] });
      }
    }
  }
  let tileTimer = 0;
  const resizes = window.ResizeObserver
    ? new ResizeObserver(() => {
      clearTimeout(tileTimer);
      tileTimer = setTimeout(sendTiles, 250); // once the layout settles
    })
    : null;
  if (resizes) resizes.observe(el.remoteVideo);

  function playRemote() {
    el.remoteVideo.muted = false;
    el.remoteVideo.play().catch((err) => {
      if (err.name !== 'NotAllowedError') return; // AbortError: a newer srcObject took over
      // Autoplay with sound was refused: play muted and offer a button.
      el.remoteVideo.muted = true;
      el.remoteVideo.play().catch(() => {});
      el.soundButton.hidden = false;
      announce('Sound is off. Press Turn on sound to hear the other side.');
    });
  }

  // ---- waiting room (physician) ----

  function renderLobby(waiting, quiet = false) {
    if (!el.lobby) return;
    const fresh = new Set(waiting.map((w) => String(w.participant)));
    if (!quiet) {
      for (const w of waiting) {
        if (!lobbyIds.has(String(w.participant))) announce(`${w.name || 'Someone'} is in the waiting room.`);
      }
    }
    lobbyIds = fresh;
    const focused = document.activeElement && document.activeElement.closest('#lobby') ? document.activeElement.dataset.participant : null;
    el.lobby.replaceChildren(...waiting.map((w) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'who';
      name.textContent = w.name || 'Unnamed participant';
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'button admit';
      b.dataset.participant = String(w.participant);
      b.append('Admit');
      const sr = document.createElement('span');
      sr.className = 'sr-only';
      sr.textContent = ' ' + (w.name || '');
      b.append(sr);
      li.append(name, ' ', b);
      return li;
    }));
    el.lobbyEmpty.textContent = state === 'ready' ? 'Start the visit to see who is waiting.' : 'Nobody is waiting.';
    el.lobbyEmpty.hidden = waiting.length > 0;
    if (focused) {
      const again = el.lobby.querySelector(`button.admit[data-participant="${CSS.escape(focused)}"]`);
      (again || el.mute).focus();
    }
  }

  // ---- screen share ----

  let screenTrack = null;

  /** toggleShare starts sharing a screen, window or tab, or stops it. */
  async function toggleShare() {
    if (screenTrack) {
      endShare();
      return;
    }
    if (!pub || !navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) {
      showError('This browser cannot share a screen.');
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (err) {
      if (err.name !== 'NotAllowedError') showError('Could not share your screen.');
      else announce('Screen sharing was not started.');
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!track || !pub) {
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    screenTrack = track;
    // The browser's own "Stop sharing" ends the track.
    track.addEventListener('ended', () => { if (screenTrack === track) endShare(); });
    el.share.setAttribute('aria-pressed', 'true');
    el.share.textContent = 'Stop sharing';
    announce('You are sharing your screen. Everyone in the call can see it.');
    pub.shareScreen(track).catch((err) => fail('Could not share your screen', err));
  }

  /** endShare stops the screen share, if any (quiet: without a word). */
  function endShare(quiet = false) {
    if (!screenTrack) return;
    const t = screenTrack;
    screenTrack = null;
    t.stop();
    if (pub) pub.stopScreen().catch((err) => console.warn('stop sharing', err));
    if (el.share) {
      el.share.setAttribute('aria-pressed', 'false');
      el.share.textContent = 'Share screen';
    }
    if (!quiet) announce('Screen sharing stopped.');
  }

  // ---- controls ----

  function toggle(button, on, textOn, textOff) {
    button.setAttribute('aria-pressed', String(!on));
    announce(on ? textOn : textOff);
  }

  this.init = function init() {
    // Runs alongside everything else; joining never waits for it.
    // A guest checks on a route of their own (data-check).
    new ConnectivityCheck(root, root.dataset.check || undefined).run();
    media.start().then(() => {
      el.startButton.disabled = false;
      if (state !== 'ready') return;
      const have = media.stream.getTracks().length > 0;
      announce(waits
        ? `${have ? 'Ready.' : 'You can still join without camera and microphone.'} Press Join the waiting room when you are.`
        : `${have ? 'Ready.' : 'No camera or microphone.'} Press Start visit when you are.`);
    });
    media.onTrack((kind, track) => { if (pub) pub.replace(kind, track); });

    el.startButton.addEventListener('click', () => {
      if (state !== 'ready') return;
      media.resumeAudio();
      if (!media.stream.getTracks().length) {
        announce('Joining without camera and microphone. The other side will not see or hear you.');
      }
      connect();
    });
    el.mute.addEventListener('click', () => {
      const on = media.setMic(!media.micOn);
      toggle(el.mute, on, 'Microphone on.', 'Microphone muted.');
    });
    el.camera.addEventListener('click', () => {
      const on = media.setCamera(!media.cameraOn);
      toggle(el.camera, on, 'Camera on.', 'Camera off.');
    });
    el.leave.addEventListener('click', leave);
    if (el.share) el.share.addEventListener('click', toggleShare);
    el.soundButton.addEventListener('click', () => {
      el.remoteVideo.muted = false;
      el.remoteVideo.play().catch(() => {});
      for (const x of extraTiles.values()) {
        x.video.muted = false;
        x.video.play().catch(() => {});
      }
      el.soundButton.hidden = true;
      announce('Sound on.');
      el.mute.focus();
    });
    el.devices.addEventListener('toggle', () => media.setMetering(state !== 'left' && el.devices.open));
    if (el.lobby) {
      el.lobby.addEventListener('click', (e) => {
        const b = e.target.closest('button.admit');
        if (!b || b.disabled) return;
        b.disabled = true;
        b.firstChild.textContent = 'Admitting…';
        send({ type: 'admit', participant: b.dataset.participant });
      });
    }
    addEventListener('pagehide', () => {
      if (sock && sock.isOpen) sock.send({ type: 'leave' });
    });
    setState('ready');
    announce('Your browser may ask to use your camera and microphone: please choose Allow.');
  };

  function leave() {
    leaving = true;
    send({ type: 'leave' });
    if (sock) sock.stop();
    sock = null;
    teardown();
    fresh();
    media.stop();
    el.remoteVideo.srcObject = null;
    showError('');
    setState('left', 'You have left the visit.');
  }
}
