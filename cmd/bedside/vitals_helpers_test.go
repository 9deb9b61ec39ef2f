package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/store"
	"github.com/bedside-health/bedside/store/sqlite"
)

// deviceSocket streams FHIR observations to /ws/device as a device hub
// does, one envelope at a time, each waited on until acknowledged.
type deviceSocket struct {
	t    *testing.T
	conn *websocket.Conn
	seq  int64
}

func dialDevice(t *testing.T, ts *testServer) *deviceSocket {
	t.Helper()
	u := strings.Replace(ts.URL, "http://", "ws://", 1) + "/ws/device"
	h := http.Header{"Authorization": {"Bearer " + ts.demoDeviceToken(t)}}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(u, h)
	if err != nil {
		t.Fatalf("dial device socket: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	return &deviceSocket{t: t, conn: conn}
}

// send posts one observation and waits for the ack that covers it; a
// rejection fails the test.
func (d *deviceSocket) send(obs map[string]any) {
	d.t.Helper()
	d.seq++
	if err := d.conn.WriteJSON(map[string]any{"seq": d.seq, "observation": obs}); err != nil {
		d.t.Fatalf("device send: %v", err)
	}
	for {
		_ = d.conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // bounds a hang only
		var reply struct {
			Ack   int64  `json:"ack"`
			Error string `json:"error"`
		}
		if err := d.conn.ReadJSON(&reply); err != nil {
			d.t.Fatalf("device read: %v", err)
		}
		if reply.Error != "" {
			d.t.Fatalf("device message %d rejected: %s", d.seq, reply.Error)
		}
		if reply.Ack >= d.seq {
			return
		}
	}
}

func quantityObs(code, unit string, v float64, at time.Time) map[string]any {
	return map[string]any{
		"resourceType": "Observation", "status": "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
		"effectiveDateTime": at.UTC().Format(time.RFC3339Nano),
		"valueQuantity":     map[string]any{"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
	}
}

func bloodPressureObs(sys, dia float64, at time.Time) map[string]any {
	comp := func(code string, v float64) map[string]any {
		return map[string]any{
			"code":          map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}},
			"valueQuantity": map[string]any{"value": v, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
		}
	}
	return map[string]any{
		"resourceType": "Observation", "status": "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "85354-9"}}},
		"effectiveDateTime": at.UTC().Format(time.RFC3339Nano),
		"component":         []any{comp("8480-6", sys), comp("8462-4", dia)},
	}
}

// ecgObs is a lead II chunk: samples in µV (factor 0.001 mV), 4 ms apart;
// a nil sample is a gap (E).
func ecgObs(first time.Time, samples []*int) map[string]any {
	parts := make([]string, len(samples))
	for i, s := range samples {
		if s == nil {
			parts[i] = "E"
		} else {
			parts[i] = strconv.Itoa(*s)
		}
	}
	return map[string]any{
		"resourceType": "Observation", "status": "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "urn:oid:2.16.840.1.113883.6.24", "code": "131330"}}},
		"effectiveDateTime": first.UTC().Format(time.RFC3339Nano),
		"valueSampledData": map[string]any{
			"origin": map[string]any{"value": 0, "unit": "mV", "system": "http://unitsofmeasure.org", "code": "mV"},
			"period": 4, "factor": 0.001, "dimensions": 1, "data": strings.Join(parts, " "),
		},
	}
}

// visitID follows a join link's redirect to /visit/{id}.
func visitID(t *testing.T, link string) int {
	t.Helper()
	resp, err := client(t).Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	m := regexp.MustCompile(`/visit/(\d+)$`).FindStringSubmatch(resp.Header.Get("Location"))
	if m == nil {
		t.Fatalf("join link redirected to %q, want /visit/{id}", resp.Header.Get("Location"))
	}
	id, _ := strconv.Atoi(m[1])
	return id
}

// openConsult signs the physician in at base and opens the visit's
// consult page, waiting until its vitals socket is open.
func openConsult(t *testing.T, ts *testServer, b context.Context, base string, visit int) {
	t.Helper()
	err := chromedp.Do(b,
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.CSS("#email"), "dr.okafor@demo.bedside.test"),
		chromedp.SendKeys(chromedp.CSS("#password"), ts.demoPassword(t, "dr.okafor@demo.bedside.test")),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#visits")),
		chromedp.Navigate(fmt.Sprintf("%s/consult/%d", base, visit)),
	)
	if err != nil {
		t.Fatalf("physician opens the visit: %v", err)
	}
	waitJS(t, b, "vitals socket open", `/connected|live/.test(document.querySelector('#vitals-status').textContent)`, 20*time.Second)
}

// jsEval evaluates expr in the page and decodes its JSON result into v.
func jsEval(t *testing.T, b context.Context, expr string, v any) {
	t.Helper()
	s, err := chromedp.Run(b, chromedp.Evaluate[string](`JSON.stringify(`+expr+`)`))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("evaluate %s: %v (%s)", expr, err, s)
	}
}

// cutProxy forwards TCP connections to a server and can pull the network:
// cut closes every connection open through it and refuses new ones until
// restore.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go p.serve()
	return p
}

// URL is the proxy's base URL.
func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		// Checked and registered under the lock, so a cut drops every
		// connection it did not refuse.
		p.mu.Lock()
		var s net.Conn
		if !p.down {
			s, err = net.Dial("tcp", p.target)
		}
		if p.down || err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut drops every open connection and refuses new ones.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

// restore lets connections through again.
func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// testStore opens the running test server's own database beside it, for
// a test to look at what it stored or to change what a user holds; it is
// closed when the test ends.
func testStore(t *testing.T, ts *testServer) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(ts.Data, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// storedUser is the demo clinic's user with that email.
func storedUser(t *testing.T, db *sqlite.DB, email string) store.User {
	t.Helper()
	u, err := db.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("demo user %s: %v", email, err)
	}
	return u
}
