package signaling_test

import (
	"context"
	"testing"
	"time"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
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

// TestQualityDropsToPoorUnderLoss runs a call on a virtual network whose
// link to the patient starts losing a quarter of its packets, and checks
// that the patient is told its own quality fell to poor with the loss in
// its figures, that the physician's clean link stays good, and that the
// patient's quality comes back once the loss ends.
func TestQualityDropsToPoorUnderLoss(t *testing.T) {
	const patIP = "192.0.2.10"
	n := newTestNet(t, 0, 0)
	st := newStream(t, "f")
	c := newVCall(t, n, st.options("f"))
	c.s.hub.SetQualityInterval(500 * time.Millisecond) // for the patient, who joins now
	stop := make(chan struct{})
	defer close(stop)
	st.run(t, c.pub, map[byte]layerRate{'f': {pps: 50, size: 500}}, stop)
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
	doc := awaitQuality(t, pat, "doc", func(media.Quality) bool { return true })
	if doc.Level != media.LevelGood || doc.SendKbps <= 0 {
		t.Fatalf("physician on a clean link: %+v, want good and sending", doc)
	}

	n.setLoss(patIP, 0, false)
	q = awaitQuality(t, pat, "pat", func(q media.Quality) bool { return q.Level == media.LevelGood })
	t.Logf("loss over: %+v", q)
}
