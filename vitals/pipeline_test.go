package vitals

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
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

// TestAcceptShuffledDelivery is TestIngesterShuffledDelivery for the
// pipelined contract: messages arrive out of order and twice, commits come
// at random points, the store fails now and then, connections break (what
// was accepted is committed, as ServeDevice does) and the device resends
// what is not acked. Every valid reading is stored exactly once; each is
// shown once unless a storage failure made the device resend it.
func TestAcceptShuffledDelivery(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 11))
		const n = 120
		frames := make([][]byte, n+1)
		wantRows, waves := 0, 0
		for seq := 1; seq <= n; seq++ {
			var obs string
			switch rng.IntN(5) {
			case 0:
				obs = quantityObs(CodeHeartRate, 500, "/min") // impossible
			case 1:
				obs, wantRows = bpObs(120, 80), wantRows+2
			case 2:
				obs, waves = waveObs(CodeECGLeadII, "1 2 3"), waves+1
			default:
				obs, wantRows = quantityObs(CodeSpO2, 90+rng.IntN(10), "%"), wantRows+1
			}
			frames[seq] = env(int64(seq), obs)
		}
		st, pub := newMemStore(t), &memPub{}
		acked, failures := int64(0), 0
		see := func(replies [][]byte) {
			for _, b := range replies {
				var r reply
				if err := json.Unmarshal(b, &r); err != nil {
					t.Fatalf("seed %d: reply %s: %v", seed, b, err)
				}
				if r.Ack != nil {
					if *r.Ack < acked {
						t.Fatalf("seed %d: ack went back from %d to %d", seed, acked, *r.Ack)
					}
					acked = *r.Ack
				}
			}
		}
		commit := func(in *Ingester) {
			if rng.IntN(10) == 0 {
				st.failNext = 1
			}
			rs, err := in.Commit(t.Context())
			if err != nil {
				failures++
			}
			st.failNext = 0
			see(rs)
		}
		for sessions := 0; acked < n; sessions++ {
			if sessions > 1000 {
				t.Fatalf("seed %d: no progress past %d", seed, acked)
			}
			in := NewIngester(st, pub, Device{ID: devID, PatientID: patientID, LastSeq: st.last(devID)})
			see([][]byte{ackReply(in.LastSeq())}) // the first ack
			var order []int64
			for seq := acked + 1; seq <= n; seq++ {
				order = append(order, seq)
				if rng.IntN(8) == 0 {
					order = append(order, max(1, seq-int64(rng.IntN(5))))
				}
			}
			for i := range order {
				if j := i + rng.IntN(4); j < len(order) {
					order[i], order[j] = order[j], order[i]
				}
			}
			order = order[:rng.IntN(len(order))+1]
			for _, seq := range order {
				see(in.Accept(t.Context(), websocket.TextMessage, frames[seq]))
				if in.Err() != nil {
					break
				}
				if rng.IntN(5) == 0 {
					commit(in)
					if in.Err() != nil {
						break
					}
				}
			}
			if in.Err() == nil || errors.Is(in.Err(), ErrGap) {
				commit(in) // the connection ends: what was accepted is stored
			}
		}
		if st.count() != wantRows || st.last(devID) != n {
			t.Fatalf("seed %d: stored %d rows up to seq %d; want %d up to %d", seed, st.count(), st.last(devID), wantRows, n)
		}
		if got := pub.count(patientID); got < wantRows+waves || (failures == 0 && got != wantRows+waves) {
			t.Fatalf("seed %d: published %d after %d storage failures; want each reading and waveform once (%d)", seed, got, failures, wantRows+waves)
		}
	}
}

// TestCommitReadingsStayPutDuringAppend: the Ingester stages each commit's
// readings in the array the commit before it stored, so the array a Sink
// is given must not be staged into again until Append has returned, while
// messages keep being accepted during it. Over three rounds (a new array,
// then the ones given back), every Append must see exactly the readings of
// its own messages, from its start to its end.
func TestCommitReadingsStayPutDuringAppend(t *testing.T) {
	entered, gate := make(chan []StoredReading), make(chan struct{})
	seen := make(chan []StoredReading)
	sink := sinkFunc(func(_ context.Context, _, _ int64, rs []StoredReading) error {
		entered <- slices.Clone(rs)
		<-gate
		seen <- slices.Clone(rs)
		return nil
	})
	in := NewIngester(sink, discardPub{}, Device{ID: 1, PatientID: 2, Name: "hub"})
	accept := func(from, to int64) {
		for seq := from; seq <= to; seq++ {
			if rs := in.Accept(t.Context(), websocket.TextMessage, env(seq, quantityObs(CodeHeartRate, int(60+seq), "/min"))); len(rs) != 0 {
				t.Fatalf("accept %d: %q", seq, rs)
			}
		}
	}
	seqs := func(rs []StoredReading) (out []int64) {
		for _, r := range rs {
			out = append(out, r.Seq)
		}
		return out
	}
	accept(1, 3)
	for round := int64(0); round < 3; round++ {
		first := 1 + 3*round
		want := []int64{first, first + 1, first + 2}
		done := make(chan error)
		go func() {
			_, err := in.Commit(context.Background())
			done <- err
		}()
		if got := seqs(<-entered); !slices.Equal(got, want) {
			t.Fatalf("round %d: Append given seqs %v, want %v", round, got, want)
		}
		accept(first+3, first+5) // staged while the store holds the array
		gate <- struct{}{}
		if got := seqs(<-seen); !slices.Equal(got, want) {
			t.Fatalf("round %d: the readings Append was given changed to seqs %v during the call, want %v", round, got, want)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// observerFunc follows an Ingester's committed readings.
type observerFunc func(ctx context.Context, patientID int64, readings []Reading)

func (f observerFunc) Observe(ctx context.Context, patientID int64, readings []Reading) {
	f(ctx, patientID, readings)
}

// TestCommitObservesWhatItStored: the Observer (the NEWS2 monitor) gets
// each commit's readings as stored, round after round, while the array
// they were staged in is reused for the next commit.
func TestCommitObservesWhatItStored(t *testing.T) {
	var stored, observed []float64
	sink := sinkFunc(func(_ context.Context, _, _ int64, rs []StoredReading) error {
		for _, r := range rs {
			stored = append(stored, r.Reading.Value)
		}
		return nil
	})
	in := NewIngester(sink, discardPub{}, Device{ID: 1, PatientID: 2, Name: "hub"})
	in.SetObserver(observerFunc(func(_ context.Context, patientID int64, rs []Reading) {
		if patientID != 2 {
			t.Errorf("observed patient %d, want 2", patientID)
		}
		for _, r := range rs {
			if r.Code != CodeHeartRate {
				t.Errorf("observed code %q, want %q", r.Code, CodeHeartRate)
			}
			observed = append(observed, r.Value)
		}
	}))
	var want []float64
	for round := int64(0); round < 3; round++ {
		for seq := 1 + 3*round; seq <= 3+3*round; seq++ {
			if rs := in.Accept(t.Context(), websocket.TextMessage, env(seq, quantityObs(CodeHeartRate, int(60+seq), "/min"))); len(rs) != 0 {
				t.Fatalf("accept %d: %q", seq, rs)
			}
			want = append(want, float64(60+seq))
		}
		if _, err := in.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(stored, want) {
		t.Errorf("stored %v, want %v", stored, want)
	}
	if !slices.Equal(observed, want) {
		t.Errorf("observed %v, want %v", observed, want)
	}
}
