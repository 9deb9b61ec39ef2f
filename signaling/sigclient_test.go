package signaling_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bedside-health/bedside/signaling"
	"github.com/bedside-health/bedside/signaling/sigclient"
)

// TestSigclientClosesAClientNobodyReads: a test client whose caller never
// reads what the server sends does not grow without bound. Once a few
// thousand messages wait (here quality reports, sent every millisecond),
// the client closes itself and says why: Err is sigclient.ErrSlow, and
// Next hands over what was queued, in order, then ErrSlow.
func TestSigclientClosesAClientNobodyReads(t *testing.T) {
	s := newTestServer(t)
	s.hub.SetQualityInterval(time.Millisecond)
	c := s.dial(t, "u1", "Dr Ada", signaling.RolePhysician, 71)
	select {
	case <-c.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("the unread client is still open after a minute (error %v)", c.Err())
	}
	if err := c.Err(); !errors.Is(err, sigclient.ErrSlow) {
		t.Fatalf("the client closed with %v, want ErrSlow", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	n := 0
	var prev uint64
	for {
		m, err := c.Next(ctx)
		if err != nil {
			if !errors.Is(err, sigclient.ErrSlow) {
				t.Fatalf("after %d messages Next said %v, want ErrSlow", n, err)
			}
			break
		}
		if n == 0 && m.Type != signaling.TypeWelcome {
			t.Fatalf("the first message queued is %q, want welcome", m.Type)
		}
		if n > 0 && m.Seq != prev+1 {
			t.Fatalf("message %d after %d: the queue lost or reordered messages", m.Seq, prev)
		}
		prev = m.Seq
		n++
	}
	if n < 1000 || n > 10000 {
		t.Fatalf("%d messages were queued before the client closed, want a few thousand", n)
	}
}
