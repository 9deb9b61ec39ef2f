package main

import (
	"runtime"
	"sync"
	"time"

	"github.com/bedside-health/bedside/media"
	"github.com/bedside-health/bedside/metrics"
)

// newMetrics is the server's registry, with the process's own gauges.
func newMetrics() *metrics.Registry {
	r := metrics.NewRegistry()
	r.GaugeFunc("bedside_goroutines", "Goroutines of the server process.", func() int64 { return int64(runtime.NumGoroutine()) })
	r.GaugeFunc("bedside_heap_bytes", "Bytes of allocated heap objects.", func() int64 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	})
	metrics.RegisterSchedulerLatency(r)
	metrics.RegisterStoppedWorld(r)
	return r
}

// registerWriterMetrics exports how often the readings' commits starved
// in the idle scheduling class, for a store that commits there.
func registerWriterMetrics(r *metrics.Registry, st any) {
	w, ok := st.(interface{ WriterStarved() int64 })
	if !ok {
		return
	}
	r.GaugeFunc("bedside_reading_commits_starved", "Times since start a commit of device readings waited over half a second in the idle scheduling class (the CPUs were kept busy), and the commits moved to a thread at nice +10 for 30 s.", w.WriterStarved)
}

// trackStatser lists the figures of every media stream of the node.
type trackStatser interface {
	TrackStats() []media.TrackStats
}

// registerMediaMetrics exports the media streams' quality, aggregated by
// direction and kind so that the series stay few and name nobody: no
// visit, participant or track appears in a label.
func registerMediaMetrics(r *metrics.Registry, src trackStatser) {
	// One snapshot serves every family of a scrape.
	var mu sync.Mutex
	var at time.Time
	var snap []media.TrackStats
	stats := func() []media.TrackStats {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(at) > 500*time.Millisecond {
			snap, at = src.TrackStats(), now
		}
		return snap
	}
	dirs := []string{media.DirectionUp, media.DirectionDown}
	kinds := []string{"audio", "video"}
	// perStream folds a figure of each stream into one value per
	// direction and kind, starting from 0.
	perStream := func(fold func(acc float64, s media.TrackStats) float64) func() []metrics.Sample {
		return func() []metrics.Sample {
			acc := map[[2]string]float64{}
			for _, s := range stats() {
				k := [2]string{s.Direction, s.Kind}
				acc[k] = fold(acc[k], s)
			}
			out := make([]metrics.Sample, 0, len(dirs)*len(kinds))
			for _, d := range dirs {
				for _, k := range kinds {
					out = append(out, metrics.Sample{Values: []string{d, k}, Value: acc[[2]string{d, k}]})
				}
			}
			return out
		}
	}
	labels := []string{"direction", "kind"}
	r.GaugeCollector("bedside_media_streams", "Media streams by direction (up: received from publishers, down: sent to subscribers), kind and network quality level (good, fair, poor).",
		[]string{"direction", "kind", "level"}, func() []metrics.Sample {
			n := map[[3]string]float64{}
			for _, s := range stats() {
				n[[3]string{s.Direction, s.Kind, s.Level()}]++
			}
			var out []metrics.Sample
			for _, d := range dirs {
				for _, k := range kinds {
					for _, l := range []string{media.LevelGood, media.LevelFair, media.LevelPoor} {
						out = append(out, metrics.Sample{Values: []string{d, k, l}, Value: n[[3]string{d, k, l}]})
					}
				}
			}
			return out
		})
	r.GaugeCollector("bedside_media_bitrate_bits_per_second", "Total media bitrate by direction and kind, RTP headers included, over the last second or more.",
		labels, perStream(func(acc float64, s media.TrackStats) float64 { return acc + s.Bitrate }))
	r.GaugeCollector("bedside_media_loss_ratio_max", "The worst stream's share of packets lost (0 to 1), by direction and kind: up from the SFU's reception, down from subscribers' receiver reports.",
		labels, perStream(func(acc float64, s media.TrackStats) float64 { return max(acc, s.FractionLost) }))
	r.GaugeCollector("bedside_media_jitter_seconds_max", "The worst stream's interarrival jitter in seconds, by direction and kind.",
		labels, perStream(func(acc float64, s media.TrackStats) float64 { return max(acc, s.Jitter.Seconds()) }))
	r.GaugeCollector("bedside_media_rtt_seconds_max", "The longest round trip to a subscriber in seconds, by kind (down only; 0 until measured).",
		labels, perStream(func(acc float64, s media.TrackStats) float64 { return max(acc, s.RTT.Seconds()) }))
}
