// The network-quality indicator of the call page. The server sends a
// "quality" message every 2 s listing each participant's level (good,
// fair, poor, unknown) and figures (docs/protocol.md, "Network quality");
// this module shows them as a small list under the video: text, not colour
// alone, and a polite live region that speaks only when a level changes.

const words = { good: 'Good', fair: 'Fair', poor: 'Poor', unknown: 'Measuring…' };

/** QualityIndicator draws the levels after the element `after`. */
export class QualityIndicator {
  /**
   * @param {HTMLElement} after the element the indicator follows
   * @param {(id: string) => string | undefined} nameOf a participant's
   *   display name, or nothing for a participant the page does not know
   *   (yet): its entry is skipped, as docs/protocol.md says clients do
   */
  constructor(after, nameOf) {
    this.nameOf = nameOf;
    this.levels = new Map(); // participant id -> last level shown
    this.root = document.createElement('section');
    this.root.id = 'quality';
    this.root.className = 'quality';
    this.root.setAttribute('aria-labelledby', 'quality-heading');
    this.root.hidden = true;
    const h = document.createElement('h2');
    h.id = 'quality-heading';
    h.className = 'quality-heading';
    h.textContent = 'Network quality';
    this.list = document.createElement('ul');
    this.live = document.createElement('p');
    this.live.className = 'sr-only';
    this.live.setAttribute('aria-live', 'polite');
    this.root.append(h, this.list, this.live);
    after.after(this.root);
  }

  /**
   * update shows one quality message's entries; self is the id of this
   * page's participant, shown first as "Your connection".
   */
  update(entries, self) {
    if (!Array.isArray(entries)) return;
    const sorted = [...entries].sort((a, b) => (b.participant === self) - (a.participant === self));
    const changes = [];
    const rows = [];
    for (const q of sorted) {
      if (!q || typeof q.participant !== 'string') continue;
      const name = q.participant === self ? '' : this.nameOf(q.participant);
      if (q.participant !== self && !name) continue; // not (yet) known here: no one to name
      const level = words[q.level] ? q.level : 'unknown';
      const who = q.participant === self ? 'Your connection' : `${name}’s connection`;
      const li = document.createElement('li');
      li.dataset.participant = q.participant;
      li.dataset.level = level;
      const label = document.createElement('span');
      label.className = 'who';
      label.textContent = `${who}: `;
      const lv = document.createElement('strong');
      lv.className = 'level';
      lv.textContent = words[level];
      const fig = document.createElement('span');
      fig.className = 'figures';
      fig.textContent = level === 'unknown' ? '' : ` (${figures(q)})`;
      li.append(label, lv, fig);
      rows.push(li);
      const prev = this.levels.get(q.participant);
      if (prev !== level && level !== 'unknown' && (prev !== undefined || level !== 'good')) {
        changes.push(`${who} is ${words[level].toLowerCase()}.`);
      }
      this.levels.set(q.participant, level);
    }
    this.list.replaceChildren(...rows);
    this.root.hidden = rows.length === 0;
    if (changes.length) this.live.textContent = changes.join(' ');
  }

  /** clear empties the indicator, as when the call ends. */
  clear() {
    this.levels.clear();
    this.list.replaceChildren();
    this.root.hidden = true;
  }
}

/** figures is the short text of an entry's loss, jitter, round trip and bitrates. */
function figures(q) {
  const pct = (x) => `${(100 * (Number(x) || 0)).toFixed(1)}%`;
  const ms = (x) => `${Math.round(Number(x) || 0)} ms`;
  const kbps = (x) => `${Math.round(Number(x) || 0)} kbit/s`;
  const parts = [`loss ${pct(Math.max(q.recvLoss || 0, q.sendLoss || 0))}`, `jitter ${ms(q.jitterMs)}`];
  if (q.rttMs > 0) parts.push(`round trip ${ms(q.rttMs)}`);
  parts.push(`in ${kbps(q.recvKbps)}`, `out ${kbps(q.sendKbps)}`);
  return parts.join(', ');
}
