package web

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
			c := newViewerConn(ws, nil, nil, 0, 0)
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

// BenchmarkViewerDelivery measures the path of a published message to a
// viewer's socket when every message is a frame of its own (one viewer
// per patient, each getting a message a tick or more after its last):
// Hub.Publish, the hand-off to the viewer's writer and the write, over
// loopback to clients that read in goroutines of their own. Each message
// goes to the next of 64 viewers, with at most 8 in flight, so the
// publisher never queues behind a viewer. "goroutine" hands every frame
// to a writer goroutine started for it; "inline" lets the publishing
// goroutine write it (viewerNetConn). cpu-ns/delivery is the whole
// process's CPU, the clients' reading included, the same in both.
func BenchmarkViewerDelivery(b *testing.B) {
	const viewers, inFlight = 64, 8
	msg := []byte(`{"type":"reading","code":"8867-4","value":72,"unit":"/min","time":"2026-11-25T10:00:00Z","device":"Pulse oximeter"}`)
	for _, inline := range []bool{false, true} {
		name := "handoff=goroutine"
		if inline {
			name = "handoff=inline"
		}
		b.Run(name, func(b *testing.B) {
			hub := live.NewHub(live.Config{})
			got := make(chan struct{}, viewers*4)
			up := websocket.Upgrader{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var nc *viewerNetConn
				var ws *websocket.Conn
				var err error
				if inline {
					hj := &viewerHijacker{ResponseWriter: w}
					ws, err = up.Upgrade(hj, r, nil)
					nc = hj.conn
				} else {
					ws, err = up.Upgrade(w, r, nil)
				}
				if err != nil {
					b.Error(err)
					return
				}
				var id int64
				_, _ = fmt.Sscan(r.URL.Query().Get("patient"), &id)
				v := hub.NewViewer()
				newViewerConn(ws, nc, v, time.Nanosecond, 0)
				if err := hub.Subscribe(r.Context(), v, id, live.Position{}, 0); err != nil {
					b.Error(err)
				}
			}))
			defer srv.Close()
			var clients []*websocket.Conn
			for i := range viewers {
				client, _, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws%s/?patient=%d", strings.TrimPrefix(srv.URL, "http"), i), nil)
				if err != nil {
					b.Fatal(err)
				}
				clients = append(clients, client)
				// The first frame is the stream message: wait for it, so
				// every viewer is subscribed before the clock starts.
				if _, _, err := client.ReadMessage(); err != nil {
					b.Fatal(err)
				}
				go func() {
					for {
						_, frame, err := client.ReadMessage()
						if err != nil {
							return
						}
						// Two messages to one viewer may share a frame.
						for range bytes.Count(frame, []byte(`"type":"reading"`)) {
							got <- struct{}{}
						}
					}
				}()
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU(b)
			sent := 0
			for b.Loop() {
				if sent >= inFlight {
					<-got
				}
				_ = hub.Publish(ctx, int64(sent%viewers), msg)
				sent++
			}
			for range min(sent, inFlight) {
				<-got
			}
			b.ReportMetric(float64(processCPU(b)-cpu)/float64(sent), "cpu-ns/delivery")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sent), "ns/delivery")
			b.StopTimer()
			for _, c := range clients {
				c.Close()
			}
		})
	}
}
