package media

import (
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TrackInfo describes a track offered to a subscriber: the id of its local
// track (also the track id in the offer's a=msid, whose stream id is the
// publishing participant's id), its kind, who publishes it and, for a
// screen share, its source.
type TrackInfo struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"` // "audio" or "video"
	Participant string `json:"participant"`
	Name        string `json:"name"`
	Source      string `json:"source,omitempty"` // SourceScreen, or "" for a camera or microphone
}

// SourceScreen marks a track that shares the publisher's screen.
const SourceScreen = "screen"

// maxLayers is how many simulcast layers a published video track may have.
const maxLayers = 3

// layerIndex maps a simulcast rid to a layer, lowest first: the browser
// publishes q (quarter), h (half) and f (full resolution). A track without
// simulcast has one layer, 0.
func layerIndex(rid string) (int, bool) {
	switch rid {
	case "", "q":
		return 0, true
	case "h":
		return 1, true
	case "f":
		return 2, true
	}
	return 0, false
}

// layer is one RTP stream of a published track: the whole track without
// simulcast, or one of its simulcast encodings.
type layer struct {
	idx    int
	rid    string
	remote *webrtc.TrackRemote // nil in tests that feed packets by hand
	ssrc   uint32
	cache  *packetCache // video only
	pli    throttle

	packets, bytes atomic.Uint64
	lastAt         atomic.Int64 // unix nanoseconds of the last packet
	width, height  atomic.Uint32

	rateMu    sync.Mutex
	rateAt    time.Time
	rateBytes uint64
	bps       float64

	// recv and meter are the layer's reception figures for statistics.
	recv  recvStats
	meter rateMeter
}

// layerActiveFor is how long a layer may be silent before it is taken as
// stopped (a browser drops its high layers when its uplink is weak).
const layerActiveFor = 1500 * time.Millisecond

// active reports whether the layer has sent a packet lately.
func (l *layer) active(now time.Time) bool {
	at := l.lastAt.Load()
	return at != 0 && now.UnixNano()-at < int64(layerActiveFor)
}

// rate returns the layer's bitrate in bits per second, smoothed over about
// a second.
func (l *layer) rate(now time.Time) float64 {
	l.rateMu.Lock()
	defer l.rateMu.Unlock()
	b := l.bytes.Load()
	if l.rateAt.IsZero() {
		l.rateAt, l.rateBytes = now, b
		return 0
	}
	dt := now.Sub(l.rateAt).Seconds()
	if dt < 0.25 {
		return l.bps
	}
	cur := float64(b-l.rateBytes) * 8 / dt
	if l.bps == 0 {
		l.bps = cur
	} else {
		l.bps = 0.5*l.bps + 0.5*cur
	}
	l.rateAt, l.rateBytes = now, b
	return l.bps
}

// publishedTrack is one track a participant publishes, with its layers,
// and the down tracks that forward it to each subscriber.
type publishedTrack struct {
	owner *Participant
	id    string
	kind  webrtc.RTPCodecType
	codec webrtc.RTPCodecCapability
	// vp8 and h264 say how keyframes are found: VP8 payloads are also
	// rewritten (picture ids), H.264 ones are forwarded as they are.
	vp8, h264 bool
	// source is SourceScreen for a screen share, else "".
	source string
	// receiver is the publisher's receiver of the track's layers.
	receiver *webrtc.RTPReceiver

	// levelExt is the id of the audio level header extension (RFC 6464)
	// the publisher negotiated, 0 if none; level gathers the levels read
	// from it for the room's speaker detection.
	levelExt uint8
	level    audioLevel

	// downs is read on every packet without a lock; it is replaced whole.
	downs atomic.Pointer[[]*downTrack]

	mu      sync.Mutex
	layers  [maxLayers]*layer
	readers int // layers still being read

	keyframes chan int      // layers to ask a keyframe of
	done      chan struct{} // closed when the last layer ends
}

func newPublishedTrack(owner *Participant, id string, kind webrtc.RTPCodecType, codec webrtc.RTPCodecCapability) *publishedTrack {
	t := &publishedTrack{
		owner: owner, id: id, kind: kind, codec: codec,
		vp8:       kind == webrtc.RTPCodecTypeVideo && strings.EqualFold(codec.MimeType, webrtc.MimeTypeVP8),
		h264:      kind == webrtc.RTPCodecTypeVideo && strings.EqualFold(codec.MimeType, webrtc.MimeTypeH264),
		keyframes: make(chan int, maxLayers),
		done:      make(chan struct{}),
	}
	t.downs.Store(&[]*downTrack{})
	return t
}

func (t *publishedTrack) info() TrackInfo {
	return TrackInfo{ID: t.id, Kind: t.kind.String(), Participant: t.owner.id, Name: t.owner.name, Source: t.source}
}

// addLayer adds a layer; it reports false if the layer is already there.
func (t *publishedTrack) addLayer(idx int, rid string, remote *webrtc.TrackRemote) *layer {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.layers[idx] != nil {
		return nil
	}
	l := &layer{idx: idx, rid: rid, remote: remote}
	if remote != nil {
		l.ssrc = uint32(remote.SSRC())
	}
	if t.kind == webrtc.RTPCodecTypeVideo {
		l.cache = &packetCache{}
	}
	t.layers[idx] = l
	t.readers++
	return l
}

func (t *publishedTrack) layerAt(i int) *layer {
	if i < 0 || i >= maxLayers {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.layers[i]
}

// activeLayers lists the layers that are sending, lowest first.
func (t *publishedTrack) activeLayers(now time.Time, out []*layer) []*layer {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.layers {
		if l != nil && l.active(now) {
			out = append(out, l)
		}
	}
	return out
}

// addDown starts forwarding to d.
func (t *publishedTrack) addDown(d *downTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.downs.Load()
	next := append(slices.Clip(old), d)
	t.downs.Store(&next)
}

// removeDown stops forwarding to d.
func (t *publishedTrack) removeDown(d *downTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.downs.Load()
	next := make([]*downTrack, 0, len(old))
	for _, o := range old {
		if o != d {
			next = append(next, o)
		}
	}
	t.downs.Store(&next)
}

// read forwards one layer's packets until the publisher's track ends; the
// track is withdrawn when its last layer ends.
func (t *publishedTrack) read(l *layer) {
	defer t.layerEnded()
	buf := make([]byte, maxDatagram)
	var h rtp.Header
	for {
		n, _, err := l.remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.owner.log.Debug("published track ended", "track", t.id, "rid", l.rid, "err", err)
			}
			return
		}
		t.handle(l, buf[:n], &h, time.Now())
	}
}

// handle caches one packet of layer l and hands it to every down track.
// h is scratch space, reused across packets.
func (t *publishedTrack) handle(l *layer, pkt []byte, h *rtp.Header, now time.Time) {
	hl, err := h.Unmarshal(pkt)
	if err != nil {
		return
	}
	// Padding counts too: it has its place in the sequence.
	l.recv.update(h.SequenceNumber, h.Timestamp, now, t.codec.ClockRate)
	end := len(pkt)
	if h.Padding {
		pad := int(pkt[end-1])
		if pad == 0 || hl+pad > end {
			return
		}
		end -= pad
	}
	payload := pkt[hl:end]
	if len(payload) == 0 {
		// Padding only (bandwidth probing): nothing to forward, but each
		// subscriber's numbering must close over it, or the hole reads as
		// loss and draws NACKs for a packet that never was.
		t.skip(l, h.SequenceNumber)
		return
	}
	l.packets.Add(1)
	l.bytes.Add(uint64(len(pkt)))
	l.lastAt.Store(now.UnixNano())
	if t.levelExt != 0 {
		if ext := h.GetExtension(t.levelExt); len(ext) > 0 {
			t.level.add(ext[0])
		}
	}
	var info vp8Info
	if t.vp8 {
		var ok bool
		if info, ok = parseVP8(payload); !ok {
			t.skip(l, h.SequenceNumber)
			return
		}
		if info.keyframe && info.width > 0 {
			l.width.Store(uint32(info.width))
			l.height.Store(uint32(info.height))
		}
	} else if t.h264 {
		// Nothing to rewrite: only where a subscriber may start.
		info = vp8Info{keyframe: h264Keyframe(payload), picIDOff: -1, tl0Off: -1}
	}
	if l.cache != nil {
		l.cache.put(h.SequenceNumber, pkt)
	}
	want := -1
	for _, d := range *t.downs.Load() {
		if k := d.forward(l.idx, h, payload, &info, now); k >= 0 {
			want = k
		}
	}
	if want >= 0 {
		t.requestKeyframe(want)
	}
}

// skip tells every down track that packet seq of layer l is not
// forwarded.
func (t *publishedTrack) skip(l *layer, seq uint16) {
	for _, d := range *t.downs.Load() {
		d.skip(l.idx, seq)
	}
}

// layerEnded counts a layer's end; after the last one the track is
// withdrawn from the room.
func (t *publishedTrack) layerEnded() {
	t.mu.Lock()
	t.readers--
	last := t.readers == 0
	t.mu.Unlock()
	if !last {
		return
	}
	close(t.done)
	t.owner.trackEnded(t)
}

// pliInterval is the shortest time between keyframe requests for one
// layer of a track.
const pliInterval = 500 * time.Millisecond

// requestKeyframe asks the publisher for a keyframe of layer i, at most
// twice a second per layer, without waiting for the network. It reports
// whether a request was queued.
func (t *publishedTrack) requestKeyframe(i int) bool {
	l := t.layerAt(i)
	if t.kind != webrtc.RTPCodecTypeVideo || l == nil || l.remote == nil || !l.pli.allow(time.Now()) {
		return false
	}
	select {
	case t.keyframes <- i:
		return true
	default:
		return false
	}
}

// sendKeyframeRequests writes the queued keyframe requests to the
// publisher until the track ends.
func (t *publishedTrack) sendKeyframeRequests() {
	for {
		select {
		case <-t.done:
			return
		case i := <-t.keyframes:
			l := t.layerAt(i)
			pc := t.owner.publisher()
			if l == nil || pc == nil {
				continue
			}
			if err := pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}}); err != nil {
				continue
			}
			t.owner.log.Debug("keyframe requested", "track", t.id, "rid", l.rid)
		}
	}
}

// throttle lets an event through at most once per pliInterval.
type throttle struct {
	mu   sync.Mutex
	last time.Time
}

func (t *throttle) allow(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < pliInterval {
		return false
	}
	t.last = now
	return true
}

// drainRTCP reads a publisher's RTCP for one layer (sender reports) so that
// the receiver report interceptor sees it.
func drainRTCP(r *webrtc.RTPReceiver, rid string) {
	buf := make([]byte, maxDatagram)
	for {
		var err error
		if rid == "" {
			_, _, err = r.Read(buf)
		} else {
			_, _, err = r.ReadSimulcast(buf, rid)
		}
		if err != nil {
			return
		}
	}
}
