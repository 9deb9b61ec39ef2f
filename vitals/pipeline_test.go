package vitals

import (
	"context"
	"testing"

	"github.com/gorilla/websocket"
)

// gateSink holds each Append until the test lets it through.
type gateSink struct {
	*memStore
	entered chan struct{}
	gate    chan struct{}
}

func (g gateSink) Append(ctx context.Context, deviceID, lastSeq int64, rs []StoredReading) error {
	g.entered <- struct{}{}
	<-g.gate
	return g.memStore.Append(ctx, deviceID, lastSeq, rs)
}

// TestAcceptPublishesBeforeCommit: viewers get a reading as soon as it is
// accepted, even while the store is busy with the commit before it; the
// ack only follows the commit that covers it.
func TestAcceptPublishesBeforeCommit(t *testing.T) {
	st, pub := newMemStore(t), &memPub{}
	sink := gateSink{st, make(chan struct{}), make(chan struct{})}
	in := NewIngester(sink, pub, Device{ID: devID, PatientID: patientID, Name: "hub"})
	if rs := in.Accept(t.Context(), websocket.TextMessage, env(1, hrObs)); len(rs) != 0 || pub.count(patientID) != 1 || !in.Uncommitted() {
		t.Fatalf("accept 1: replies %q, published %d", rs, pub.count(patientID))
	}
	type result struct {
		replies [][]byte
		err     error
	}
	done := make(chan result)
	go func() {
		rs, err := in.Commit(context.Background())
		done <- result{rs, err}
	}()
	<-sink.entered // the commit of 1 is in the store
	if rs := in.Accept(t.Context(), websocket.TextMessage, env(2, hrObs)); len(rs) != 0 || pub.count(patientID) != 2 {
		t.Fatalf("accept 2 during the commit: replies %q, published %d", rs, pub.count(patientID))
	}
	// A resend of 1 during its commit is neither shown nor acked twice.
	if rs := in.Accept(t.Context(), websocket.TextMessage, env(1, hrObs)); len(rs) != 0 || pub.count(patientID) != 2 {
		t.Fatalf("resend 1 during its commit: replies %q, published %d", rs, pub.count(patientID))
	}
	close(sink.gate)
	if r := <-done; r.err != nil || len(r.replies) != 1 || string(r.replies[0]) != `{"ack":1}` {
		t.Fatalf("commit of 1: %q %v", r.replies, r.err)
	}
	go func() { <-sink.entered }()
	if rs, err := in.Commit(t.Context()); err != nil || len(rs) != 1 || string(rs[0]) != `{"ack":2}` {
		t.Fatalf("commit of 2: %q %v", rs, err)
	}
	if st.count() != 2 || in.Uncommitted() || in.LastSeq() != 2 {
		t.Fatalf("stored %d, LastSeq %d", st.count(), in.LastSeq())
	}
}
