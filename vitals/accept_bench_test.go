package vitals

import (
	"context"
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// deviceNumeric appends a numeric envelope of the shape cmd/loadtest and
// cmd/devicesim send: a heart rate with its LOINC code, UCUM unit and
// time.
func deviceNumeric(b []byte, seq int64, t time.Time) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"observation":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"effectiveDateTime":"`...)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}}`...)
	return b
}

// deviceECG is a 25-sample ECG frame as cmd/loadtest sends it, with
// sequence seq.
func deviceECG(tb testing.TB, seq int64) []byte {
	w := ecgChunk()
	w.Data[20] = 3 // the load's frames have no gaps
	b, err := AppendWaveFrame(nil, seq, w)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkAccept runs Ingester.Accept on one numeric envelope and on one
// binary ECG frame, as a device reader does for each frame, committing
// every 15 messages (a second of the load's device, with no-op sink and
// publisher).
func BenchmarkAccept(b *testing.B) {
	sink := sinkFunc(func(context.Context, int64, int64, []StoredReading) error { return nil })
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 123000000, time.UTC)
	b.Run("numeric", func(b *testing.B) {
		in := NewIngester(sink, discardPub{}, Device{ID: 1, PatientID: 2, Name: "hub"})
		var frame []byte
		b.ReportAllocs()
		for seq := int64(1); b.Loop(); seq++ {
			frame = deviceNumeric(frame[:0], seq, t0.Add(time.Duration(seq)*time.Millisecond))
			if r := in.Accept(ctx, websocket.TextMessage, frame); len(r) != 0 {
				b.Fatalf("%s", r[0])
			}
			if seq%15 == 0 {
				in.Commit(ctx)
			}
		}
	})
	b.Run("ecg", func(b *testing.B) {
		in := NewIngester(sink, discardPub{}, Device{ID: 1, PatientID: 2, Name: "hub"})
		frame := deviceECG(b, 1)
		b.ReportAllocs()
		for seq := int64(1); b.Loop(); seq++ {
			binary.LittleEndian.PutUint64(frame[8:], uint64(seq))
			if r := in.Accept(ctx, websocket.BinaryMessage, frame); len(r) != 0 {
				b.Fatalf("%s", r[0])
			}
			if seq%15 == 0 {
				in.Commit(ctx)
			}
		}
	})
}

// TestAcceptAllocatesNothing: a device's steady stream of numerics and ECG
// frames, committed every 15 messages as the load commits them, allocates
// nothing per message once the first commit has handed its array back.
// The acks the commits return are all that is allocated.
func TestAcceptAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	sink := sinkFunc(func(context.Context, int64, int64, []StoredReading) error { return nil })
	ctx := context.Background()
	in := NewIngester(sink, discardPub{}, Device{ID: 1, PatientID: 2, Name: "hub"})
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 123000000, time.UTC)
	var numeric []byte
	ecg := deviceECG(t, 1)
	seq := int64(0)
	second := func() {
		for range 15 {
			seq++
			var r [][]byte
			if seq%3 == 0 {
				numeric = deviceNumeric(numeric[:0], seq, t0.Add(time.Duration(seq)*time.Millisecond))
				r = in.Accept(ctx, websocket.TextMessage, numeric)
			} else {
				binary.LittleEndian.PutUint64(ecg[8:], uint64(seq))
				r = in.Accept(ctx, websocket.BinaryMessage, ecg)
			}
			if len(r) != 0 {
				t.Fatalf("seq %d: %s", seq, r[0])
			}
		}
		if acks, err := in.Commit(ctx); err != nil || len(acks) != 1 {
			t.Fatalf("commit: %q %v", acks, err)
		}
	}
	second() // the first commit's array, and the pools, are made here
	// The ack is three allocations: its bytes, grown once, and the
	// replies. Before, each numeric made two and staging four a second.
	if n := testing.AllocsPerRun(20, second); n > 3 {
		t.Fatalf("a second of a device's messages allocates %v times, want at most the ack's 3", n)
	}
}
