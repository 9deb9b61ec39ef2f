package vitals

import (
	"context"
	"encoding/binary"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/vitals/live"
)

// padStack runs f under n frames of padding and returns the address of
// its deepest frame's local.
//
//go:noinline
func padStack(n int, f func()) uintptr {
	var b [16]byte
	b[n%len(b)] = byte(n)
	if n > 0 {
		return padStack(n-1, f) + uintptr(b[0]&0)
	}
	f()
	return uintptr(unsafe.Pointer(&b[0]))
}

// growStack makes a goroutine's stack 16 KB, from any smaller start.
//
//go:noinline
func growStack() byte {
	var b [9000]byte
	b[len(b)-1] = 1
	return keep(b[:])
}

//go:noinline
func keep(b []byte) byte { return b[len(b)-1] }

// stackMoved reports whether running f under n frames of padding made a
// fresh goroutine's stack grow (the runtime moves a stack to grow it).
func stackMoved(n int, f func()) bool {
	done := make(chan bool)
	go func() {
		growStack() // to 16 KB, so that f fits under the padding
		var x byte
		before := uintptr(unsafe.Pointer(&x))
		padStack(n, f)
		done <- before != uintptr(unsafe.Pointer(&x))
	}()
	return <-done
}

// stackUse is about how many bytes of stack f needs (to within one
// padding frame): a fresh goroutine's stack must grow under fewer frames
// of padding with f than without.
func stackUse(t *testing.T, f func()) int {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // a GC could shrink a stack, or change the starting size
	frame := int(padStack(0, func() {}) - padStack(1, func() {}))
	first := func(f func()) int {
		for n := range 2048 {
			if stackMoved(n, f) {
				return n
			}
		}
		t.Fatal("the stack never grew")
		return 0
	}
	n0, n1 := first(func() {}), first(f)
	return (n0 - n1) * frame
}

// TestAcceptStack: what a device reader's goroutine runs for each frame,
// Ingester.Accept publishing to a Hub (without viewers), fits in its
// starting stack. A
// device's read loop sits about 800 bytes deep (goServe, the handler's
// closure, ServeDevice) on a stack that starts at 4 KB, of which the
// runtime keeps 928 bytes as a guard: past about 2.3 KB, the reader's
// stack grows to 8 KB on its first frame and stays so, and each GC that
// shrinks it makes the next frame grow it again.
func TestAcceptStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation deepens every frame")
	}
	ctx := context.Background()
	hub := live.NewHub(live.Config{})
	in := NewIngester(sinkFunc(func(context.Context, int64, int64, []StoredReading) error { return nil }),
		hub, Device{ID: 1, PatientID: 2, Name: "hub"})
	seq := int64(0)
	t0 := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	// Built beforehand, so that only Accept is measured: stackUse runs
	// each function a few hundred times.
	numerics := make([][]byte, 4000) // by seq
	for s := range numerics {
		numerics[s] = deviceNumeric(nil, int64(s), t0.Add(time.Duration(s)*time.Millisecond))
	}
	numeric := func() {
		seq++
		if r := in.Accept(ctx, websocket.TextMessage, numerics[seq]); len(r) != 0 {
			t.Errorf("%s", r[0])
		}
	}
	w := &Waveform{Code: CodeECGLeadII, OriginUnit: "mV", Period: 4, Factor: 0.001, Dimensions: 1, Time: t0}
	for i := range 25 {
		w.Data = append(w.Data, float64(i*40-500))
	}
	frame, err := AppendWaveFrame(nil, 1, w)
	if err != nil {
		t.Fatal(err)
	}
	ecg := func() {
		seq++
		binary.LittleEndian.PutUint64(frame[8:], uint64(seq))
		if r := in.Accept(ctx, websocket.BinaryMessage, frame); len(r) != 0 {
			t.Errorf("%s", r[0])
		}
	}
	numeric() // the stream's first message sets it up
	ecg()
	const budget = 4096 - 928 - 800
	for _, c := range []struct {
		name string
		f    func()
	}{{"numeric", numeric}, {"ecg", ecg}} {
		use := stackUse(t, c.f)
		t.Logf("Accept of a %s frame uses about %d bytes of stack", c.name, use)
		if use > budget {
			t.Errorf("Accept of a %s frame uses about %d bytes of stack, more than the %d a device reader has before its stack grows", c.name, use, budget)
		}
	}
	if _, err := in.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
