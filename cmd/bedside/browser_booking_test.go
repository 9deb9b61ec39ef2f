package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserBooking drives the scheduler's pages in Chromium with the
// keyboard and htmx: find a patient by typing, change week, book a slot,
// and see the visit, all without the page reloading.
func TestBrowserBooking(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	b := newBrowser(t, chromium)
	signInScheduler(t, ts, b, "/schedule")
	choosePatient(t, b, "silva", "Maria Silva")
	// Next week, by htmx: the label changes and the document stays.
	label, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('#week-label').textContent`))
	if err != nil {
		t.Fatal(err)
	}
	loads, err := chromedp.Run(b, chromedp.Evaluate[int](`window.mainLoads`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS(`.weeknav a:last-child`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "next week shown", `document.querySelector('#week-label').textContent !== `+jsString(label)+
		` && window.sameDocument === true && window.mainLoads > `+strconv.Itoa(loads), 10*time.Second)
	// Book the first free slot from the keyboard: focus it and press Enter.
	slot, err := chromedp.Run(b, chromedp.Evaluate[string](`(() => { const s = document.querySelector('button.slot.free'); s.focus(); return s.value; })()`))
	if err != nil || slot == "" {
		t.Fatalf("no free slot: %v", err)
	}
	if err := chromedp.Do(b, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitBookedInPlace(t, b)
	waitJS(t, b, "focus on the confirmation", `document.activeElement.classList.contains('flash') && document.activeElement.textContent.startsWith('Booked')`, 5*time.Second)
	when, _ := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('#when').textContent`))
	start, _ := time.Parse(time.RFC3339, slot)
	london, _ := time.LoadLocation("Europe/London")
	if want := start.In(london).Format("Mon 2 Jan 2006, 15:04"); !strings.Contains(when, want) {
		t.Errorf("visit page says %q, want %q", when, want)
	}
}

// TestBrowserDayView books from the day across physicians: choose the
// patient, then press a free time in the second physician's column, all
// without the page reloading.
func TestBrowserDayView(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, nil)
	b := newBrowser(t, chromium)
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	// Two days ahead, past every physician's notice; the demo physicians
	// work every day.
	day := time.Now().In(london).AddDate(0, 0, 2).Format(time.DateOnly)
	signInScheduler(t, ts, b, "/schedule/day?date="+day)
	choosePatient(t, b, "silva", "Maria Silva")
	const column = `[...document.querySelectorAll('section.day')].find(s => s.getAttribute('aria-label') === 'Dr Ken Tanaka')`
	slot, err := chromedp.Run(b, chromedp.Evaluate[string](`(() => { const s = `+column+`.querySelector('button.slot.free'); s.focus(); return s.value; })()`))
	if err != nil || slot == "" {
		t.Fatalf("no free time with Dr Tanaka on %s: %v", day, err)
	}
	if err := chromedp.Do(b, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitBookedInPlace(t, b)
	text, err := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('#main').innerText`))
	if err != nil {
		t.Fatal(err)
	}
	start, err := time.Parse(time.RFC3339, slot)
	if err != nil {
		t.Fatalf("slot value %q: %v", slot, err)
	}
	if want := start.In(london).Format("Mon 2 Jan 2006, 15:04"); !strings.Contains(text, want) || !strings.Contains(text, "Dr Ken Tanaka") {
		t.Errorf("visit page does not show the visit with Dr Ken Tanaka at %s:\n%s", want, text)
	}
}

// signInScheduler signs the demo scheduler in, opens page, and marks the
// document: window.sameDocument (a full page load wipes it), and
// window.mainLoads and window.resultLoads, the count of times htmx has
// finished wiring a new #main or patient list (it does so once a swap
// settles; only then do their links and forms go by htmx).
func signInScheduler(t *testing.T, ts *testServer, b context.Context, page string) {
	t.Helper()
	email := "scheduler@demo.bedside.test"
	if err := chromedp.Do(b,
		chromedp.Navigate(ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), ts.demoPassword(t, email)),
		chromedp.Submit(chromedp.CSS("#password")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "signed in", `location.pathname === '/schedule' && document.readyState === 'complete'`, 10*time.Second)
	if page != "/schedule" {
		if err := chromedp.Do(b, chromedp.Navigate(ts.URL+page)); err != nil {
			t.Fatal(err)
		}
	}
	waitJS(t, b, "the page", `!!document.querySelector('#q') && document.readyState === 'complete'`, 10*time.Second)
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.sameDocument = true; window.mainLoads = 0; window.resultLoads = 0;
		document.addEventListener('htmx:load', e => {
			if (e.detail.elt.id === 'main') window.mainLoads++;
			if (e.detail.elt.id === 'patient-results') window.resultLoads++;
		}); true`)); err != nil {
		t.Fatal(err)
	}
}

// choosePatient types query into the patient search, which lists matches
// as the user types, and picks the one named name; the page swaps in place.
func choosePatient(t *testing.T, b context.Context, query, name string) {
	t.Helper()
	if err := chromedp.Do(b, chromedp.SendKeys(chromedp.CSS("#q"), query)); err != nil {
		t.Fatal(err)
	}
	match := `[...document.querySelectorAll('#patient-results a')].find(a => a.textContent.includes(` + jsString(name) + `))`
	waitJS(t, b, "search results", "!!"+match+" && window.resultLoads > 0", 10*time.Second)
	loads, err := chromedp.Run(b, chromedp.Evaluate[int](`window.mainLoads`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](match+`.click(); true`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "booking for "+name, `(document.querySelector('#booking-for')||{}).textContent?.startsWith(`+jsString(name)+
		`) && window.sameDocument === true && window.mainLoads > `+strconv.Itoa(loads), 10*time.Second)
}

// waitBookedInPlace waits for the visit page with its join link, reached
// without a page load.
func waitBookedInPlace(t *testing.T, b context.Context) {
	t.Helper()
	waitJS(t, b, "visit page with its join link", `!!document.querySelector('#join-link') && location.pathname.startsWith('/appointments/')`, 10*time.Second)
	if same, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.sameDocument === true`)); err != nil || !same {
		t.Fatalf("the page reloaded to book (sameDocument %v, %v)", same, err)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}
