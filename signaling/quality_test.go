package signaling_test

import (
	"context"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
	"github.com/bedside-health/bedside/wsconn"
)

// awaitQuality returns the first quality entry of participant id that c
// is sent and ok accepts, failing after timeout.
func awaitQuality(t *testing.T, c *sigclient.Client, id string, ok func(media.Quality) bool) media.Quality {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last media.Quality
	for {
		m, err := c.Await(ctx, signaling.TypeQuality)
		if err != nil {
			t.Fatalf("%v; the last quality of %s was %+v (client error: %v)", err, id, last, c.Err())
		}
		for _, q := range m.Quality {
			if q.Participant == id {
				last = q
				if ok(q) {
					return q
				}
			}
		}
	}
}

// noNACKAPI is a client API on vn whose publisher does not answer NACKs,
// so that what the link loses on the way to the server stays lost.
func noNACKAPI(t *testing.T, vn *vnet.Net) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetNet(vn)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// TestQualityDropsToPoorUnderLoss runs a call on a virtual network. When
// the link to the patient starts losing a quarter of its packets, the
// patient is told its own quality fell to poor with the loss in its
// figures, while the physician's clean link stays good; the patient's
// quality comes back once the loss ends. Then the physician's uplink loses
// a quarter of its packets (the physician's client does not retransmit):
// the physician's quality falls to poor with the loss in its send figures.
func TestQualityDropsToPoorUnderLoss(t *testing.T) {
	const patIP = "192.0.2.10"
	n := newTestNet(t, 0, 0)
	sn, _ := n.host(t, serverIP, false)
	s := newTestServerOn(t, wsconn.Options{}, media.Config{Net: sn})
	s.hub.SetQualityInterval(500 * time.Millisecond)
	st := newStream(t, "f")
	opts := st.options("f")
	pn, _ := n.host(t, pubIP, false)
	opts.API = noNACKAPI(t, pn)
	doc := s.dialWith(t, "doc", "Dr Ada", signaling.RolePhysician, appt, opts)
	await(t, doc, signaling.TypePublishAnswer)
	c := &vcall{net: n, s: s, pub: doc}
	stop := make(chan struct{})
	defer close(stop)
	st.run(t, doc, map[byte]layerRate{'f': {pps: 50, size: 500}}, stop)
	pat, _ := c.join(t, "pat", patIP, false)
	rec := record(t, pat)
	rec.awaitPackets(t, "video", 20)

	q := awaitQuality(t, pat, "pat", func(q media.Quality) bool { return q.Level == media.LevelGood && q.RecvKbps > 0 })
	t.Logf("clean link: %+v", q)
	if q.RecvLoss != 0 {
		t.Fatalf("clean link reports loss %v", q.RecvLoss)
	}

	n.setLoss(patIP, 0.25, false)
	q = awaitQuality(t, pat, "pat", func(q media.Quality) bool { return q.Level == media.LevelPoor })
	t.Logf("25%% loss to the patient: %+v", q)
	if q.RecvLoss < 0.10 || q.RecvLoss > 0.45 {
		t.Fatalf("patient's receive loss %.3f under 25%% link loss", q.RecvLoss)
	}
	// The same report shows the physician, whose link is clean, as good.
	d := awaitQuality(t, pat, "doc", func(media.Quality) bool { return true })
	if d.Level != media.LevelGood || d.SendKbps <= 0 || d.SendLoss != 0 {
		t.Fatalf("physician on a clean link: %+v, want good, sending, no loss", d)
	}

	n.setLoss(patIP, 0, false)
	q = awaitQuality(t, pat, "pat", func(q media.Quality) bool { return q.Level == media.LevelGood })
	t.Logf("loss over: %+v", q)

	n.setLoss(pubIP, 0.25, true)
	d = awaitQuality(t, doc, "doc", func(q media.Quality) bool { return q.Level == media.LevelPoor })
	t.Logf("25%% loss on the physician's uplink: %+v", d)
	if d.SendLoss < 0.10 || d.SendLoss > 0.45 {
		t.Fatalf("physician's send loss %.3f under 25%% uplink loss", d.SendLoss)
	}
}
