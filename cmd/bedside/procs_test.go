package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

// TestWriterGetsAProc: a SQLite store commits readings on a lowered
// thread, and the server lends it one more P while it commits, unless
// GOMAXPROCS is set; between commits the count is the runtime's.
func TestWriterGetsAProc(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	base := runtime.GOMAXPROCS(0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *sqlite.DB {
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "bedside.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	if runtime.GOOS != "linux" {
		st := open()
		giveWriterAProc(st, func(string) string { return "" }, log)
		if st.WriterLowered() == nil || st.WriterHasAProc() {
			t.Errorf("off Linux: lowered %v, own P %v; want neither", st.WriterLowered(), st.WriterHasAProc())
		}
		return
	}

	set := open()
	if err := set.WriterLowered(); err != nil {
		t.Fatalf("the SQLite store's writer is not lowered: %v", err)
	}
	giveWriterAProc(set, func(k string) string {
		if k == "GOMAXPROCS" {
			return "2"
		}
		return ""
	}, log)
	if set.WriterHasAProc() {
		t.Error("with GOMAXPROCS set: the writer was lent a P")
	}

	st := open()
	giveWriterAProc(st, func(string) string { return "" }, log)
	if !st.WriterHasAProc() {
		t.Error("the writer was not lent a P")
	}
	// A hand-entered reading commits through the same writer.
	u, err := st.CreateUser(t.Context(), store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.AppendObservations(t.Context(), 0, 0, []store.Observation{{PatientID: u.ID, Code: "8867-4", Value: 72, Unit: "/min", EffectiveAt: now, ReceivedAt: now}}); err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Errorf("after a commit: %d Ps, want the runtime's %d", got, base)
	}
}
