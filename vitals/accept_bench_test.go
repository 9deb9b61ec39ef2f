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
