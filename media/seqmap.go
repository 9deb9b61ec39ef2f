package media

// seqRanges is how many earlier offsets a down track remembers for
// packets that arrive late (reordered, or retransmitted by the publisher
// on its media stream): a burst of padding counts once, so a handful
// covers far more than a late packet can lag.
const seqRanges = 8

// seqRange says that the publisher's sequence numbers from `from` on (up
// to the next range) are sent to the subscriber as seq-off.
type seqRange struct{ from, off uint16 }

// seqMap keeps a down track's sequence numbers contiguous across packets
// the SFU does not forward (padding-only packets: the publisher's
// bandwidth probes). Each skip shifts the offset of what follows by one,
// so the subscriber sees no hole to count as lost or to NACK; packets from
// before a skip that arrive after it keep the offset they had, so they
// fill their own place. The current offset is the down track's seqOff;
// seqMap holds where it starts and the earlier ones. A layer switch starts
// a new mapping (reset).
type seqMap struct {
	cur   uint16 // first sequence number of the current offset
	top   uint16 // highest sequence number forwarded or skipped
	n     int
	older [seqRanges]seqRange // oldest first
}

// reset starts a mapping at seq, the first packet forwarded.
func (m *seqMap) reset(seq uint16) {
	m.cur, m.top, m.n = seq, seq, 0
}

// trail forgets what lies before first, the oldest sequence number the
// down track still forwards (see downTrack.trail), so that the ranges'
// starts stay close enough to the newest packet for comparisons modulo
// 2^16 to hold.
func (m *seqMap) trail(first uint16) {
	if int16(first-m.cur) >= 0 {
		m.cur, m.n = first, 0
		return
	}
	for m.n > 1 && int16(first-m.older[1].from) >= 0 {
		copy(m.older[:], m.older[1:m.n])
		m.n--
	}
	if m.n > 0 && int16(first-m.older[0].from) > 0 {
		m.older[0].from = first
	}
}

// offset returns the offset for seq given the current one, and false if
// seq is older than every remembered range (the caller drops it).
func (m *seqMap) offset(seq, cur uint16) (uint16, bool) {
	if int16(seq-m.top) > 0 {
		m.top = seq
	}
	if int16(seq-m.cur) >= 0 {
		return cur, true
	}
	for i := m.n - 1; i >= 0; i-- {
		if int16(seq-m.older[i].from) >= 0 {
			return m.older[i].off, true
		}
	}
	return 0, false
}

// skip records that seq will not be forwarded and returns the new current
// offset. Only a packet newer than all seen so far can be skipped without
// a hole; an older one was already given its place, and stays a gap.
// first is raised when the oldest range is forgotten, so that packets
// from it are dropped rather than misnumbered.
func (m *seqMap) skip(seq, cur uint16, first *uint16) uint16 {
	if int16(seq-m.top) <= 0 {
		return cur
	}
	m.top = seq
	if seq != m.cur {
		// Packets between m.cur and seq (sent, or still to arrive) keep
		// the current offset.
		if m.n == seqRanges {
			copy(m.older[:], m.older[1:])
			m.n--
			*first = m.older[0].from
		}
		m.older[m.n] = seqRange{from: m.cur, off: cur}
		m.n++
	}
	// Nothing follows seq at this offset yet: the range starts after it.
	m.cur = seq + 1
	return cur + 1
}

// skip tells the down track that the publisher's packet seq of layer l
// carries nothing to forward (padding only), so that the subscriber's
// numbering closes over it. It runs on the publisher's read loop.
func (d *downTrack) skip(l int, seq uint16) {
	if d.hist == nil || !d.live.Load() {
		return // audio is not padded; numbering is kept by forwardAudio
	}
	d.mu.Lock()
	if d.bound && d.started && l == d.current && !d.waitKey && int16(seq-d.firstSeq) > 0 {
		d.seqOff = d.seqs.skip(seq, d.seqOff, &d.firstSeq)
	}
	d.mu.Unlock()
}
