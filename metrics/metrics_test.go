package metrics

import (
	"strings"
	"sync"
	"testing"
)

func TestWriteText(t *testing.T) {
	r := NewRegistry()
	req := r.Counter("bedside_http_requests_total", "HTTP requests by route and status class.", "route", "code")
	conns := r.Gauge("bedside_websockets", "Open WebSockets by kind.", "kind")
	r.GaugeFunc("bedside_up", "Always 1 while serving.", func() int64 { return 1 })
	r.GaugeCollector("bedside_ratio", "A figure read at each scrape.", []string{"kind"}, func() []Sample {
		return []Sample{{Values: []string{"video"}, Value: 0.25}, {Values: []string{"audio"}, Value: 1.5e6}}
	})
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); req.Inc("GET /schedule", "2xx") }()
	}
	wg.Wait()
	req.Add(3, `GET /x"y`, "4xx")
	conns.Add(2, "call")
	conns.Add(-1, "call")
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP bedside_http_requests_total HTTP requests by route and status class.
# TYPE bedside_http_requests_total counter
bedside_http_requests_total{route="GET /schedule",code="2xx"} 100
bedside_http_requests_total{route="GET /x\"y",code="4xx"} 3
# HELP bedside_websockets Open WebSockets by kind.
# TYPE bedside_websockets gauge
bedside_websockets{kind="call"} 1
# HELP bedside_up Always 1 while serving.
# TYPE bedside_up gauge
bedside_up 1
# HELP bedside_ratio A figure read at each scrape.
# TYPE bedside_ratio gauge
bedside_ratio{kind="audio"} 1.5e+06
bedside_ratio{kind="video"} 0.25
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if req.Value("GET /schedule", "2xx") != 100 {
		t.Error("Value")
	}
}

func TestMisuse(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("x_total", "x", "a")
	for name, f := range map[string]func(){
		"wrong label count": func() { c.Inc() },
		"registered twice":  func() { r.Counter("x_total", "x") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}
