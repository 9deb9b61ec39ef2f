package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/storetest"
)

func openTemp(t *testing.T) store.Store {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "data", "bedside.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestContract(t *testing.T) { storetest.Run(t, openTemp) }

func TestFilesOwnerOnlyAndMigrationsIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "bedside.db")
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := db.CreateUser(ctx, store.User{Email: "a@example.org", Name: "A", Role: store.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %o, want %o", p, got, want)
		}
	}
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if got, err := db.UserByID(ctx, u.ID); err != nil || got.Email != "a@example.org" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}

// BenchmarkBookConcurrent measures booking throughput with concurrent
// clients, each booking distinct slots.
func BenchmarkBookConcurrent(b *testing.B) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "bedside.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	d, _ := db.CreateUser(ctx, store.User{Email: "d@example.org", Name: "D", Role: store.RolePhysician})
	p, _ := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var next int64
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			<-mu
			i := next
			next++
			mu <- struct{}{}
			s := base.Add(time.Duration(i) * 30 * time.Minute)
			if _, err := db.BookAppointment(ctx, scheduling.Appointment{PhysicianID: d.ID, PatientID: p.ID, Start: s, End: s.Add(30 * time.Minute)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
