package media

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// NACK answering limits: how far back a subscriber may ask (out sequence
// numbers remembered), how often one packet is sent again, and how soon
// after its last resend: at least resendGap, and three quarters of the
// round trip once it is known, so that a NACK sent before the last
// retransmission could arrive does not use up another.
const (
	histLen    = 512
	maxResends = 6
	resendGap  = 10 * time.Millisecond
)

// histEntry maps one sequence number sent to a subscriber back to the
// packet it came from, with the rewriting applied to it.
type histEntry struct {
	valid      bool
	seq        uint16 // out sequence number
	src        uint16 // the publisher's sequence number
	layer      int8
	resends    uint8
	tsOff      uint32
	picOff     uint16
	tl0Off     uint8
	lastResend int64 // unix nanoseconds
}

// downTrack is one subscriber's copy of a published track: a custom
// webrtc.TrackLocal that owns what the subscriber sees. It rewrites SSRC,
// payload type, sequence numbers, timestamps and VP8 picture ids so that
// layer switches and dropped packets leave no holes the receiver would ask
// for; it answers the subscriber's NACKs from the publisher's packet cache
// (as RTX when negotiated); it forwards keyframe requests; and it keeps the
// subscriber's statistics. Packets go through the subscriber's sendQueue,
// never written from the publisher's read loop.
type downTrack struct {
	id, streamID string
	src          *publishedTrack
	q            *sendQueue
	// live is true once the subscribe connection can carry media: Pion
	// drops what is written before, so nothing is forwarded until then.
	live *atomic.Bool

	// alloc is owned by the subscriber's allocator goroutine.
	alloc allocState

	mu      sync.Mutex
	bound   bool
	writer  webrtc.TrackLocalWriter
	ssrc    uint32
	rtxSSRC uint32 // 0 when the subscriber did not negotiate RTX
	pt      uint8
	rtxPT   uint8
	clock   uint32

	maxW, maxH int // the subscriber's tile, 0 for no limit
	hidden     bool
	// unusable is set when the subscriber negotiated no codec this track
	// can be sent in; nothing is forwarded then.
	unusable bool

	target, current int  // simulcast layers; -1 for none (paused)
	waitKey         bool // drop until a keyframe of target
	started         bool
	continues       bool   // audio: continue lastSeq and lastTS at the next packet
	retired         bool   // a viewer's slot moved on: what is queued still goes out
	firstSeq        uint16 // the current mapping starts here; older packets are dropped
	seqOff          uint16
	seqs            seqMap // where seqOff starts, and earlier offsets (video)
	tsOff           uint32
	picOff          uint16
	tl0Off          uint8
	lastSeq         uint16
	lastTS          uint32
	lastPic         uint16
	lastTL0         uint8
	lastAt          time.Time
	rtxSeq          uint16
	hist            []histEntry
	scratch         []byte // a cached packet being retransmitted

	stats downStats
}

// downStats are a down track's counters, read without its lock.
type downStats struct {
	packets, bytes, retransmits, dropped, nacked atomic.Uint64
	keyframeRequests                             atomic.Uint64
	probes, padding                              atomic.Uint64 // probes carried, and their padding bytes
	fractionLost                                 atomic.Uint32 // of 256, from the last receiver report
	jitter                                       atomic.Uint32 // in clock units
	rtt                                          atomic.Int64  // nanoseconds, 0 if unknown
	rate                                         rateMeter     // of bytes
}

var _ webrtc.TrackLocal = (*downTrack)(nil)

func newDownTrack(src *publishedTrack, q *sendQueue, live *atomic.Bool) *downTrack {
	d := &downTrack{id: src.id, streamID: src.owner.id, src: src, q: q, live: live, target: 0, current: -1, waitKey: true}
	if src.kind == webrtc.RTPCodecTypeVideo {
		d.hist = make([]histEntry, histLen)
	}
	return d
}

// ID implements webrtc.TrackLocal: the published track's id.
func (d *downTrack) ID() string { return d.id }

// RID implements webrtc.TrackLocal; a subscriber gets one layer, no rid.
func (d *downTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal: the publishing participant's id.
func (d *downTrack) StreamID() string { return d.streamID }

// Kind implements webrtc.TrackLocal.
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.src.kind }

// Bind implements webrtc.TrackLocal: it takes the payload types and SSRCs
// the subscriber negotiated and asks the publisher for a keyframe, so that
// a newcomer's video starts at once.
func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, found := pickCodec(ctx.CodecParameters(), d.src.codec)
	if !found {
		// The subscriber cannot decode this track (an H.264 camera, a
		// receiver without H.264). Failing here would fail its whole
		// negotiation: bind to what it took, forward nothing, and let the
		// participant withdraw the track after the answer.
		for _, c := range ctx.CodecParameters() {
			if !strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
				codec, found = c, true
				break
			}
		}
		if !found {
			return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
		}
		d.mu.Lock()
		d.unusable = true
		d.mu.Unlock()
		return codec, nil
	}
	var rtxPT uint8
	apt := "apt=" + strconv.Itoa(int(codec.PayloadType))
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && strings.Contains(c.SDPFmtpLine, apt) {
			rtxPT = uint8(c.PayloadType)
		}
	}
	d.mu.Lock()
	d.bound, d.unusable = true, false
	d.writer = ctx.WriteStream()
	d.ssrc = uint32(ctx.SSRC())
	d.pt = uint8(codec.PayloadType)
	d.clock = codec.ClockRate
	if d.clock == 0 {
		d.clock = 90000
	}
	d.rtxSSRC, d.rtxPT = 0, 0
	if rtxPT != 0 && ctx.SSRCRetransmission() != 0 {
		d.rtxSSRC, d.rtxPT = uint32(ctx.SSRCRetransmission()), rtxPT
	}
	d.waitKey = true
	layer := d.target
	d.mu.Unlock()
	if d.src.kind == webrtc.RTPCodecTypeVideo && layer >= 0 && d.live.Load() {
		d.src.requestKeyframe(layer)
	}
	return codec, nil
}

// pickCodec finds src among the codecs a subscriber negotiated: the same
// codec with the same fmtp line (an H.264 profile) if there is one, else the
// first of the same codec. H.264 decoders take any profile they support
// whatever the payload type says, and the publisher's profile cannot be
// changed here.
func pickCodec(negotiated []webrtc.RTPCodecParameters, src webrtc.RTPCodecCapability) (webrtc.RTPCodecParameters, bool) {
	var first webrtc.RTPCodecParameters
	found := false
	for _, c := range negotiated {
		if !strings.EqualFold(c.MimeType, src.MimeType) {
			continue
		}
		if c.SDPFmtpLine == src.SDPFmtpLine {
			return c, true
		}
		if !found {
			first, found = c, true
		}
	}
	return first, found
}

// usable reports whether the subscriber negotiated a codec for the track.
func (d *downTrack) usable() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.unusable
}

// Unbind implements webrtc.TrackLocal: the subscriber stopped receiving.
func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.bound = false
	if !d.retired {
		d.writer = nil
	}
	d.mu.Unlock()
	return nil
}

// forward rewrites one packet of layer l for this subscriber and queues it.
// It returns a layer whose keyframe the down track waits for, or -1. It
// runs on the publisher's read loop: it never blocks.
func (d *downTrack) forward(l int, h *rtp.Header, payload []byte, info *vp8Info, now time.Time) int {
	if !d.live.Load() {
		return -1
	}
	d.mu.Lock()
	if !d.bound || d.unusable {
		d.mu.Unlock()
		return -1
	}
	if d.hist == nil {
		d.forwardAudio(h, payload, now)
		d.mu.Unlock()
		return -1
	}
	switch {
	case l == d.target && (d.current != d.target || d.waitKey):
		if !info.keyframe {
			d.mu.Unlock()
			return l
		}
		d.switchTo(l, h, info, now)
	case l == d.current && !d.waitKey:
	default:
		d.mu.Unlock()
		return -1
	}
	if int16(h.SequenceNumber-d.firstSeq) < 0 {
		d.mu.Unlock()
		return -1 // from before the current mapping
	}
	off, ok := d.seqs.offset(h.SequenceNumber, d.seqOff)
	if !ok {
		d.mu.Unlock()
		return -1 // older than the offsets remembered
	}
	d.trail(d.seqs.top)
	slot := d.q.reserve(false)
	if slot == nil {
		// The subscriber is not keeping up: drop, and resume cleanly at
		// the next keyframe rather than send a broken picture.
		d.waitKey = true
		d.stats.dropped.Add(1)
		d.mu.Unlock()
		return l
	}
	outSeq := h.SequenceNumber - off
	outTS := h.Timestamp - d.tsOff
	d.fill(slot, d.ssrc, d.pt, outSeq, outTS, h.Marker, payload, 0, info, d.picOff, d.tl0Off)
	d.q.commit()
	e := &d.hist[outSeq%histLen]
	*e = histEntry{valid: true, seq: outSeq, src: h.SequenceNumber, layer: int8(l), tsOff: d.tsOff, picOff: d.picOff, tl0Off: d.tl0Off}
	if int16(outSeq-d.lastSeq) > 0 {
		d.lastSeq, d.lastTS, d.lastAt = outSeq, outTS, now
		if info.picIDOff >= 0 {
			d.lastPic = (info.picID - d.picOff) & info.picMask()
			d.lastTL0 = info.tl0 - d.tl0Off
		}
	}
	d.mu.Unlock()
	return -1
}

// switchTo starts sending layer l from its keyframe h, continuing the
// subscriber's sequence numbers, timestamps and picture ids where the last
// packet sent left them. d.mu is held.
func (d *downTrack) switchTo(l int, h *rtp.Header, info *vp8Info, now time.Time) {
	if !d.started {
		// The subscriber's numbering starts where the publisher's is.
		d.started = true
		d.seqOff, d.tsOff, d.picOff, d.tl0Off = 0, 0, 0, 0
		d.lastSeq, d.lastTS, d.lastAt = h.SequenceNumber-1, h.Timestamp, now
	} else {
		d.seqOff = h.SequenceNumber - (d.lastSeq + 1)
		if l != d.current {
			ticks := uint32(now.Sub(d.lastAt).Seconds() * float64(d.clock))
			d.tsOff = h.Timestamp - (d.lastTS + max(ticks, 1))
			if info.picIDOff >= 0 {
				d.picOff = info.picID - (d.lastPic + 1)
				d.tl0Off = info.tl0 - (d.lastTL0 + 1)
			}
		}
	}
	d.current, d.waitKey, d.firstSeq = l, false, h.SequenceNumber
	d.seqs.reset(h.SequenceNumber)
}

// forwardAudio queues an audio packet. Audio is never dropped by congestion
// logic; only a queue that is full because the subscriber stopped draining
// loses packets, and then without leaving a hole. d.mu is held.
func (d *downTrack) forwardAudio(h *rtp.Header, payload []byte, now time.Time) {
	if !d.started {
		d.started = true
		d.firstSeq = h.SequenceNumber
		d.lastSeq = h.SequenceNumber - 1
	} else if d.continues {
		// Continue the numbering of the source this one replaces.
		d.continues = false
		ticks := uint32(now.Sub(d.lastAt).Seconds() * float64(d.clock))
		d.seqOff = h.SequenceNumber - (d.lastSeq + 1)
		d.tsOff = h.Timestamp - (d.lastTS + max(ticks, 1))
		d.firstSeq = h.SequenceNumber
	}
	if int16(h.SequenceNumber-d.firstSeq) < 0 {
		return
	}
	slot := d.q.reserve(true)
	if slot == nil {
		d.stats.dropped.Add(1)
		d.seqOff++
		d.firstSeq = h.SequenceNumber + 1
		return
	}
	outSeq, outTS := h.SequenceNumber-d.seqOff, h.Timestamp-d.tsOff
	d.fill(slot, d.ssrc, d.pt, outSeq, outTS, h.Marker, payload, 0, nil, 0, 0)
	d.q.commit()
	if int16(outSeq-d.lastSeq) > 0 {
		d.lastSeq, d.lastTS, d.lastAt = outSeq, outTS, now
	}
	d.trail(h.SequenceNumber)
}

// maxLate is how far behind the newest packet forwarded a late one (a
// reordered packet, or the publisher's retransmission) may still be
// forwarded: far more than such a packet lags, and far less than half the
// sequence space, so that comparing sequence numbers with firstSeq and the
// offset ranges, which is done modulo 2^16, never wraps however long a
// stream runs.
const maxLate = 1 << 12

// trail moves the start of the current mapping up behind newest, the
// publisher's newest sequence number forwarded, so that it stays within
// maxLate of it. Without it a mapping that began 32,768 packets ago would
// look newer than every packet (about eleven minutes of audio) and all of
// them would be dropped. d.mu is held.
func (d *downTrack) trail(newest uint16) {
	if int16(newest-d.firstSeq) <= maxLate {
		return
	}
	d.firstSeq = newest - maxLate
	d.seqs.trail(d.firstSeq)
}

// fill writes a rewritten packet into a queue slot; osn > 0 prefixes the
// payload with an RTX original sequence number (osn-1).
func (d *downTrack) fill(p *outPacket, ssrc uint32, pt uint8, seq uint16, ts uint32, marker bool, payload []byte, osn int, info *vp8Info, picOff uint16, tl0Off uint8) {
	ext := p.hdr.Extensions[:0]
	p.hdr = rtp.Header{Version: 2, Marker: marker, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc, Extensions: ext}
	p.dt = d
	off := 0
	if osn > 0 {
		off = 2
	}
	buf := p.sized(off + len(payload))
	if osn > 0 {
		binary.BigEndian.PutUint16(buf, uint16(osn-1))
	}
	copy(buf[off:], payload)
	if info != nil && info.picIDOff >= 0 && (picOff != 0 || tl0Off != 0) {
		info.rewrite(buf[off:], (info.picID-picOff)&info.picMask(), info.tl0-tl0Off)
	}
}

// write sends one queued packet; it runs on the queue's writer goroutine.
func (d *downTrack) write(p *outPacket) {
	d.mu.Lock()
	w := d.writer
	d.mu.Unlock()
	if w == nil {
		return
	}
	probe := p.hdr.Padding
	if _, err := w.WriteRTP(&p.hdr, p.payload()); err != nil {
		d.stats.dropped.Add(1)
		return
	}
	if probe {
		d.stats.padding.Add(uint64(len(p.buf) + 12))
		return
	}
	d.stats.packets.Add(1)
	d.stats.bytes.Add(uint64(len(p.buf) + 12))
}

// retransmit answers a NACK for out sequence number seq from the cache,
// as RTX if the subscriber negotiated it.
func (d *downTrack) retransmit(seq uint16, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hist == nil || !d.bound {
		return
	}
	e := &d.hist[seq%histLen]
	if !e.valid || e.seq != seq {
		d.stats.nacked.Add(1)
		return
	}
	gap := max(int64(resendGap), d.stats.rtt.Load()*3/4)
	if e.resends >= maxResends || now.UnixNano()-e.lastResend < gap {
		return
	}
	l := d.src.layerAt(int(e.layer))
	if l == nil || l.cache == nil {
		return
	}
	d.scratch = l.cache.get(e.src, d.scratch[:0])
	n := len(d.scratch)
	if n == 0 {
		d.stats.nacked.Add(1)
		return
	}
	var h rtp.Header
	hl, err := h.Unmarshal(d.scratch)
	if err != nil {
		return
	}
	end := n
	if h.Padding {
		end -= int(d.scratch[n-1])
	}
	if end <= hl {
		return
	}
	payload := d.scratch[hl:end]
	var ip *vp8Info
	if d.src.vp8 {
		if info, ok := parseVP8(payload); ok {
			ip = &info
		}
	}
	slot := d.q.reserve(false)
	if slot == nil {
		return
	}
	e.resends++
	e.lastResend = now.UnixNano()
	ts := h.Timestamp - e.tsOff
	if d.rtxSSRC != 0 {
		d.fill(slot, d.rtxSSRC, d.rtxPT, d.rtxSeq, ts, h.Marker, payload, int(seq)+1, ip, e.picOff, e.tl0Off)
		d.rtxSeq++
	} else {
		d.fill(slot, d.ssrc, d.pt, seq, ts, h.Marker, payload, 0, ip, e.picOff, e.tl0Off)
	}
	d.q.commit()
	d.stats.retransmits.Add(1)
}

// canPad reports whether probe padding can be sent on this track: on its
// RTX stream, or, without RTX, on its media stream while it is paused
// (the sequence numbers the padding takes are then continued from when
// the video resumes).
func (d *downTrack) canPad() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bound && !d.unusable && d.hist != nil && (d.rtxSSRC != 0 || d.current < 0 && d.started)
}

// pad queues one padding-only packet of size bytes, unless media is
// waiting in the send queue or the track cannot carry padding. The packet
// leaves marked padded with its padding as payload, for the estimator to
// count; paddingWriter turns it into a padding-only packet.
func (d *downTrack) pad(size int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.bound || d.unusable || d.hist == nil || d.q.videoQueued() > probeQueued {
		return false
	}
	ssrc, pt, seq := d.rtxSSRC, d.rtxPT, d.rtxSeq
	media := ssrc == 0
	if media {
		if d.current >= 0 || !d.started {
			return false
		}
		ssrc, pt, seq = d.ssrc, d.pt, d.lastSeq+1
	}
	slot := d.q.reserve(false)
	if slot == nil {
		return false
	}
	ext := slot.hdr.Extensions[:0]
	slot.hdr = rtp.Header{Version: 2, Padding: true, PayloadType: pt, SequenceNumber: seq, Timestamp: d.lastTS, SSRC: ssrc, Extensions: ext}
	slot.dt = d
	clear(slot.sized(size))
	d.q.commit()
	if media {
		d.lastSeq = seq
		d.hist[seq%histLen].valid = false
	} else {
		d.rtxSeq++
	}
	return true
}

// setTarget selects the layer the subscriber should get, -1 to pause. The
// switch itself waits for a keyframe of the new layer, which is requested;
// meanwhile the old layer keeps flowing.
func (d *downTrack) setTarget(l int) {
	d.mu.Lock()
	if l == d.target {
		d.mu.Unlock()
		return
	}
	d.target = l
	if l < 0 {
		d.current, d.waitKey = -1, true
	}
	ask := l >= 0 && l != d.current && d.bound
	d.mu.Unlock()
	if ask {
		d.src.requestKeyframe(l)
	}
}

// requestKeyframe asks the publisher for a keyframe of the layer this
// subscriber gets or waits for (throttled per layer).
func (d *downTrack) requestKeyframe() {
	t, c := d.layers()
	if c < 0 {
		c = t
	}
	if c >= 0 {
		d.src.requestKeyframe(c)
	}
}

// layers returns the target and current layers.
func (d *downTrack) layers() (target, current int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.target, d.current
}

// setTile records the size the subscriber draws the video at; 0 by 0 means
// the video is not shown.
func (d *downTrack) setTile(w, h int) {
	d.mu.Lock()
	d.maxW, d.maxH, d.hidden = w, h, w == 0 && h == 0
	d.mu.Unlock()
}

func (d *downTrack) tile() (w, h int, hidden bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.maxW, d.maxH, d.hidden
}

// readRTCP reads the subscriber's RTCP for this track until the sender
// stops: keyframe requests go to the publisher (throttled), NACKs are
// answered from the cache, and receiver reports feed the statistics.
// Reading also drives the interceptors (reports, congestion control).
func (d *downTrack) readRTCP(sender *webrtc.RTPSender) {
	readRTCP(sender, func(pkts []rtcp.Packet) { d.handleRTCP(pkts, time.Now()) })
}

// rtcpSource is where RTCP arrives: a sender's Read.
type rtcpSource interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

// readRTCP hands each RTCP compound packet read from src to handle until
// src fails. It reads into one buffer of maxDatagram bytes for good: the
// sender's ReadRTCP allocates a buffer of that size for every packet. A
// packet that does not parse is skipped.
func readRTCP(src rtcpSource, handle func([]rtcp.Packet)) {
	buf := make([]byte, maxDatagram)
	for {
		n, _, err := src.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			continue
		}
		handle(pkts)
	}
}

// handleRTCP acts on RTCP packets the subscriber sent about this track.
func (d *downTrack) handleRTCP(pkts []rtcp.Packet, now time.Time) {
	for _, pkt := range pkts {
		switch p := pkt.(type) {
		case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
			d.stats.keyframeRequests.Add(1)
			d.requestKeyframe()
		case *rtcp.TransportLayerNack:
			d.mu.Lock()
			mine := p.MediaSSRC == d.ssrc
			d.mu.Unlock()
			if !mine {
				continue
			}
			for i := range p.Nacks {
				p.Nacks[i].Range(func(seq uint16) bool {
					d.retransmit(seq, now)
					return true
				})
			}
		case *rtcp.ReceiverReport:
			d.report(p.Reports, now)
		case *rtcp.SenderReport:
			d.report(p.Reports, now)
		}
	}
}

// report takes loss, jitter and round-trip time from reception reports
// about this track.
func (d *downTrack) report(rs []rtcp.ReceptionReport, now time.Time) {
	d.mu.Lock()
	ssrc, clock := d.ssrc, d.clock
	d.mu.Unlock()
	for _, r := range rs {
		if r.SSRC != ssrc {
			continue
		}
		d.stats.fractionLost.Store(uint32(r.FractionLost))
		// The receiver says what it likes: beyond maxReported the value is
		// no measurement, and would set the node-wide maximum alone.
		if clock != 0 && uint64(r.Jitter) <= uint64(clock)*uint64(maxReported/time.Second) {
			d.stats.jitter.Store(r.Jitter)
		}
		if r.LastSenderReport != 0 {
			// Compact NTP: the middle 32 bits of a 64-bit NTP time.
			ntp := toNTP(now)
			mid := uint32(ntp >> 16)
			if rtt := mid - r.LastSenderReport - r.Delay; int32(rtt) > 0 {
				if v := time.Duration(float64(rtt) / 65536 * float64(time.Second)); v <= maxReported {
					d.stats.rtt.Store(int64(v))
				}
			}
		}
	}
}

// maxReported bounds the jitter and round-trip time a reception report
// may claim.
const maxReported = 10 * time.Second

// toNTP converts t to a 64-bit NTP timestamp.
func toNTP(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}
