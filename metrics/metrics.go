package metrics

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families in the order they were made.
type Registry struct {
	mu       sync.Mutex
	families []*family
	names    map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{names: map[string]bool{}} }

type family struct {
	name, help, kind string
	labels           []string
	mu               sync.RWMutex
	series           map[string]*atomic.Int64 // by joined label values
	values           map[string][]string
	fn               func() int64 // a gauge read when written out
	collect          func() []Sample
	histogram        func() Histogram
}

func (r *Registry) add(name, help, kind string, labels []string) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[name] {
		panic("metrics: " + name + " registered twice")
	}
	r.names[name] = true
	f := &family{name: name, help: help, kind: kind, labels: labels, series: map[string]*atomic.Int64{}, values: map[string][]string{}}
	r.families = append(r.families, f)
	return f
}

// Counter is a family of monotonically increasing counts.
type Counter struct{ f *family }

// Gauge is a family of values that go up and down.
type Gauge struct{ f *family }

// Counter registers a counter family with the given label names.
func (r *Registry) Counter(name, help string, labels ...string) Counter {
	return Counter{r.add(name, help, "counter", labels)}
}

// Gauge registers a gauge family with the given label names.
func (r *Registry) Gauge(name, help string, labels ...string) Gauge {
	return Gauge{r.add(name, help, "gauge", labels)}
}

// GaugeFunc registers an unlabelled gauge whose value fn gives at each scrape.
func (r *Registry) GaugeFunc(name, help string, fn func() int64) {
	r.add(name, help, "gauge", nil).fn = fn
}

// Sample is one series of a collected gauge family: its label values, in
// the order of the family's label names, and its value.
type Sample struct {
	Values []string
	Value  float64
}

// GaugeCollector registers a gauge family whose series fn lists at each
// scrape, for figures that are read from elsewhere rather than counted
// here. Each Sample must carry one value per label name.
func (r *Registry) GaugeCollector(name, help string, labels []string, fn func() []Sample) {
	r.add(name, help, "gauge", labels).collect = fn
}

// get is the series of the given label values, made on first use.
func (f *family) get(values []string) *atomic.Int64 {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", f.name, len(f.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	f.mu.RLock()
	v := f.series[key]
	f.mu.RUnlock()
	if v != nil {
		return v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v = f.series[key]; v == nil {
		v = new(atomic.Int64)
		f.series[key] = v
		f.values[key] = slices.Clone(values)
	}
	return v
}

// Inc adds one to the series of the given label values.
func (c Counter) Inc(values ...string) { c.f.get(values).Add(1) }

// Add adds n (n >= 0) to the series of the given label values.
func (c Counter) Add(n int64, values ...string) {
	if n > 0 {
		c.f.get(values).Add(n)
	}
}

// Value is the current count of the given label values.
func (c Counter) Value(values ...string) int64 { return c.f.get(values).Load() }

// Add moves the gauge of the given label values by n.
func (g Gauge) Add(n int64, values ...string) { g.f.get(values).Add(n) }

// Set sets the gauge of the given label values.
func (g Gauge) Set(n int64, values ...string) { g.f.get(values).Store(n) }

// Value is the gauge's current value for the given label values.
func (g Gauge) Value(values ...string) int64 { return g.f.get(values).Load() }

// WriteText writes every family in the Prometheus text format (0.0.4),
// series sorted by label values.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	families := slices.Clone(r.families)
	r.mu.Unlock()
	var b strings.Builder
	for _, f := range families {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, escapeHelp(f.help), f.name, f.kind)
		if f.fn != nil {
			fmt.Fprintf(&b, "%s %d\n", f.name, f.fn())
			continue
		}
		if f.collect != nil {
			f.writeSamples(&b)
			continue
		}
		if f.histogram != nil {
			f.writeHistogram(&b)
			continue
		}
		f.mu.RLock()
		keys := make([]string, 0, len(f.series))
		for k := range f.series {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b.WriteString(f.name)
			f.writeLabels(&b, f.values[k])
			b.WriteString(" " + strconv.FormatInt(f.series[k].Load(), 10) + "\n")
		}
		f.mu.RUnlock()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeSamples writes a collected family's series, sorted by label values.
func (f *family) writeSamples(b *strings.Builder) {
	samples := f.collect()
	slices.SortFunc(samples, func(x, y Sample) int { return slices.Compare(x.Values, y.Values) })
	for _, s := range samples {
		if len(s.Values) != len(f.labels) {
			panic(fmt.Sprintf("metrics: %s takes %d label values, got %d", f.name, len(f.labels), len(s.Values)))
		}
		b.WriteString(f.name)
		f.writeLabels(b, s.Values)
		b.WriteString(" " + strconv.FormatFloat(s.Value, 'g', -1, 64) + "\n")
	}
}

// writeLabels writes {name="value",...}, or nothing for a family without
// labels.
func (f *family) writeLabels(b *strings.Builder, values []string) {
	if len(f.labels) == 0 {
		return
	}
	b.WriteByte('{')
	for i, l := range f.labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l + `="` + escapeValue(values[i]) + `"`)
	}
	b.WriteByte('}')
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}
