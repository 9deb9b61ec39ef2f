// The pre-call connectivity check (docs/protocol.md, "Connectivity check"):
// a short test connection to the SFU with the call's ICE servers, a data
// channel echo and no media. It reports in plain words which path works
// (direct UDP, TCP, or a relay), the round trip, and what to do when
// nothing connects. It runs beside the rest of the page and never holds up
// joining.

const GATHER_MS = 5000; // longest wait for our candidates
const CONNECT_MS = 12000; // longest wait for the data channel to open
const PINGS = 5;

/** wait resolves with p's value, or with fallback after ms. */
function within(p, ms, fallback) {
  let timer;
  return Promise.race([p, new Promise((resolve) => { timer = setTimeout(() => resolve(fallback), ms); })])
    .finally(() => clearTimeout(timer));
}

class CheckError extends Error {}

/** explain turns a selected candidate pair and round trip into sentences. */
export function explain(localType, protocol, rttMs) {
  let text;
  if (localType === 'relay') {
    text = 'Your connection works through a relay server, because your network blocks direct connections. Calls work, with a little more delay.';
  } else if (protocol === 'tcp') {
    text = 'Your connection works over TCP, because your network blocks the faster UDP path. Calls work, but video may stutter on a weak connection.';
  } else {
    text = 'Your connection works directly. Your network is fine for video calls.';
  }
  text += ` Round trip: ${Math.round(rttMs)} ms.`;
  if (rttMs > 400) {
    text += ' That is slow: the picture may lag. If you can, move closer to your Wi-Fi router, or use another network.';
  }
  return text;
}

/**
 * ConnectivityCheck drives the elements below root: #netcheck-status,
 * #netcheck-progress, #netcheck-retry and the #netcheck section
 * (data-result: checking, direct, tcp, relay, failed).
 */
export class ConnectivityCheck {
  constructor(root, url = '/connectivity-check') {
    const $ = (id) => root.querySelector('#' + id);
    this.box = $('netcheck');
    this.status = $('netcheck-status');
    this.progress = $('netcheck-progress');
    this.retry = $('netcheck-retry');
    this.url = url;
    this.running = false;
    if (this.retry) this.retry.addEventListener('click', () => this.run());
  }

  show(result, text, busy) {
    this.box.dataset.result = result;
    this.status.textContent = text;
    this.progress.hidden = !busy;
    this.retry.hidden = busy;
    if (result === 'failed' || result === 'error') {
      const details = this.box.closest('details');
      if (details) details.open = true;
    }
  }

  /** run checks once; it never rejects. */
  async run() {
    if (!this.box || this.running) return;
    this.running = true;
    this.show('checking', 'Checking your connection to the video service…', true);
    let pc = null;
    try {
      const servers = await this.request('GET');
      pc = new RTCPeerConnection({ iceServers: servers.iceServers || [] });
      const dc = pc.createDataChannel('echo');
      const opened = new Promise((resolve) => { dc.onopen = () => resolve(true); });
      const gathered = new Promise((resolve) => {
        pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
      });
      await pc.setLocalDescription(await pc.createOffer());
      await within(gathered, GATHER_MS); // slow servers: go with what we have
      const answer = await this.request('POST', pc.localDescription.sdp);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      if (!(await within(opened, CONNECT_MS, false))) {
        throw new CheckError('Your network seems to block video calls: we could not reach the video service. ' +
          'Try another network, such as mobile data or a home Wi-Fi, or ask the network’s IT staff to allow video calls. ' +
          'You can still try to join.');
      }
      const rtts = [];
      for (let i = 0; i < PINGS; i++) {
        const msg = `ping ${i}`;
        const echoed = new Promise((resolve) => { dc.onmessage = (e) => { if (e.data === msg) resolve(true); }; });
        const t0 = performance.now();
        dc.send(msg);
        if (!(await within(echoed, 3000, false))) throw new CheckError('The connection to the video service keeps dropping. Try another network, such as mobile data.');
        rtts.push(performance.now() - t0);
      }
      rtts.sort((a, b) => a - b);
      const { localType, protocol } = await selectedPath(pc);
      const result = localType === 'relay' ? 'relay' : protocol === 'tcp' ? 'tcp' : 'direct';
      this.show(result, explain(localType, protocol, rtts[Math.floor(rtts.length / 2)]), false);
    } catch (err) {
      if (err instanceof CheckError) this.show('failed', err.message, false);
      else {
        console.warn('connectivity check', err);
        this.show('error', 'The connection check could not run. You can still join; if the call does not connect, try another network.', false);
      }
    } finally {
      if (pc) pc.close();
      this.running = false;
    }
  }

  async request(method, sdp) {
    let resp;
    try {
      resp = await fetch(this.url, method === 'GET'
        ? { credentials: 'same-origin', cache: 'no-store' }
        : { method, credentials: 'same-origin', headers: { 'Content-Type': 'application/sdp' }, body: sdp });
    } catch {
      throw new CheckError('We could not reach Bedside. Check that you are online, then press Check again.');
    }
    if (resp.status === 429 || resp.status === 503) {
      throw new CheckError('The check is busy. Wait a few seconds, then press Check again.');
    }
    if (resp.status === 401) throw new CheckError('Your session has ended: open your link again.');
    if (!resp.ok) throw new Error(`${method} ${this.url}: ${resp.status}`);
    return method === 'GET' ? resp.json() : resp.text();
  }
}

/** selectedPath reads which candidate pair connected from the stats. */
async function selectedPath(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) {
    // Firefox marks the pair in use as selected; others as nominated.
    stats.forEach((s) => { if (!pair && s.type === 'candidate-pair' && (s.selected || s.nominated) && s.state === 'succeeded') pair = s; });
  }
  const local = pair && stats.get(pair.localCandidateId);
  const remote = pair && stats.get(pair.remoteCandidateId);
  return {
    localType: local ? local.candidateType : '',
    protocol: remote ? remote.protocol : (local ? local.protocol : ''),
  };
}
