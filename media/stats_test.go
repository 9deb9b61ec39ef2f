package media

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

func TestLevelOf(t *testing.T) {
	tests := []struct {
		loss        float64
		jitter, rtt time.Duration
		want        string
	}{
		{0, 0, 0, LevelGood},
		{0.02, 30 * time.Millisecond, 200 * time.Millisecond, LevelGood},
		{0.03, 0, 0, LevelFair},
		{0, 40 * time.Millisecond, 0, LevelFair},
		{0, 0, 250 * time.Millisecond, LevelFair},
		{0.10, 0, 0, LevelPoor},
		{0, 100 * time.Millisecond, 0, LevelPoor},
		{0.01, 0, 600 * time.Millisecond, LevelPoor},
	}
	for _, tt := range tests {
		if got := LevelOf(tt.loss, tt.jitter, tt.rtt); got != tt.want {
			t.Errorf("LevelOf(%v, %v, %v) = %s, want %s", tt.loss, tt.jitter, tt.rtt, got, tt.want)
		}
	}
	if got := worseLevel(LevelUnknown, LevelGood); got != LevelGood {
		t.Errorf("worse of unknown and good = %s", got)
	}
	if got := worseLevel(LevelPoor, LevelFair); got != LevelPoor {
		t.Errorf("worse of poor and fair = %s", got)
	}
}

// TestRecvStatsCountsLossAcrossWrapAndLateArrivals feeds a layer's
// reception figures packets with every tenth missing, across the sequence
// number wrap, with one late retransmission, and checks the loss of each
// window and that steady pacing reads as no jitter.
func TestRecvStatsCountsLossAcrossWrapAndLateArrivals(t *testing.T) {
	var r recvStats
	start := time.Unix(1000, 0)
	now := start
	seq := uint16(65000)
	ts := uint32(0)
	feed := func(n int, skipEvery int) {
		for i := range n {
			now = now.Add(20 * time.Millisecond)
			ts += 960 // 20 ms at 48 kHz: perfectly paced
			s := seq
			seq++
			if skipEvery > 0 && i%skipEvery == skipEvery-1 {
				continue
			}
			r.update(s, ts, now, 48000)
		}
		r.publish() // as the read loop does every publishEvery packets
	}
	feed(100, 0)
	if got := r.loss(now); got != 0 {
		t.Fatalf("loss with nothing missing = %v", got)
	}
	if j := r.jitter.Load(); j != 0 {
		t.Fatalf("jitter of a perfectly paced stream = %d clock units", j)
	}
	feed(1000, 10) // crosses 65535
	if got := r.loss(now); math.Abs(got-0.1) > 0.002 {
		t.Fatalf("loss with every tenth missing = %.4f, want 0.1", got)
	}
	// A look within the window keeps the figure.
	if got := r.loss(now.Add(rateWindow / 2)); math.Abs(got-0.1) > 0.002 {
		t.Fatalf("loss read again within the window = %.4f", got)
	}
	// A late retransmission of a missing packet counts as received.
	feed(99, 0)
	r.update(seq-50, ts-50*960, now, 48000)
	r.publish()
	now = now.Add(2 * rateWindow)
	if got := r.loss(now); got != 0 {
		t.Fatalf("loss after a clean stretch with a late arrival = %v", got)
	}
	if got := r.expected.Load(); got != 1100+99 {
		t.Fatalf("expected %d packets, want %d", got, 1100+99)
	}
}

func TestRecvStatsJitter(t *testing.T) {
	var r recvStats
	now := time.Unix(1000, 0)
	// Packets every 20 ms of media time arriving alternately 10 ms early
	// and late: each transit differs from the last by 20 ms, so the
	// estimate converges on 20 ms.
	for i := range 500 {
		off := 10 * time.Millisecond
		if i%2 == 0 {
			off = -off
		}
		r.update(uint16(i), uint32(i*960), now.Add(time.Duration(i)*20*time.Millisecond+off), 48000)
	}
	r.publish()
	got := time.Duration(float64(r.jitter.Load()) / 48000 * float64(time.Second))
	if got < 19*time.Millisecond || got > 21*time.Millisecond {
		t.Fatalf("jitter = %v, want about 20ms", got)
	}
}

func TestRateMeter(t *testing.T) {
	var m rateMeter
	now := time.Unix(1000, 0)
	if got := m.rate(now, 0); got != 0 {
		t.Fatalf("first look = %v", got)
	}
	if got := m.rate(now.Add(500*time.Millisecond), 50_000); got != 0 {
		t.Fatalf("within the window = %v, want the last figure (0)", got)
	}
	if got := m.rate(now.Add(2*time.Second), 250_000); got != 1_000_000 {
		t.Fatalf("250 kB over 2 s = %v bit/s, want 1e6", got)
	}
}

// FuzzRecvStats: whatever sequence numbers, timestamps and arrival gaps a
// publisher's packets carry, the reception figures stay sane: at least one
// packet expected, a loss share from 0 to 1, a finite jitter, and a level
// the indicator knows.
func FuzzRecvStats(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 0, 20, 0, 2, 0, 0, 3, 192, 20, 255, 255, 0, 0, 0, 0, 1})
	f.Add([]byte{128, 0, 255, 255, 255, 255, 0, 127, 255, 0, 0, 0, 0, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r recvStats
		now := time.Unix(1000, 0)
		for ; len(b) >= 7; b = b[7:] {
			seq := binary.BigEndian.Uint16(b)
			ts := binary.BigEndian.Uint32(b[2:])
			now = now.Add(time.Duration(b[6]) * time.Millisecond)
			r.update(seq, ts, now, 90000)
		}
		if !r.started {
			return
		}
		r.publish()
		loss := r.loss(now)
		if r.expected.Load() < 1 || loss < 0 || loss > 1 || math.IsNaN(loss) {
			t.Fatalf("expected %d, loss %v", r.expected.Load(), loss)
		}
		jitter := time.Duration(float64(r.jitter.Load()) / 90000 * float64(time.Second))
		if jitter < 0 || jitter > time.Second {
			t.Fatalf("jitter %v", jitter)
		}
		if l := LevelOf(loss, jitter, 0); l != LevelGood && l != LevelFair && l != LevelPoor {
			t.Fatalf("level %q", l)
		}
	})
}

// TestDownTrackDiscardsImplausibleReports: a receiver claiming a minute of
// jitter or round trip sets nothing (one such client would otherwise set
// the node-wide maximum); plausible values are kept.
func TestDownTrackDiscardsImplausibleReports(t *testing.T) {
	s := newSFU(t)
	b, _ := join(t, s, 1, "b")
	d := bound(t, fakeTrack(t, b, webrtc.RTPCodecTypeVideo), newCapture(false), false)
	now := time.Now()
	mid := uint32(toNTP(now) >> 16)
	report := func(jitter uint32, rtt time.Duration) TrackStats {
		d.report([]rtcp.ReceptionReport{{SSRC: 1111, Jitter: jitter,
			LastSenderReport: mid - uint32(rtt.Seconds()*65536)}}, now)
		return d.trackStats(now)
	}
	if st := report(90000/100, 100*time.Millisecond); st.Jitter != 10*time.Millisecond || st.RTT < 99*time.Millisecond || st.RTT > 101*time.Millisecond {
		t.Fatalf("plausible report: jitter %v, RTT %v; want 10ms, 100ms", st.Jitter, st.RTT)
	}
	if st := report(90000*60, time.Minute); st.Jitter != 10*time.Millisecond || st.RTT > 101*time.Millisecond {
		t.Errorf("after a report of a minute's jitter and RTT: jitter %v, RTT %v; want the last plausible 10ms, 100ms", st.Jitter, st.RTT)
	}
}
