package live

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// The fan-out benchmarks publish one message to a patient watched by
// several viewers and write each viewer's queue out as one frame, the way
// the transport does, into a buffer. The baseline does the least any
// fan-out must: copy the message into the same number of locked queues and
// write them out the same way, with no offsets, history or epochs. Compare
// ns/delivery within one run.

var ecgChunk = []byte(`{"type":"waveform","code":"131330","origin":0,"factor":0.001,"period":4,"unit":"mV","data":[12,15,18,22,30,45,80,120,80,30,12,8,6,5,5,6,7,8,9,10,10,11,11,12,12],"time":"2026-11-25T10:00:00.1Z","device":"Home hub"}`)

func writeFrame(buf *bytes.Buffer, msgs [][]byte) {
	buf.Reset()
	buf.WriteByte('[')
	for i, m := range msgs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(m)
	}
	buf.WriteByte(']')
}

func BenchmarkFanOut(b *testing.B) {
	for _, viewers := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("stream/viewers=%d", viewers), func(b *testing.B) {
			h := NewHub(Config{})
			vs := make([]*Viewer, viewers)
			for i := range vs {
				vs[i] = h.NewViewer()
				if err := h.Subscribe(context.Background(), vs[i], 1, Position{}, 0); err != nil {
					b.Fatal(err)
				}
			}
			var buf bytes.Buffer
			batch := make([][]byte, 0, 16)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				_ = h.Publish(context.Background(), 1, ecgChunk)
				for _, v := range vs {
					batch = v.Take(batch[:0], 0)
					writeFrame(&buf, batch)
					clear(batch)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*viewers), "ns/delivery")
		})
		b.Run(fmt.Sprintf("bare/viewers=%d", viewers), func(b *testing.B) {
			type queue struct {
				mu sync.Mutex
				q  [][]byte
			}
			qs := make([]*queue, viewers)
			for i := range qs {
				qs[i] = &queue{}
			}
			var buf bytes.Buffer
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				msg := append([]byte(nil), ecgChunk...)
				for _, q := range qs {
					q.mu.Lock()
					q.q = append(q.q, msg)
					q.mu.Unlock()
				}
				for _, q := range qs {
					q.mu.Lock()
					writeFrame(&buf, q.q)
					clear(q.q)
					q.q = q.q[:0]
					q.mu.Unlock()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*viewers), "ns/delivery")
		})
	}
}

// BenchmarkHistoryGC measures a full garbage collection with 200 patients'
// histories full (2,400 ECG chunks each, 110 MB), kept the ring's way
// (bytes in blocks, records without pointers) against the baseline of a
// slice per message, which is how a history is usually kept. Compare
// ns/op within one run: the collector marks every object the heap holds
// pointers to, so its work grows with the number of messages.
func BenchmarkHistoryGC(b *testing.B) {
	const patients, msgs = 200, 2400
	msg := Encode(1, 1, ecgChunk)
	b.Run("ring", func(b *testing.B) {
		rings := make([]ring, patients)
		for p := range rings {
			rings[p] = newRing(msgs, 1<<20)
			for off := int64(1); off <= msgs; off++ {
				rings[p].pushEncoded(int64(p), off, off, true, ecgChunk)
			}
		}
		runtime.GC()
		b.ResetTimer()
		for b.Loop() {
			runtime.GC()
		}
		runtime.KeepAlive(rings)
	})
	b.Run("slices", func(b *testing.B) {
		hists := make([][]Entry, patients)
		for p := range hists {
			hists[p] = make([]Entry, msgs)
			for i := range hists[p] {
				hists[p][i] = Entry{Offset: int64(i + 1), Msg: append([]byte(nil), msg...)}
			}
		}
		runtime.GC()
		b.ResetTimer()
		for b.Loop() {
			runtime.GC()
		}
		runtime.KeepAlive(hists)
	})
}
