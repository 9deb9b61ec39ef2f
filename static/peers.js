// The two RTCPeerConnections of a call participant (docs/protocol.md):
// publish (we offer our camera and microphone) and subscribe (the server
// offers the others' tracks and re-offers when they change). Each buffers
// remote ICE candidates until its remote description is set, and holds back
// its own candidates until its SDP has been sent, so the server never sees a
// candidate for a session it does not know yet.

/** Link is one RTCPeerConnection with trickle ICE tagged by target. */
class Link {
  constructor(target, iceServers, send) {
    this.target = target;
    this.send = send;
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [], bundlePolicy: 'max-bundle' });
    this.remoteReady = false;
    this.remoteQueue = [];
    this.sdpSent = false;
    this.localQueue = [];
    this.closed = false;
    this.pc.onicecandidate = (e) => {
      const c = e.candidate ? e.candidate.toJSON() : null; // null: gathering is over
      if (this.sdpSent) this.sendCandidate(c);
      else this.localQueue.push(c);
    };
  }

  sendCandidate(c) {
    this.send({ type: 'candidate', target: this.target, candidate: c });
  }

  /** markSent is called right after our offer or answer went out. */
  markSent() {
    if (this.sdpSent) return;
    this.sdpSent = true;
    for (const c of this.localQueue.splice(0)) this.sendCandidate(c);
  }

  /** addRemoteCandidate applies c now, or once the remote description is set. */
  addRemoteCandidate(c) {
    if (this.closed) return;
    if (!this.remoteReady) {
      this.remoteQueue.push(c);
      return;
    }
    this.applyCandidate(c);
  }

  applyCandidate(c) {
    const end = !c || !c.candidate;
    // addIceCandidate is queued on the connection's operation chain, so
    // calling it while a re-offer is being applied is safe.
    const p = end ? this.pc.addIceCandidate() : this.pc.addIceCandidate(c);
    p.catch((err) => {
      if (!this.closed) console.warn(`${this.target}: candidate not applied`, err);
    });
  }

  /** setRemote applies a description, then the candidates that waited for it. */
  async setRemote(desc) {
    await this.pc.setRemoteDescription(desc);
    if (!this.remoteReady && !this.closed) {
      this.remoteReady = true;
      for (const c of this.remoteQueue.splice(0)) this.applyCandidate(c);
    }
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.remoteQueue = [];
    this.localQueue = [];
    this.pc.onicecandidate = null;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }
}

/**
 * SIMULCAST are the camera's three encodings (docs/protocol.md): quarter,
 * half and full resolution. The server forwards each viewer the one that
 * fits its bandwidth and the size it draws the video at.
 */
const SIMULCAST = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 1500000 },
];

/**
 * Publisher sends the local microphone and camera. It always offers one
 * audio and one video m-line, even without a device, so that a device found
 * later is sent with replaceTrack and no renegotiation. Video is sent as
 * three simulcast encodings.
 */
export class Publisher extends Link {
  constructor(iceServers, send, stream) {
    super('publish', iceServers, send);
    this.senders = {};
    for (const kind of ['audio', 'video']) {
      const track = stream.getTracks().find((t) => t.kind === kind) || null;
      const init = { direction: 'sendonly', streams: [stream] };
      if (kind === 'video') init.sendEncodings = SIMULCAST.map((e) => ({ ...e }));
      const tr = this.pc.addTransceiver(track || kind, init);
      this.senders[kind] = tr.sender;
    }
  }

  /**
   * offer creates the publish offer and sends it; with restart, it carries
   * new ICE credentials (after a network change). A restart asked for while
   * an offer awaits its answer follows that answer.
   */
  async offer(restart = false) {
    if (this.pc.signalingState !== 'stable') {
      // One offer at a time: this one follows the pending one's answer.
      this.offerWanted = true;
      this.restartWanted = this.restartWanted || restart;
      return;
    }
    // Candidates of a new ICE generation wait until its offer has gone out.
    if (restart) this.sdpSent = false;
    const offer = await this.pc.createOffer(restart ? { iceRestart: true } : undefined);
    await this.pc.setLocalDescription(offer);
    if (this.closed) return;
    const msg = { type: 'publish-offer', sdp: this.pc.localDescription.sdp };
    // The screen share's m-line, so the server labels its track.
    if (this.screen && this.screen.mid) msg.screen = this.screen.mid;
    this.send(msg);
    this.markSent();
  }

  /**
   * shareScreen sends a screen track (from getDisplayMedia) as one more
   * video: one layer, no simulcast, hinted as detail so that text stays
   * sharp rather than motion smooth.
   */
  async shareScreen(track) {
    if (this.closed || this.screen) return;
    if ('contentHint' in track) track.contentHint = 'detail';
    this.screen = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [new MediaStream([track])] });
    await this.offer();
  }

  /** stopScreen stops sending the screen: its m-line goes inactive. */
  async stopScreen() {
    const tr = this.screen;
    this.screen = null;
    if (!tr || this.closed) return;
    this.pc.removeTrack(tr.sender);
    await this.offer();
  }

  /** answer applies the server's publish-answer. */
  async answer(sdp) {
    if (this.closed) return;
    if (this.pc.signalingState !== 'have-local-offer') {
      console.warn('publish-answer without an offer pending; ignored');
      return;
    }
    await this.setRemote({ type: 'answer', sdp });
    if ((this.offerWanted || this.restartWanted) && !this.closed) {
      const restart = this.restartWanted;
      this.offerWanted = false;
      this.restartWanted = false;
      await this.offer(restart);
    }
  }

  /** replace swaps the sent track of kind (null sends nothing). */
  replace(kind, track) {
    const s = this.senders[kind];
    if (!s || this.closed || s.track === track) return;
    s.replaceTrack(track).catch((err) => console.warn('replaceTrack', err));
  }
}

/**
 * Subscriber receives the others' tracks. Offers are applied one at a time in
 * arrival order; ontrack(track, meta, streams) and onremoved(track) report
 * tracks coming and going, meta being the offer's {id, kind, participant,
 * name, source} entry for the track when it can be matched.
 */
export class Subscriber extends Link {
  constructor(iceServers, send, { ontrack, onremoved }) {
    super('subscribe', iceServers, send);
    this.queue = Promise.resolve();
    this.meta = []; // the last offer's track list
    this.msid = new Map(); // mid -> {stream, track} from the last offer's SDP
    this.live = new Set(); // receiver tracks reported to ontrack
    this.ontrackCb = ontrack;
    this.onremovedCb = onremoved;
    this.pc.ontrack = (e) => {
      // During setRemoteDescription: this.meta and this.msid already hold this offer.
      const m = this.match(e.track, e.transceiver, e.streams);
      this.live.add(e.track);
      e.track.addEventListener('ended', () => this.removed(e.track));
      this.ontrackCb(e.track, m, e.streams);
    };
  }

  /** offer queues a subscribe-offer; offers are handled strictly in order. */
  offer(msg) {
    const run = () => this.handleOffer(msg);
    this.queue = this.queue.then(run, run);
    return this.queue;
  }

  async handleOffer(msg) {
    if (this.closed) return;
    this.meta = Array.isArray(msg.tracks) ? msg.tracks : [];
    this.msid = parseMsid(msg.sdp || '');
    // The offer may restart ICE: our candidates of the new generation wait
    // for the answer.
    this.sdpSent = false;
    await this.setRemote({ type: 'offer', sdp: msg.sdp });
    if (this.closed) return;
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    if (this.closed) return;
    this.send({ type: 'subscribe-answer', sdp: this.pc.localDescription.sdp });
    this.markSent();
    this.prune();
  }

  /** prune reports tracks whose transceiver no longer receives. */
  prune() {
    for (const tr of this.pc.getTransceivers()) {
      const t = tr.receiver.track;
      if (!this.live.has(t)) continue;
      const dir = tr.currentDirection;
      if (tr.stopped || dir === 'inactive' || dir === 'sendonly' || dir === 'stopped' || t.readyState === 'ended') {
        this.removed(t);
      }
    }
  }

  removed(t) {
    if (!this.live.delete(t)) return;
    this.onremovedCb(t);
  }

  /** match finds the offer's metadata of a track by id, msid or stream. */
  match(track, transceiver, streams) {
    const byId = (id) => id && this.meta.find((m) => m.id === id);
    const fromSdp = transceiver && this.msid.get(transceiver.mid);
    const streamIds = streams.map((s) => s.id);
    if (fromSdp) streamIds.push(fromSdp.stream);
    let m = byId(track.id) || (fromSdp && byId(fromSdp.track));
    if (!m) m = this.meta.find((x) => streamIds.includes(x.participant) || streamIds.includes(x.id));
    if (!m) {
      const who = new Set(this.meta.map((x) => x.participant));
      if (who.size === 1) m = this.meta.find((x) => x.kind === track.kind) || this.meta[0];
    }
    return m || null;
  }
}

/** parseMsid maps each m-section's mid to its a=msid stream and track ids. */
export function parseMsid(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = /^a=mid:(\S+)/m.exec(section);
    const msid = /^a=msid:(\S+)(?: (\S+))?/m.exec(section);
    if (mid && msid) out.set(mid[1], { stream: msid[1], track: msid[2] || '' });
  }
  return out;
}
