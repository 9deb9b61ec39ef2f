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

// TestServerRunsTwoPsACPU: the server runs with procsPerCPU Ps for each
// CPU of the runtime's default, however many times it starts in one
// process, and leaves a count GOMAXPROCS sets alone; readings commit
// through the lowered writer either way.
func TestServerRunsTwoPsACPU(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	base := runtime.GOMAXPROCS(0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.WriterLowered(); runtime.GOOS == "linux" && err != nil {
		t.Fatalf("the SQLite store's writer is not lowered: %v", err)
	}

	for range 2 {
		setProcs(func(string) string { return "" }, st, log)
		if got := runtime.GOMAXPROCS(0); got != procsPerCPU*base {
			t.Fatalf("%d Ps, want %d for the runtime's %d", got, procsPerCPU*base, base)
		}
	}
	runtime.GOMAXPROCS(3)
	setProcs(func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}, st, log)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("with GOMAXPROCS set to 3: %d Ps", got)
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
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("after a commit: %d Ps, want 3", got)
	}
}
