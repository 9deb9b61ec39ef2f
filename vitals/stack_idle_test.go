package vitals

import (
	"context"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/wsconn"
)

// BenchmarkDeviceReaderStacks opens b.N device sockets served as the
// server does (ServeDevice on a fresh goroutine, the handler returned),
// sends each a numeric and an ECG frame, and reports the goroutine stack
// memory the idle readers hold, per device: about 4 KB if a reader's
// stack stayed at its start, 8 KB if handling a frame grew it. Collection
// is off meanwhile, so no stack is shrunk.
func BenchmarkDeviceReaderStacks(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := sinkFunc(func(context.Context, int64, int64, []StoredReading) error { return nil })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conn := wsconn.New(ws, wsconn.Options{})
		go ServeDevice(ctx, conn, NewIngester(sink, discardPub{}, Device{ID: 1, PatientID: 2, Name: "hub"}))
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ackOf := func(ws *websocket.Conn, seq int64) {
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if string(msg) == string(ackReply(seq)) {
				return
			}
		}
	}
	ecg := deviceECG(b, 2)
	stacks := func() uint64 {
		runtime.GC() // collection is off: this one only settles the statistics
		s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	var clients []*websocket.Conn
	defer func() {
		for _, ws := range clients {
			ws.Close()
		}
	}()
	before := stacks()
	for range b.N {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, ws)
		ackOf(ws, 0)
		if err := ws.WriteMessage(websocket.TextMessage, deviceNumeric(nil, 1, time.Now())); err != nil {
			b.Fatal(err)
		}
		ackOf(ws, 1)
		binary.LittleEndian.PutUint64(ecg[8:], 2)
		if err := ws.WriteMessage(websocket.BinaryMessage, ecg); err != nil {
			b.Fatal(err)
		}
		ackOf(ws, 2)
	}
	b.ReportMetric(float64(stacks()-before)/float64(b.N), "stack-B/device")
}
