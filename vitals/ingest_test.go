package vitals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

const (
	devID     = 11
	patientID = 42
)

func env(seq int64, obs string) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"observation":%s}`, seq, obs)
}

type reply struct {
	Ack   *int64 `json:"ack"`
	Error string `json:"error"`
	Seq   *int64 `json:"seq"`
}

// result is what one Handle answered.
type result struct {
	ack      int64    // -1 if no ack
	rejected []int64  // seqs answered with {"error", "seq"}
	errs     []string // every error text
	plain    int      // errors without seq
}

func handle(t *testing.T, in *Ingester, frame []byte) result {
	t.Helper()
	res := result{ack: -1}
	raw := in.Handle(context.Background(), frame)
	for i, b := range raw {
		var r reply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("reply %s is not JSON: %v", b, err)
		}
		switch {
		case r.Ack != nil:
			if i != len(raw)-1 {
				t.Fatalf("ack is not the last reply: %q", raw)
			}
			res.ack = *r.Ack
		case r.Error != "" && r.Seq != nil:
			res.rejected = append(res.rejected, *r.Seq)
			res.errs = append(res.errs, r.Error)
		case r.Error != "":
			res.plain++
			res.errs = append(res.errs, r.Error)
		default:
			t.Fatalf("reply %s is neither ack nor error", b)
		}
	}
	return res
}

// serverNow is the test ingesters' clock.
var serverNow = time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC)

func newTestIngester(t *testing.T, lastSeq int64) (*Ingester, *memStore, *memPub) {
	st, pub := newMemStore(t), &memPub{}
	in := NewIngester(st, pub, Device{ID: devID, PatientID: patientID, Name: "Home hub", LastSeq: lastSeq})
	return in.WithClock(func() time.Time { return serverNow }), st, pub
}

func TestIngesterInOrder(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	for seq := int64(1); seq <= 3; seq++ {
		if r := handle(t, in, env(seq, hrObs)); r.ack != seq || len(r.errs) != 0 {
			t.Fatalf("seq %d: %+v", seq, r)
		}
	}
	if st.count() != 3 || st.last(devID) != 3 || pub.count(patientID) != 3 || in.LastSeq() != 3 {
		t.Fatalf("stored %d (last %d), published %d, LastSeq %d; want 3 each", st.count(), st.last(devID), pub.count(patientID), in.LastSeq())
	}
}

func TestIngesterDuplicateIsAckedNotStored(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	handle(t, in, env(1, hrObs))
	handle(t, in, env(2, bpObs(120, 80)))
	for _, seq := range []int64{1, 2, 1} {
		if r := handle(t, in, env(seq, hrObs)); r.ack != 2 || len(r.errs) != 0 {
			t.Fatalf("duplicate %d: %+v", seq, r)
		}
	}
	// Even an invalid resend of a handled seq is just acked.
	if r := handle(t, in, env(1, `{"nonsense":true}`)); r.ack != 2 || len(r.errs) != 0 {
		t.Fatalf("invalid duplicate: %+v", r)
	}
	if st.count() != 3 || pub.count(patientID) != 3 {
		t.Fatalf("stored %d, published %d; want 3 (heart rate, systolic, diastolic)", st.count(), pub.count(patientID))
	}
}

func TestIngesterOutOfOrder(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	for _, seq := range []int64{3, 2, 3, 5} {
		if r := handle(t, in, env(seq, quantityObs(CodeHeartRate, 60+seq, "/min"))); r.ack != 0 || len(r.errs) != 0 {
			t.Fatalf("held seq %d: %+v", seq, r)
		}
	}
	if st.count() != 0 || pub.count(patientID) != 0 || in.Pending() != 3 {
		t.Fatalf("before the gap fills: stored %d, published %d, pending %d", st.count(), pub.count(patientID), in.Pending())
	}
	if r := handle(t, in, env(1, quantityObs(CodeHeartRate, 61, "/min"))); r.ack != 3 {
		t.Fatalf("after filling the gap: %+v, want ack 3", r)
	}
	if got := fmt.Sprint(st.seqs()); got != "[1 2 3]" || st.appends != 1 || in.Pending() != 1 {
		t.Fatalf("stored seqs %s in %d appends, pending %d; want [1 2 3] in 1, 5 still held", got, st.appends, in.Pending())
	}
	// Live messages go out in sequence order.
	for i, msg := range pub.msgs[patientID] {
		var lr LiveReading
		if err := json.Unmarshal(msg, &lr); err != nil || lr.Value != float64(61+i) {
			t.Fatalf("live message %d: %s", i, msg)
		}
	}
	if r := handle(t, in, env(4, hrObs)); r.ack != 5 || st.count() != 5 || in.Pending() != 0 {
		t.Fatalf("after 4: %+v, stored %d, pending %d", r, st.count(), in.Pending())
	}
}

func TestIngesterRejectsCountAsHandled(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	r := handle(t, in, env(1, quantityObs(CodeHeartRate, 999, "/min")))
	if r.ack != 1 || fmt.Sprint(r.rejected) != "[1]" || !strings.HasPrefix(r.errs[0], "observation.valueQuantity.value: ") {
		t.Fatalf("impossible heart rate: %+v", r)
	}
	if st.count() != 0 || st.last(devID) != 1 || pub.count(patientID) != 0 {
		t.Fatalf("a reject stored %d, published %d, last seq %d; want 0, 0, 1", st.count(), pub.count(patientID), st.last(devID))
	}
	// A held reject is answered when the gap fills, before the ack.
	handle(t, in, env(3, strings.Replace(hrObs, at, "soon", 1)))
	handle(t, in, []byte(`{"seq":4,"observation":`)) // not JSON: no seq known, nothing held
	r = handle(t, in, env(2, hrObs))
	if r.ack != 3 || fmt.Sprint(r.rejected) != "[3]" || !strings.Contains(r.errs[0], "effectiveDateTime") {
		t.Fatalf("held reject: %+v", r)
	}
	// A known seq without an observation is rejected by number.
	r = handle(t, in, []byte(`{"seq":4}`))
	if r.ack != 4 || fmt.Sprint(r.rejected) != "[4]" || !strings.HasPrefix(r.errs[0], "observation: missing") {
		t.Fatalf("missing observation: %+v", r)
	}
	if st.count() != 1 || st.last(devID) != 4 {
		t.Fatalf("stored %d, last %d; want 1, 4", st.count(), st.last(devID))
	}
}

func TestIngesterNotAnEnvelope(t *testing.T) {
	in, st, _ := newTestIngester(t, 5)
	for _, frame := range []string{`hello`, `{"seq":`, `[]`, `{"seq":0,"observation":{}}`, `{"seq":"6","observation":{}}`, ``} {
		r := handle(t, in, []byte(frame))
		if r.ack != -1 || r.plain != 1 || len(r.rejected) != 0 {
			t.Fatalf("%q: %+v; want one error without seq and no ack", frame, r)
		}
	}
	if st.appends != 0 || in.LastSeq() != 5 {
		t.Fatal("a malformed frame reached the store or moved the sequence")
	}
}

func TestIngesterReconnectResend(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	for seq := int64(1); seq <= 3; seq++ {
		handle(t, in, env(seq, hrObs))
	}
	// The connection broke before the device read ack 3: it resends 2 and 3
	// on a new connection, whose Ingester starts from the stored sequence.
	in2 := NewIngester(st, pub, Device{ID: devID, PatientID: patientID, LastSeq: st.last(devID)})
	for _, seq := range []int64{2, 3} {
		if r := handle(t, in2, env(seq, hrObs)); r.ack != 3 {
			t.Fatalf("resent %d: %+v", seq, r)
		}
	}
	if r := handle(t, in2, env(4, hrObs)); r.ack != 4 {
		t.Fatalf("new seq 4: %+v", r)
	}
	if st.count() != 4 || pub.count(patientID) != 4 {
		t.Fatalf("stored %d, published %d; want 4 each: resends are neither stored nor shown again", st.count(), pub.count(patientID))
	}
}

func TestIngesterStoreFailureHoldsTheAck(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	handle(t, in, env(1, hrObs))
	handle(t, in, env(3, hrObs)) // held
	st.failNext = 1
	r := handle(t, in, env(2, hrObs))
	if r.ack != 1 || r.plain != 1 || len(r.rejected) != 0 || !errors.Is(in.Err(), ErrStore) || !errors.Is(in.Err(), errDiskFull) {
		t.Fatalf("store failure: %+v, Err %v; want ack 1, one error without seq, ErrStore", r, in.Err())
	}
	// 2 and 3 were shown once accepted (docs/protocol.md: a reading the
	// store then failed on may be shown again), but neither is stored.
	if st.count() != 1 || pub.count(patientID) != 3 || in.LastSeq() != 1 {
		t.Fatalf("after the failure: stored %d, published %d, LastSeq %d", st.count(), pub.count(patientID), in.LastSeq())
	}
	// A store failure for a reject holds the ack too.
	in2, st2, _ := newTestIngester(t, 0)
	st2.failNext = 1
	if r := handle(t, in2, env(1, `{}`)); r.ack != 0 || len(r.rejected) != 1 {
		t.Fatalf("reject whose sequence could not be stored: %+v", r)
	}
	// The connection closes on ErrStore; the device resends 2 and 3 on a
	// new one, and each is stored once.
	st.failNext = 0
	in3 := NewIngester(st, pub, Device{ID: devID, PatientID: patientID, LastSeq: st.last(devID)})
	handle(t, in3, env(2, hrObs))
	if r := handle(t, in3, env(3, hrObs)); r.ack != 3 || in3.Err() != nil {
		t.Fatalf("resend: %+v, Err %v", r, in3.Err())
	}
	if st.count() != 3 {
		t.Fatalf("after the resend: stored %d; want 3", st.count())
	}
}

func TestIngesterGapTooLarge(t *testing.T) {
	in, st, _ := newTestIngester(t, 10)
	if r := handle(t, in, env(10+MaxAhead, hrObs)); r.ack != 10 || in.Err() != nil {
		t.Fatalf("furthest holdable seq: %+v %v", r, in.Err())
	}
	r := handle(t, in, env(11+MaxAhead, hrObs))
	if r.ack != 10 || r.plain != 1 || !errors.Is(in.Err(), ErrGap) || !strings.Contains(r.errs[0], "send again from 11") {
		t.Fatalf("too far ahead: %+v, Err %v", r, in.Err())
	}
	// Held bytes are bounded too.
	big := waveObs(CodePleth, strings.TrimSpace(strings.Repeat("1234 ", 4000)))
	var gapErr error
	for seq := int64(12); seq < 10+MaxAhead && gapErr == nil; seq++ {
		handle(t, in, env(seq, big))
		gapErr = in.Err()
	}
	if !errors.Is(gapErr, ErrGap) || in.pendingBytes > maxPendingBytes {
		t.Fatalf("held %d bytes in %d messages, Err %v", in.pendingBytes, in.Pending(), gapErr)
	}
	if st.appends != 0 {
		t.Fatal("nothing should be stored while 11 is missing")
	}
}

func TestIngesterWaveformIsPublishedNotStored(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	// The server's clock stamps the chunk, to the millisecond.
	in.WithClock(func() time.Time { return time.Date(2026, 11, 25, 10, 0, 0, 250_400_000, time.UTC) })
	if r := handle(t, in, env(1, ecgObs)); r.ack != 1 || len(r.errs) != 0 {
		t.Fatalf("waveform: %+v", r)
	}
	if st.count() != 0 || st.last(devID) != 1 || pub.count(patientID) != 1 {
		t.Fatalf("stored %d, last %d, published %d; want 0, 1, 1", st.count(), st.last(devID), pub.count(patientID))
	}
	msg := pub.msgs[patientID][0]
	want := `{"type":"waveform","code":"131330","origin":0,"factor":0.001,"period":4,"unit":"mV","data":[10,12,-3,900,null,15],"time":"2026-11-25T10:00:00Z","device":"Home hub","received":"2026-11-25T10:00:00.25Z"}`
	if string(msg) != want {
		t.Fatalf("live waveform\n got %s\nwant %s", msg, want)
	}
	var lw LiveWaveform
	if err := json.Unmarshal(msg, &lw); err != nil || len(lw.Data) != 6 || !math.IsNaN(lw.Data[4]) {
		t.Fatalf("decode live waveform: %+v %v", lw, err)
	}
}

func TestIngesterLiveReadings(t *testing.T) {
	in, st, pub := newTestIngester(t, 0)
	handle(t, in, env(1, bpObs(118, 76)))
	handle(t, in, env(2, quantityObs(CodeTemperature, 98.6, "[degF]")))
	got := pub.msgs[patientID]
	want := []string{
		`{"type":"reading","code":"8480-6","value":118,"unit":"mm[Hg]","time":"2026-11-25T10:00:00Z","device":"Home hub"}`,
		`{"type":"reading","code":"8462-4","value":76,"unit":"mm[Hg]","time":"2026-11-25T10:00:00Z","device":"Home hub"}`,
		`{"type":"reading","code":"8310-5","value":37,"unit":"Cel","time":"2026-11-25T10:00:00Z","device":"Home hub"}`,
	}
	if len(got) != len(want) {
		t.Fatalf("published %q", got)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("message %d\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	if st.rows[2].Reading.Unit != "Cel" || st.rows[2].Reading.Value != 37 {
		t.Fatalf("stored temperature %+v, want 37 Cel", st.rows[2].Reading)
	}
}

func TestIngesterSubject(t *testing.T) {
	in, st, _ := newTestIngester(t, 0)
	withSubject := func(ref string) string {
		return strings.Replace(hrObs, `"status":"final",`, `"status":"final","subject":{"reference":"`+ref+`"},`, 1)
	}
	if r := handle(t, in, env(1, withSubject("Patient/42"))); len(r.errs) != 0 {
		t.Fatalf("own patient: %+v", r)
	}
	if r := handle(t, in, env(2, withSubject("https://bedside.example/fhir/Patient/42"))); len(r.errs) != 0 {
		t.Fatalf("own patient, absolute: %+v", r)
	}
	r := handle(t, in, env(3, withSubject("Patient/7")))
	if r.ack != 3 || fmt.Sprint(r.rejected) != "[3]" || !strings.HasPrefix(r.errs[0], "observation.subject.reference: ") {
		t.Fatalf("another patient: %+v", r)
	}
	if st.count() != 2 {
		t.Fatalf("stored %d, want 2", st.count())
	}
}

// TestIngesterShuffledDelivery drives many random sessions: messages arrive
// out of order and twice, connections break and the device resends what is
// not acked, the store fails now and then. Whatever happens, every valid
// reading is stored exactly once and nothing invalid is stored.
func BenchmarkIngesterHandle(b *testing.B) {
	in := NewIngester(sinkFunc(func(context.Context, int64, int64, []StoredReading) error { return nil }), discardPub{}, Device{ID: 1, PatientID: 2, Name: "hub"})
	frames := [][]byte{[]byte(hrObs), []byte(waveObs(CodeECGLeadII, strings.TrimSpace(strings.Repeat("512 ", 25))))}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		in.Handle(context.Background(), env(int64(i+1), string(frames[i%2])))
	}
}

type sinkFunc func(ctx context.Context, deviceID, lastSeq int64, rs []StoredReading) error

func (f sinkFunc) Append(ctx context.Context, deviceID, lastSeq int64, rs []StoredReading) error {
	return f(ctx, deviceID, lastSeq, rs)
}

type discardPub struct{}

func (discardPub) Publish(context.Context, int64, []byte) error { return nil }
