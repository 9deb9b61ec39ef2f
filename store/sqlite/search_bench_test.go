package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/bedside-health/bedside/store"
)

// BenchmarkSearchByCode searches a patient's readings by code, as the FHIR
// API's Observation search does, when five numerics come every second for
// three days and a blood-pressure panel once a day: the panel's code
// alone, in all and in one day; the panel as one; and a numeric, which
// has readings in every minute, in one hour and in all. Each search counts its
// readings and reads the first page of 100. The readings are rows, as a
// store kept them before packs (layout=rows), or packs of a second's
// readings each, as a device streams them (layout=packs). Reports the
// process's CPU time per search (cpu-ms/op).
func BenchmarkSearchByCode(b *testing.B) {
	for _, layout := range []string{"rows", "packs"} {
		b.Run("layout="+layout, func(b *testing.B) { benchSearchByCode(b, layout == "packs") })
	}
}

func benchSearchByCode(b *testing.B, packed bool) {
	ctx := context.Background()
	db, p := withPatient(b)
	const days = 3
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if packed {
		// A second's readings a call, as a device streams them.
		var batch []appendReq
		for t := range days * 86400 {
			at := t0.Add(time.Duration(t) * time.Second)
			var obs []store.Observation
			for _, c := range []string{"8867-4", "59408-5", "9279-1", "8310-5", "2339-0"} {
				obs = append(obs, store.Observation{PatientID: p.ID, Code: c, Value: float64(70 + t%7), Unit: "u", EffectiveAt: at})
			}
			if t%86400 == 36000 {
				for _, c := range []string{store.CodeSystolic, store.CodeDiastolic} {
					obs = append(obs, store.Observation{PatientID: p.ID, Code: c, Value: 120, Unit: "mm[Hg]", EffectiveAt: at.Add(500 * time.Millisecond)})
				}
			}
			if batch = append(batch, appendReq{0, 0, obs}); len(batch) == maxAppendBatch || t == days*86400-1 {
				if _, err := db.commitAppends(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	} else {
		benchSearchRows(b, db, p.ID, days, t0)
	}
	if _, err := db.w.ExecContext(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	day := t0.Add(24 * time.Hour)
	for _, c := range []struct {
		name string
		q    store.ObservationQuery
		want int
	}{
		{"sparse", store.ObservationQuery{Codes: []string{store.CodeSystolic}}, days},
		{"sparse-day", store.ObservationQuery{Codes: []string{store.CodeSystolic}, From: day, To: day.Add(24 * time.Hour)}, 1},
		{"panels", store.ObservationQuery{Codes: []string{store.CodeSystolic, store.CodeDiastolic}, Panels: true}, days},
		{"dense-hour", store.ObservationQuery{Codes: []string{"8867-4"}, From: day, To: day.Add(time.Hour)}, 3600},
		{"dense", store.ObservationQuery{Codes: []string{"8867-4"}}, days * 86400},
	} {
		b.Run(c.name, func(b *testing.B) {
			q := c.q
			q.PatientID = p.ID
			cpu0 := processCPU()
			for b.Loop() {
				_, total, err := db.SearchObservations(ctx, q)
				if err != nil || total != c.want {
					b.Fatal(err, total)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// benchSearchRows stores the readings of BenchmarkSearchByCode as rows,
// in the order a device streams them, and the minutes with readings of
// each code, as the commits would have added them.
func benchSearchRows(b *testing.B, db *DB, patient int64, days int, t0 time.Time) {
	ctx := context.Background()
	if _, err := db.w.ExecContext(ctx, `WITH RECURSIVE s(t) AS (SELECT 0 UNION ALL SELECT t + 1 FROM s WHERE t + 1 < ?2)
		INSERT INTO observations (patient_id, device_id, seq, code, value, unit, effective_at, received_at, flags)
		SELECT ?1, 0, 0, c.value, 70 + t % 7, 'u', ?3 + t * 1000, ?3 + t * 1000, ''
		FROM s, json_each('["8867-4","59408-5","9279-1","8310-5","2339-0"]') AS c
		UNION ALL
		SELECT ?1, 0, 0, c.value, 120, 'mm[Hg]', ?3 + t * 1000 + 500, ?3 + t * 1000 + 500, ''
		FROM s, json_each('["8480-6","8462-4"]') AS c WHERE t % 86400 = 36000
		ORDER BY 7, 4`, patient, days*86400, t0.UnixMilli()); err != nil {
		b.Fatal(err)
	}
	if _, err := db.w.ExecContext(ctx, `INSERT OR IGNORE INTO observation_minutes (patient_id, code, minute)
		SELECT patient_id, code, effective_at / 60000 FROM observations`); err != nil {
		b.Fatal(err)
	}
}
