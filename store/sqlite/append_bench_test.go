package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// BenchmarkAppendConcurrent: 64 devices append one reading each at once,
// over and over, through the group commit, against the same appends each
// in a transaction of its own (the commit function called one by one).
// Compare ns/append within one run.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, mode := range []string{"group-commit", "one-transaction-each"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			db, err := Open(ctx, b.TempDir()+"/bench.db")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			p, err := db.CreateUser(ctx, store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
			if err != nil {
				b.Fatal(err)
			}
			const devices = 64
			ids := make([]int64, devices)
			for i := range ids {
				c, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: fmt.Appendf(nil, "d%d", i), UserID: p.ID, Name: "dev"})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = c.ID
			}
			var next, seq atomic.Int64
			t0 := time.Now()
			b.SetParallelism(devices / 2) // 2 cores: 64 goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				dev := ids[next.Add(1)%devices]
				for pb.Next() {
					s := seq.Add(1)
					obs := []store.Observation{{PatientID: p.ID, DeviceID: dev, Seq: s, Code: "8867-4", Value: 70, Unit: "/min", EffectiveAt: t0}}
					var err error
					if mode == "group-commit" {
						err = db.AppendObservations(ctx, dev, s, obs)
					} else {
						_, err = db.commitAppends(ctx, []appendReq{{dev, s, obs}})
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
