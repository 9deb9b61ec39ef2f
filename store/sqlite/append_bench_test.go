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
			db, p := withPatient(b)
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

// BenchmarkCommitSlot is one slot's commit at 1,000 streaming patients
// (vitals.ServeDevice): 250 devices, each of its own patient, append the
// readings of an ack interval (five numerics a second) and advance their
// sequence by the fifteen messages a second of that interval, in one
// transaction. The table starts with a few minutes of every patient's
// readings, so the indexes are as deep as a ward's. Reports the process's
// CPU time per slot commit (cpu-ms/op) and per second of readings
// (cpu-ms/s: what the slot's patients cost a second at that interval)
// beside the wall clock, which on a shared machine mostly measures load.
// relayed,interval=1s is the same with every device a relay (a patient's
// browser) whose readings all come from a Bluetooth device it names.
func BenchmarkCommitSlot(b *testing.B) {
	for _, every := range []int{1, 2} {
		b.Run(fmt.Sprintf("interval=%ds", every), func(b *testing.B) { benchCommitSlot(b, every, false) })
	}
	b.Run("relayed,interval=1s", func(b *testing.B) { benchCommitSlot(b, 1, true) })
}

// benchCommitSlot commits slots of every seconds of readings each, with
// relayed, each device's from a Bluetooth device it relays.
func benchCommitSlot(b *testing.B, every int, relayed bool) {
	ctx := context.Background()
	db, err := Open(ctx, b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const devices, perSecond, history = 250, 15, 120 // seconds of readings before the benchmark
	codes := [...]struct{ code, unit string }{{"8867-4", "/min"}, {"59408-5", "%"}, {"9279-1", "/min"}, {"8310-5", "Cel"}, {"2339-0", "mg/dL"}}
	type dev struct{ id, patient, seq, relayed int64 }
	devs := make([]dev, devices)
	for i := range devs {
		p, err := db.CreateUser(ctx, store.User{Email: fmt.Sprintf("p%d@example.org", i), Name: "P", Role: store.RolePatient})
		if err != nil {
			b.Fatal(err)
		}
		c, err := db.CreateCredential(ctx, store.Credential{Kind: store.CredentialDevice, TokenHash: fmt.Appendf(nil, "d%d", i), UserID: p.ID, Name: "dev"})
		if err != nil {
			b.Fatal(err)
		}
		devs[i] = dev{id: c.ID, patient: p.ID}
		if relayed {
			rd, err := db.RelayedDevice(ctx, c.ID, "Polar H10")
			if err != nil {
				b.Fatal(err)
			}
			devs[i].relayed = rd.ID
		}
	}
	t0 := time.Now().Add(-time.Hour)
	// slot is the commit of seconds [s, s+n).
	slot := func(s, n int) []appendReq {
		batch := make([]appendReq, len(devs))
		for i := range devs {
			d := &devs[i]
			obs := make([]store.Observation, 0, n*len(codes))
			for k := range n {
				at := t0.Add(time.Duration(s+k) * time.Second)
				for j, c := range codes {
					obs = append(obs, store.Observation{PatientID: d.patient, Seq: d.seq + int64(j)*3 + 1, Code: c.code, Value: 70 + float64((s+k)%7), Unit: c.unit, EffectiveAt: at, Relayed: d.relayed})
				}
				d.seq += perSecond
			}
			batch[i] = appendReq{d.id, d.seq, obs}
		}
		return batch
	}
	for s := 0; s < history; s += every {
		if _, err := db.commitAppends(ctx, slot(s, every)); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := processCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		each, err := db.commitAppends(ctx, slot(history+i*every, every))
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range each {
			if e != nil {
				b.Fatal(e)
			}
		}
	}
	b.StopTimer()
	perCommit := float64(processCPU()-cpu0) / float64(time.Millisecond) / float64(b.N)
	b.ReportMetric(perCommit, "cpu-ms/op")
	b.ReportMetric(perCommit/float64(every), "cpu-ms/s")
}

// BenchmarkSampleObservations samples a patient's readings as the visit
// record (30 minutes by the minute) and the chart (a day in 120 spans) do,
// when four codes come every second and a fifth is sparse (every 15
// minutes, and in the day every 4 hours): spans without the sparse code
// cost most. The readings come a second's in each call, as a device
// streams them, and are read as packs (layout=packs) or, unpacked, as
// the rows a store kept before packs (layout=rows). Reports the process's
// CPU time per sample (cpu-ms/op).
func BenchmarkSampleObservations(b *testing.B) {
	for _, c := range []struct {
		name         string
		length, span time.Duration
		sparse       time.Duration
	}{
		{"record", 30 * time.Minute, time.Minute, 15 * time.Minute},
		{"day", 24 * time.Hour, 12 * time.Minute, 4 * time.Hour},
	} {
		for _, layout := range []string{"rows", "packs"} {
			b.Run(c.name+"/layout="+layout, func(b *testing.B) {
				ctx := context.Background()
				db, p := withPatient(b)
				t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
				var batch []appendReq
				for s := time.Duration(0); s < c.length; s += time.Second {
					var obs []store.Observation
					for _, code := range []string{"8867-4", "59408-5", "9279-1", "2339-0"} {
						obs = append(obs, store.Observation{PatientID: p.ID, Code: code, Value: 70, Unit: "u", EffectiveAt: t0.Add(s)})
					}
					if s%c.sparse == 0 {
						obs = append(obs, store.Observation{PatientID: p.ID, Code: "8480-6", Value: 120, Unit: "mm[Hg]", EffectiveAt: t0.Add(s)})
					}
					if batch = append(batch, appendReq{0, 0, obs}); len(batch) == maxAppendBatch || s+time.Second >= c.length {
						if _, err := db.commitAppends(ctx, batch); err != nil {
							b.Fatal(err)
						}
						batch = batch[:0]
					}
				}
				if layout == "rows" {
					unpack(b, db)
				}
				benchSample(b, db, p.ID, t0, c.length, c.span)
			})
		}
	}
}

// benchSample samples a patient's readings of [t0, t0+length) by span.
func benchSample(b *testing.B, db *DB, patient int64, t0 time.Time, length, span time.Duration) {
	ctx := context.Background()
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		got, _, err := db.SampleObservations(ctx, patient, t0, t0.Add(length), span)
		if err != nil || len(got) == 0 {
			b.Fatal(err, len(got))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// withPatient opens a store of its own for t, with one patient.
func withPatient(t testing.TB) (*DB, store.User) {
	t.Helper()
	db := openAt(t, t.TempDir()+"/bedside.db")
	p, err := db.CreateUser(context.Background(), store.User{Email: "p@example.org", Name: "P", Role: store.RolePatient})
	if err != nil {
		t.Fatal(err)
	}
	return db, p
}
