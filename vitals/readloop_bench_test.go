package vitals

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/vitals/live"
)

// BenchmarkReadLoop is what a device's read loop does with a frame once
// read, for many devices in turn, as under the vitals load: Accept (with a
// live hub whose patients have one viewer each, which takes its messages
// at once), then the progress check and the committer's poke. The
// devices take turns, so each frame finds its device's state as cold as
// a thousand streaming devices leave it; a third of the frames are
// numerics, the rest ECG chunks, and the committers commit on their own
// timers (a no-op sink).
func BenchmarkReadLoop(b *testing.B) {
	const devices = 1000
	sink := sinkFunc(func(context.Context, int64, int64, []StoredReading) error { return nil })
	ctx := context.Background()
	hub := live.NewHub(live.Config{})
	type device struct {
		in  *Ingester
		c   *committer
		seq int64
	}
	devs := make([]device, devices)
	for i := range devs {
		v := hub.NewViewer()
		var batch [][]byte
		v.OnReady(func() { batch = v.Take(batch[:0], 0); clear(batch) })
		if err := hub.Subscribe(ctx, v, int64(i+1), live.Position{}, 0); err != nil {
			b.Fatal(err)
		}
		in := NewIngester(sink, publisherFor(hub, int64(i+1)), Device{ID: int64(i + 1), PatientID: int64(i + 1), Name: "hub"})
		devs[i] = device{in: in, c: &committer{ing: in, every: DefaultAckInterval, ctx: ctx,
			send: func([]byte) error { return nil }, fail: func(error) {}}}
	}
	t0 := time.Now()
	var numeric []byte
	ecg := deviceECG(b, 1)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		d := &devs[n%devices]
		n++
		d.seq++
		var r [][]byte
		if d.seq%3 == 0 {
			numeric = deviceNumeric(numeric[:0], d.seq, t0.Add(time.Duration(d.seq)*time.Millisecond))
			r = d.in.Accept(ctx, websocket.TextMessage, numeric)
		} else {
			binary.LittleEndian.PutUint64(ecg[8:], uint64(d.seq))
			r = d.in.Accept(ctx, websocket.BinaryMessage, ecg)
		}
		if len(r) != 0 {
			b.Fatalf("%s", r[0])
		}
		afterFrame(d.c, d.in)
	}
	b.StopTimer()
	for i := range devs {
		devs[i].c.close(ctx)
	}
}

// afterFrame is what ServeDevice does after Accept when the device may go on.
func afterFrame(c *committer, in *Ingester) {
	accepted, stored, _ := in.progress()
	c.poke(accepted, stored)
}

// publisherFor is the Publisher of a device connection for the patient.
func publisherFor(hub *live.Hub, patient int64) Publisher { return hub.Source(patient) }
