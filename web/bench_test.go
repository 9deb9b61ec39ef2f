package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// BenchmarkWeekView renders a busy physician's week for a scheduler, the
// busiest page: 7 days of 07:00-22:00 in 30-minute slots (210 slots), 120
// of them booked. It reports the 99th percentile besides the mean.
func BenchmarkWeekView(b *testing.B) {
	f := schedFixture(b)
	ctx := b.Context()
	var week []scheduling.WeeklyHours
	for d := time.Sunday; d <= time.Saturday; d++ {
		week = append(week, scheduling.WeeklyHours{Weekday: d, Start: 7 * 60, End: 22 * 60})
	}
	if err := f.st.SetAvailability(ctx, f.doc.ID, scheduling.Availability{Weekly: week, SlotLength: 30 * time.Minute, Buffer: 5 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	loc, _ := time.LoadLocation("Europe/London")
	monday := weekStart(time.Now().AddDate(0, 0, 7), loc)
	booked := 0
	for i := range 7 * 30 { // every half hour of the week; four in seven booked
		if i%7 >= 4 {
			continue
		}
		d, half := i/30, i%30
		start := time.Date(monday.Year(), monday.Month(), monday.Day()+d, 7, 30*half, 0, 0, loc)
		if _, err := f.st.BookAppointment(ctx, scheduling.Appointment{PhysicianID: f.doc.ID, PatientID: f.pat.ID,
			Start: start, End: start.Add(30 * time.Minute)}, store.Change{}); err != nil {
			b.Fatal(err)
		}
		booked++
	}
	if booked != 120 {
		b.Fatalf("booked %d visits, want 120", booked)
	}
	c := f.signIn(b, "sched@example.org")
	h := NewServer(Deps{Store: f.st, Secret: []byte("a test key of thirty-two bytes, or more")})
	req := httptest.NewRequest("GET", fmt.Sprintf("/schedule?physician=%d&patient=%d&week=%s", f.doc.ID, f.pat.ID, monday.Format(dateLayout)), nil)
	for _, ck := range c.Jar.Cookies(mustURL(f.srv.URL)) {
		req.AddCookie(ck)
	}
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(w, req)
		times = append(times, time.Since(t0))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// BenchmarkBookOverHTTP books distinct slots through POST /appointments
// from parallel clients, as schedulers do: slot check, the store's
// booking, a join link, the invite queued and the visit page rendered.
func BenchmarkBookOverHTTP(b *testing.B) {
	f := schedFixture(b)
	c := f.signIn(b, "sched@example.org")
	first := tomorrowAt(0, 0)
	var next atomic.Int64
	b.SetParallelism(4) // 8 clients on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			start := first.Add(time.Duration(i) * 30 * time.Minute)
			resp, err := c.PostForm(f.srv.URL+"/appointments", bookForm(f, start, ""))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("booking %d: status %d", i, resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bookings/s")
}
