package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/vitals/live"
)

// BenchmarkViewerFrames measures what batching saves on a real WebSocket
// over loopback: a viewer watching 20 patients gets one message from each,
// written either as 20 frames or as one frame of 20 (what the writer does
// when they queue within one tick). The reader discards in its own
// goroutine. Compare ns/message between the two in one run.
func BenchmarkViewerFrames(b *testing.B) {
	msg := live.Encode(42, 1000, []byte(`{"type":"reading","code":"8867-4","value":72,"unit":"/min","time":"2026-11-25T10:00:00Z","device":"Pulse oximeter"}`))
	const patients = 20
	for _, batch := range []int{1, patients} {
		b.Run(fmt.Sprintf("messages-per-frame=%d", batch), func(b *testing.B) {
			conns := make(chan *websocket.Conn, 1)
			up := websocket.Upgrader{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					b.Error(err)
					return
				}
				conns <- ws
			}))
			defer srv.Close()
			client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			go func() {
				for {
					if _, _, err := client.NextReader(); err != nil {
						return
					}
				}
			}()
			ws := <-conns
			c := newViewerConn(ws, nil, 0, 0)
			frame := make([][]byte, 0, batch)
			for range batch {
				frame = append(frame, msg)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for sent := 0; sent < patients; sent += batch {
					if err := c.writeFrame(frame); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*patients), "ns/message")
			ws.Close()
		})
	}
}
