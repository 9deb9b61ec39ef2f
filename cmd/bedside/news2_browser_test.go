package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	_ "modernc.org/sqlite" // the stored alert timeline is read back directly
)

// news2Set is one device message per NEWS2 measurement, from seq: a
// respiration rate of 22, SpO2 95 %, blood pressure 125/80, pulse 120 and
// 36.8 Cel, NEWS2 5 (band medium) on air and alert.
func news2Set(seq int) []string {
	at := time.Now().UTC().Format(time.RFC3339Nano)
	q := func(seq int, code string, v float64, unit string) string {
		return fmt.Sprintf(`{"seq":%d,"observation":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},"effectiveDateTime":%q,"valueQuantity":{"value":%v,"unit":%q,"system":"http://unitsofmeasure.org","code":%q}}}`,
			seq, code, at, v, unit, unit)
	}
	bp := fmt.Sprintf(`{"seq":%d,"observation":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"effectiveDateTime":%q,"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":125,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mm[Hg]","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}}`, seq+2, at)
	return []string{q(seq, "9279-1", 22, "/min"), q(seq+1, "59408-5", 95, "%"), bp, q(seq+3, "8867-4", 120, "/min"), q(seq+4, "8310-5", 36.8, "Cel")}
}

// TestBrowserNEWS2Alert: on the physician's consult page, the physician
// enters consciousness and air; the patient's hub then streams vitals
// scoring NEWS2 5; the panel's band changes to medium, exactly one alert
// banner appears, and acknowledging it is stored on the alert timeline.
func TestBrowserNEWS2Alert(t *testing.T) {
	chromium := chromiumPath(t)
	// A new band holds 3 s before it is announced rather than 30 (the
	// default): the alert below comes after the hold, whatever its length.
	ts := startServer(t, map[string]string{"BEDSIDE_NEWS2_BAND_HOLD": "3s"})
	link := bookFirstFree(t, ts)
	c := client(t)
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	m := regexp.MustCompile(`/visit/(\d+)$`).FindStringSubmatch(loc)
	if m == nil {
		t.Fatalf("join link led to %q (%d), want /visit/{id}", loc, resp.StatusCode)
	}
	visit, _ := strconv.Atoi(m[1])

	doctor := newBrowser(t, chromium)
	err = chromedp.Do(doctor,
		chromedp.Navigate(ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#email"), "dr.okafor@demo.bedside.test"),
		chromedp.SendKeys(chromedp.CSS("#password"), ts.demoPassword(t, "dr.okafor@demo.bedside.test")),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#visits")),
		chromedp.Navigate(fmt.Sprintf("%s/consult/%d", ts.URL, visit)),
	)
	if err != nil {
		t.Fatalf("physician: %v", err)
	}
	// With nothing measured yet the panel says so, not "Low risk" of a 0.
	waitJS(t, doctor, "NEWS2 panel has its snapshot", `document.querySelector('#news2-panel').dataset.empty === 'true' && document.querySelectorAll('#news2-params li').length === 7`, 20*time.Second)
	if ok, err := chromedp.Run(doctor, chromedp.Evaluate[bool](`document.querySelector('#news2-panel').dataset.band === 'none' && document.querySelector('#news2-total').textContent === '–' &&
		document.querySelector('#news2-band').textContent === 'no readings yet' && !/risk/i.test(document.querySelector('#news2-panel .news2-score').textContent)`)); err != nil || !ok {
		t.Fatalf("with no readings the NEWS2 panel shows a score or a risk (%v)", err)
	}
	// The overlay and the panel share the page's one vitals socket.
	waitJS(t, doctor, "overlay connected", `/^Vitals: (connected|live)/.test(document.querySelector('#vitals-status').textContent)`, 20*time.Second)
	if n := openSockets(t, ts, "vitals"); n != 1 {
		t.Fatalf("the consult page holds %d vitals sockets, want 1", n)
	}
	enterAlertOnAir(t, doctor)

	// The hub streams a set every 2 s until the test ends.
	h := map[string][]string{"Authorization": {"Bearer " + ts.demoDeviceToken(t)}}
	dev, _, err := websocket.DefaultDialer.Dial(strings.Replace(ts.URL, "http://", "ws://", 1)+"/ws/device", h)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	go func() {
		for {
			if _, _, err := dev.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for seq := 1; ; seq += 5 {
			for _, msg := range news2Set(seq) {
				if dev.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	// The new band holds 3 s (BEDSIDE_NEWS2_BAND_HOLD) before it is announced.
	waitJS(t, doctor, "band medium", `document.querySelector('#news2-panel').dataset.band === 'medium' && document.querySelector('#news2-total').textContent === '5'`, 30*time.Second)
	waitJS(t, doctor, "one alert banner", `document.querySelectorAll('#news2-alerts .news2-alert[data-state=raised]').length === 1`, 60*time.Second)
	banner := `document.querySelector('#news2-alerts .news2-alert')`
	if ok, err := chromedp.Run(doctor, chromedp.Evaluate[bool](`document.querySelectorAll('#news2-alerts .news2-alert').length === 1 && /band rose to medium/.test(`+banner+`.textContent)`)); err != nil || !ok {
		t.Fatalf("alert banners: not exactly one band alert (%v)", err)
	}
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#news2-alerts .news2-alert button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "banner acknowledged", banner+`.dataset.state === 'acknowledged'`, 15*time.Second)
	if ok, _ := chromedp.Run(doctor, chromedp.Evaluate[bool](`document.querySelectorAll('#news2-alerts .news2-alert').length === 1`)); !ok {
		t.Fatal("more than one alert banner after acknowledging")
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.Data, "bedside.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var by string
	err = db.QueryRow(`SELECT count(*), coalesce(max(by_ref), '') FROM alert_events WHERE state = 'acknowledged' AND rule = 'news2-band'`).Scan(&n, &by)
	if err != nil || n != 1 || !strings.HasPrefix(by, "User/") {
		t.Fatalf("stored acknowledgements: %d by %q (%v), want one by the physician", n, by, err)
	}
	// Each vitals socket upgrade is audited: the page opened exactly one.
	err = db.QueryRow(`SELECT count(*) FROM audit_events WHERE resource = ? AND outcome = 'success'`, fmt.Sprintf("Appointment/%d/vitals", visit)).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("vitals sockets opened for the visit: %d (%v), want 1", n, err)
	}
}

// openSockets reads the server's gauge of open WebSockets of a kind
// (bedside_websockets_open on /metrics, which loopback callers may read).
func openSockets(t *testing.T, ts *testServer, kind string) int {
	t.Helper()
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	m := regexp.MustCompile(`(?m)^bedside_websockets_open\{kind="` + kind + `"\} (\d+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// enterAlertOnAir enters on the consult page what no device measures, a
// patient alert and breathing air, and waits until it is saved.
func enterAlertOnAir(t *testing.T, doctor context.Context) {
	t.Helper()
	err := chromedp.Do(doctor,
		chromedp.SetValue(chromedp.CSS("#news2-consciousness"), "alert"),
		chromedp.SetValue(chromedp.CSS("#news2-oxygen"), "air"),
		chromedp.Click(chromedp.CSS("#news2-form button[type=submit]")),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "NEWS2 entries saved", `/^Saved/.test(document.querySelector('#news2-form-status').textContent)`, 15*time.Second)
}
