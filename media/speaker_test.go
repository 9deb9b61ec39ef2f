package media

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// phase is a stretch of looks with the same levels (dBov; math.Inf(-1)
// for a participant who sends nothing).
type phase struct {
	looks  int
	levels map[string]float64
	want   string // the speaker at the end of the phase
	// switchAt is the look of the phase (from 1) at which the speaker
	// changed to want, 0 if it did not change during the phase.
	switchAt int
}

func TestSpeakerDetectorHysteresis(t *testing.T) {
	silent := math.Inf(-1)
	tests := []struct {
		name   string
		phases []phase
	}{
		{"nobody speaks", []phase{
			{looks: 30, levels: map[string]float64{"a": silent, "b": -70}, want: ""},
		}},
		{"a first speaker is picked once loud enough for the hold", []phase{
			// From silence (-80 dBov) the window mean crosses -55 dBov at
			// the 5th look of -30, and leads from there for 8 looks.
			{looks: 30, levels: map[string]float64{"a": -30, "b": -70}, want: "a", switchAt: 12},
		}},
		{"a cough does not take over", []phase{
			{looks: 30, levels: map[string]float64{"a": -35, "b": -70}, want: "a", switchAt: 13},
			{looks: 3, levels: map[string]float64{"a": -35, "b": -10}, want: "a"},
			{looks: 20, levels: map[string]float64{"a": -35, "b": -70}, want: "a"},
		}},
		{"a clearly louder speaker takes over after about a second", []phase{
			{looks: 30, levels: map[string]float64{"a": -40, "b": -70}, want: "a", switchAt: 14},
			// b at -20 against a at -40: b's mean (from -70) passes a's
			// plus 6 dB at b's 8th look, and b must then lead 8 looks.
			{looks: 30, levels: map[string]float64{"a": -40, "b": -20}, want: "b", switchAt: 15},
		}},
		{"talking over at nearly the same level keeps the speaker", []phase{
			{looks: 30, levels: map[string]float64{"a": -30, "b": -70}, want: "a", switchAt: 12},
			{looks: 50, levels: map[string]float64{"a": -30, "b": -27}, want: "a"},
		}},
		{"when the speaker falls silent the next one takes over without the margin", []phase{
			{looks: 30, levels: map[string]float64{"a": -30, "b": -70}, want: "a", switchAt: 12},
			// At the 6th look a's mean is below the floor and b's on it.
			{looks: 30, levels: map[string]float64{"a": silent, "b": -45}, want: "b", switchAt: 13},
		}},
		{"the speaker leaving clears it", []phase{
			{looks: 30, levels: map[string]float64{"a": -30, "b": -70}, want: "a", switchAt: 12},
			{looks: 1, levels: map[string]float64{"b": -70}, want: ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newSpeakerDetector()
			for pi, ph := range tt.phases {
				got, switched := "", 0
				for i := 1; i <= ph.looks; i++ {
					who, changed := d.look(ph.levels)
					if changed {
						if switched != 0 {
							t.Fatalf("phase %d: a second change at look %d (to %q)", pi, i, who)
						}
						switched = i
					}
					got = who
				}
				if got != ph.want || switched != ph.switchAt {
					t.Fatalf("phase %d: speaker %q (changed at look %d), want %q (at look %d)", pi, got, switched, ph.want, ph.switchAt)
				}
			}
		})
	}
}

func TestAudioLevelMean(t *testing.T) {
	var a audioLevel
	if _, ok := a.take(); ok {
		t.Fatal("a level without packets")
	}
	for _, l := range []uint8{20, 40, 0x80 | 30} { // the V bit is not part of the level
		a.add(l)
	}
	if db, ok := a.take(); !ok || db != -30 {
		t.Fatalf("mean level %v %v, want -30", db, ok)
	}
	if _, ok := a.take(); ok {
		t.Fatal("take did not start afresh")
	}
}

// BenchmarkReadAudioLevel measures reading one packet's audio level from
// its parsed header, the whole of what speaker detection adds per packet.
func BenchmarkReadAudioLevel(b *testing.B) {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: ptOpus, SSRC: 5}, Payload: make([]byte, 120)}
	_ = pkt.Header.SetExtension(1, []byte{0x80 | 35})
	raw, _ := pkt.Marshal()
	var h rtp.Header
	if _, err := h.Unmarshal(raw); err != nil {
		b.Fatal(err)
	}
	src := &publishedTrack{levelExt: 1}
	b.ReportAllocs()
	for b.Loop() {
		if ext := h.GetExtension(src.levelExt); len(ext) > 0 {
			src.level.add(ext[0])
		}
	}
}

// BenchmarkAudioLevel compares the read loop's work for one Opus packet
// forwarded to one subscriber with and without reading the audio level
// extension, to show that reading it costs next to nothing.
func BenchmarkAudioLevel(b *testing.B) {
	for _, withLevel := range []bool{false, true} {
		b.Run(fmt.Sprintf("level=%v", withLevel), func(b *testing.B) {
			s, err := New(Config{AllowLoopback: true}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			p, err := s.Join(1, "pub", "Publisher", &clientSignaler{tb: b})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			src := newPublishedTrack(p, "audio", webrtc.RTPCodecTypeAudio, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
			l := src.addLayer(0, "", nil)
			live := &atomic.Bool{}
			live.Store(true)
			q := newSendQueue()
			defer q.close()
			d := newDownTrack(src, q, live)
			if _, err := d.Bind(&bindCtx{w: discardWriter{}}); err != nil {
				b.Fatal(err)
			}
			src.addDown(d)
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: ptOpus, SSRC: 5}, Payload: make([]byte, 120)}
			// Both variants carry the extension, as browsers send it; only
			// one reads it.
			if err := pkt.Header.SetExtension(1, []byte{0x80 | 35}); err != nil {
				b.Fatal(err)
			}
			if withLevel {
				src.levelExt = 1
			}
			raw, err := pkt.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			var h rtp.Header
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				binary.BigEndian.PutUint16(raw[2:4], uint16(i))
				binary.BigEndian.PutUint32(raw[4:8], uint32(i)*960)
				src.handle(l, raw, &h, now)
				if i%64 == 63 {
					src.level.take() // as the detector does, ten times a second
				}
			}
		})
	}
}
