package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/bedside-health/bedside/store/sqlite"
)

// TestWriterGetsAProc: a SQLite store commits readings on a lowered
// thread, and the server allows one more P for it than the runtime chose,
// unless GOMAXPROCS is set.
func TestWriterGetsAProc(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if runtime.GOOS != "linux" {
		giveWriterAProc(st, func(string) string { return "" }, log)
		if st.WriterLowered() == nil || runtime.GOMAXPROCS(0) != before {
			t.Errorf("off Linux: lowered %v, %d Ps; want not lowered, and %d Ps", st.WriterLowered(), runtime.GOMAXPROCS(0), before)
		}
		return
	}
	if err := st.WriterLowered(); err != nil {
		t.Fatalf("the SQLite store's writer is not lowered: %v", err)
	}
	runtime.GOMAXPROCS(initialProcs)
	giveWriterAProc(st, func(k string) string {
		if k == "GOMAXPROCS" {
			return "2"
		}
		return ""
	}, log)
	if got := runtime.GOMAXPROCS(0); got != initialProcs {
		t.Errorf("with GOMAXPROCS set: %d Ps, want it left at %d", got, initialProcs)
	}
	for range 2 { // once per server, however many start in a process
		giveWriterAProc(st, func(string) string { return "" }, log)
		if got := runtime.GOMAXPROCS(0); got != initialProcs+1 {
			t.Errorf("%d Ps, want %d: the runtime's %d and one for the writer", got, initialProcs+1, initialProcs)
		}
	}
}
