package web

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// BenchmarkVisitRecord renders the record of a 30-minute visit whose
// devices sent five numerics a second (9,000 readings, one in fifty
// flagged), through the whole handler stack. It reports the 99th
// percentile of wall-clock time and of the request's own CPU time besides
// the mean CPU time of the process.
func BenchmarkVisitRecord(b *testing.B) {
	f := newFixture(b)
	ctx := b.Context()
	now := time.Now().UTC()
	start := now.Add(-35 * time.Minute)
	for _, st := range []struct {
		s  scheduling.Status
		at time.Time
	}{{scheduling.StatusArrived, start}, {scheduling.StatusFulfilled, start.Add(30 * time.Minute)}} {
		if _, err := f.st.SetAppointmentStatus(ctx, f.visit.ID, st.s, store.Change{ActorID: f.doc.ID, At: st.at}); err != nil {
			b.Fatal(err)
		}
	}
	codes := []struct {
		code, unit string
		v          float64
	}{{"8867-4", "/min", 72}, {"59408-5", "%", 97}, {"9279-1", "/min", 16}, {"8310-5", "Cel", 36.9}, {"8480-6", "mm[Hg]", 124}}
	var obs []store.Observation
	seq := int64(0)
	for s := range 30 * 60 {
		seq++
		for i, c := range codes {
			o := store.Observation{PatientID: f.pat.ID, DeviceID: f.devID, Seq: seq, Code: c.code, Value: c.v, Unit: c.unit,
				EffectiveAt: start.Add(time.Duration(s) * time.Second)}
			if (s*5+i)%50 == 0 {
				o.Flags = []string{"motion artefact"}
			}
			obs = append(obs, o)
		}
	}
	if err := f.st.AppendObservations(ctx, f.devID, seq, obs); err != nil {
		b.Fatal(err)
	}
	c := f.signIn(b, "doc@example.org")
	h := NewServer(Deps{Store: f.st, Secret: []byte("a test key of thirty-two bytes, or more")})
	req := httptest.NewRequest("GET", fmt.Sprintf("/visits/%d/record", f.visit.ID), nil)
	for _, ck := range c.Jar.Cookies(mustURL(f.srv.URL)) {
		req.AddCookie(ck)
	}
	times := make([]time.Duration, 0, b.N)
	cpus := make([]time.Duration, 0, b.N)
	// The handler runs on this goroutine; pinned to its thread, the
	// thread's CPU time is the request's (the collector's background work
	// on other threads is in cpu-ms/op only).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// A server writes the page to the connection through a small buffer;
	// the recorder would instead grow a new body to the page's size on
	// every request, which is garbage a real server does not make. One body
	// is kept and emptied instead.
	body := new(bytes.Buffer)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		body.Reset()
		w.Body = body
		c0 := threadCPU(b)
		t0 := time.Now()
		h.ServeHTTP(w, req)
		times = append(times, time.Since(t0))
		cpus = append(cpus, threadCPU(b)-c0)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(len(times)), "cpu-ms/op")
	slices.Sort(times)
	slices.Sort(cpus)
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cpus[len(cpus)*99/100].Microseconds())/1000, "p99-cpu-ms")
}

// cpuTime is the CPU time (user and system) the process has used: on a
// shared machine, a truer cost of a request than its wall-clock time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
