package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"github.com/bedside-health/bedside/cluster"
	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/store/sqlite"
	"github.com/bedside-health/bedside/web"
)

func TestStampRoundTrip(t *testing.T) {
	sent := time.Unix(1_800_000_000, 123_456_789)
	b := make([]byte, 40)
	putStamp(b, stamp{stream: 7, counter: 1 << 20, sent: sent})
	s, err := parseStamp(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.stream != 7 || s.counter != 1<<20 || !s.sent.Equal(sent) {
		t.Errorf("parseStamp = %+v, want stream 7, counter %d, sent %v", s, 1<<20, sent)
	}
	if _, err := parseStamp(b[:stampLen-1]); err == nil {
		t.Error("a short stamp parsed")
	}
	if _, err := parseStamp(make([]byte, stampLen)); err == nil {
		t.Error("a stamp without a send time parsed")
	}
}

func TestVP8BodyFollowsHeaders(t *testing.T) {
	for _, c := range []struct {
		name            string
		first, keyframe bool
		head            int
	}{
		{"keyframe start", true, true, vp8DescLen + vp8KeyHead},
		{"inter frame start", true, false, vp8DescLen + vp8InterHead},
		{"continuation", false, false, vp8DescLen},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := make([]byte, 64)
			h := vp8Head(b, 0x1234, c.first, c.keyframe)
			if h != c.head {
				t.Fatalf("head %d bytes, want %d", h, c.head)
			}
			putStamp(b[h:], stamp{stream: 3, counter: 9, sent: time.Now()})
			body, err := vp8Body(b)
			if err != nil {
				t.Fatal(err)
			}
			s, err := parseStamp(body)
			if err != nil || s.stream != 3 || s.counter != 9 {
				t.Errorf("stamp after the headers: %+v, %v", s, err)
			}
		})
	}
	// A 7-bit picture id and TL0PICIDX, as another sender might write.
	b := []byte{0x90, 0xc0, 0x05, 0x11, 0x11, 0x02, 0x00, 0xaa}
	if body, err := vp8Body(b); err != nil || len(body) != 1 || body[0] != 0xaa {
		t.Errorf("vp8Body(%x) = %x, %v; want aa", b, body, err)
	}
	for _, cut := range [][]byte{nil, {0x80}, {0x80, 0x80}, {0x90, 0x80, 0x81, 0x00, 0x10}} {
		if _, err := vp8Body(cut); err == nil {
			t.Errorf("vp8Body(%x) accepted a cut payload", cut)
		}
	}
}

func TestStreamTallyWindow(t *testing.T) {
	var ty streamTally
	ms := time.Millisecond
	for _, c := range []uint32{0, 1, 2, 4, 3, 3, 7, 9} {
		if err := ty.take(c, time.Duration(c)*ms); err != nil {
			t.Fatal(err)
		}
	}
	if err := ty.take(maxCounter, 0); err == nil {
		t.Error("a counter beyond the bound was taken")
	}
	if ty.dups != 1 || ty.reordered != 1 {
		t.Errorf("dups %d, reordered %d; want 1 and 1 (3 twice, 3 after 4)", ty.dups, ty.reordered)
	}
	got, gap, lats := ty.window(2, 8, nil)
	if got != 4 || gap != 2 { // 2, 3, 4, 7; 5 and 6 lost
		t.Errorf("window 2..7 got %d with a longest gap of %d, want 4 and 2", got, gap)
	}
	if len(lats) != 4 || lats[0] != 2*ms || lats[3] != 7*ms {
		t.Errorf("latencies %v, want 2ms 3ms 4ms 7ms", lats)
	}
	if got, gap, _ := ty.window(20, 30, nil); got != 0 || gap != 10 {
		t.Errorf("a window past everything got %d", got)
	}
}

func FuzzParseStamp(f *testing.F) {
	b := make([]byte, 32)
	h := vp8Head(b, 1, true, true)
	putStamp(b[h:], stamp{stream: 1, counter: 2, sent: time.Unix(1, 0)})
	f.Add(b)
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		body, err := vp8Body(p)
		if err != nil {
			return
		}
		if len(body) > len(p) {
			t.Fatalf("body of %d bytes from a payload of %d", len(body), len(p))
		}
		if s, err := parseStamp(body); err == nil && s.sent.UnixNano() <= 0 {
			t.Fatalf("stamp %+v without a send time", s)
		}
	})
}

// TestMediaMeasuresBothForwarders runs a short media run, two rounds of one consult,
// against an in-process bare forwarder and a real server, and checks that
// media flows both ways through each with nothing lost or garbled.
func TestMediaMeasuresBothForwarders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := sqlite.Open(ctx, t.TempDir()+"/bedside.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := provisionConsults(ctx, st, 1, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sfu, err := media.New(media.Config{AllowLoopback: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	srv := httptest.NewServer(web.NewServer(web.Deps{Log: log, Store: st, Bus: cluster.NewLocal(),
		Calls: signaling.NewHub(sfu, log), Secret: []byte("a test key of thirty-two bytes, or more")}))
	defer srv.Close()
	fwd, err := newForwarder()
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.close()
	fsrv := httptest.NewServer(fwd.handler())
	defer fsrv.Close()

	cfg := mediaConfig{serverURL: srv.URL, serverPID: os.Getpid(), creds: c, consults: 1,
		warmup: 500 * time.Millisecond, duration: time.Second, forwarderURL: fsrv.URL, forwarderPID: os.Getpid(), rounds: 2}
	res, err := measureMedia(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	mediaReport(&out, cfg, res)
	t.Log("\n" + out.String())
	// Two rounds: the second joins the same visits again, and the
	// forwarder again after its reset.
	if len(res) != 4 {
		t.Fatalf("%d phases, want the bare forwarder's and the server's, twice", len(res))
	}
	inter, key := frameSizes()
	for _, r := range res {
		// Two participants, each about 30 frames a second of 5 or more
		// packets and 50 audio packets, for a second.
		if min := int64(2 * (30*(inter/vp8MaxPayload) + 50)); r.sent < min {
			t.Errorf("%s: %d packets sent in the window, want at least %d (key %d)", r.name, r.sent, min, key)
		}
		if r.loss() > 0.01 {
			t.Errorf("%s: lost %d of %d; %d streams stalled", r.name, r.sent-r.got, r.sent, r.stalled)
		}
		if r.bad != 0 {
			t.Errorf("%s: %d packets not understood, first: %s", r.name, r.bad, r.firstErr)
		}
		if r.lat.p50 <= 0 || r.cpu <= 0 {
			t.Errorf("%s: median latency %v, CPU %v; want both above 0", r.name, r.lat.p50, r.cpu)
		}
	}
}

func TestNackCountCountsPacketsAndKeyframeRequests(t *testing.T) {
	pkts := []rtcp.Packet{
		// 10 and, by the bitmask, 11 and 13: three packets asked for.
		&rtcp.TransportLayerNack{Nacks: []rtcp.NackPair{{PacketID: 10, LostPackets: 0b101}}},
		&rtcp.PictureLossIndication{},
		&rtcp.FullIntraRequest{},
		&rtcp.ReceiverReport{},
	}
	nacks, keys := nackCount(pkts)
	if nacks != 3 || keys != 2 {
		t.Errorf("nackCount = %d NACKed packets, %d keyframe requests; want 3 and 2", nacks, keys)
	}
}
