package main

import (
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
	email, password := "scheduler@demo.bedside.test", ts.demoPassword(t, "scheduler@demo.bedside.test")
	if err := chromedp.Do(b,
		chromedp.Navigate(ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Submit(chromedp.CSS("#password")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "week view", `location.pathname === '/schedule' && !!document.querySelector('#q') && document.readyState === 'complete'`, 10*time.Second)
	// A marker that a full page load would wipe, and a count of the times
	// htmx has finished wiring a new #main (it does so once the swap
	// settles, after which its forms submit by htmx).
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.sameDocument = true; window.mainLoads = 0;
		document.addEventListener('htmx:load', e => { if (e.detail.elt.id === 'main') window.mainLoads++; }); true`)); err != nil {
		t.Fatal(err)
	}
	// Active search: typing lists matching patients without submitting.
	if err := chromedp.Do(b, chromedp.SendKeys(chromedp.CSS("#q"), "silva")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "search results", `[...document.querySelectorAll('#patient-results a')].some(a => a.textContent.includes('Maria Silva'))`, 10*time.Second)
	if err := chromedp.Do(b, chromedp.Click(chromedp.CSS(`#patient-results a`))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, b, "booking for Maria", `(document.querySelector('#booking-for')||{}).textContent?.startsWith('Maria Silva') && window.mainLoads > 0`, 10*time.Second)
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.sameDocument = true`)); err != nil {
		t.Fatal(err)
	}
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
	waitJS(t, b, "visit page with its join link", `!!document.querySelector('#join-link') && location.pathname.startsWith('/appointments/')`, 10*time.Second)
	same, err := chromedp.Run(b, chromedp.Evaluate[bool](`window.sameDocument === true`))
	if err != nil || !same {
		t.Fatalf("the page reloaded to book (sameDocument %v, %v)", same, err)
	}
	waitJS(t, b, "focus on the confirmation", `document.activeElement.classList.contains('flash') && document.activeElement.textContent.startsWith('Booked')`, 5*time.Second)
	when, _ := chromedp.Run(b, chromedp.Evaluate[string](`document.querySelector('#when').textContent`))
	start, _ := time.Parse(time.RFC3339, slot)
	london, _ := time.LoadLocation("Europe/London")
	if want := start.In(london).Format("Mon 2 Jan 2006, 15:04"); !strings.Contains(when, want) {
		t.Errorf("visit page says %q, want %q", when, want)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}
