package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

// mediaReport prints each phase, the server's ratios to the bare
// forwarder's, and the consults per core the server's figures project.
func mediaReport(w io.Writer, c mediaConfig, res []mediaResult) {
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	inter, key := frameSizes()
	fmt.Fprintf(w, "media: %d consults of two participants, each sending VP8 %d kbit/s at %d fps (frames of %d bytes, a %d-byte keyframe every %d or on request) and Opus (%d bytes per %s); %s window after %s\n",
		c.consults, videoBitrate/1000, videoFPS, inter, key, keyframeEvery, audioPayload, audioFrame, c.duration, c.warmup)
	fmt.Fprintf(w, "%s, %d CPUs, %s %s/%s, load average %s\n", host, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, firstFields(string(load), 3))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tround\tconsults\tforwarded/s\tloss %\tvideo loss %\taudio loss %\tlongest gap ms\tdups\treordered\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tNACKs sent\tNACKs to pub\tkeyframe req\tserver µs/pkt\tserver cores\tserver MB\tloadtest cores\tlate frames\tUDP rcvbuf drops\t")
	for _, r := range res {
		secs, wall := r.window.Seconds(), r.wall.Seconds()
		if secs <= 0 {
			secs = 1
		}
		if wall <= 0 {
			wall = secs
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.3f\t%.3f\t%.3f\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.1f\t%.2f\t%.0f\t%.2f\t%d\t%d\t\n",
			r.name, r.round, r.consults, float64(r.got)/secs, 100*r.loss(), 100*r.videoLoss(), 100*r.audioLoss(), msString(r.longestGap), r.dups, r.reordered,
			msString(r.lat.p50), msString(r.lat.p99), msString(r.lat.p999), msString(r.lat.mx),
			r.rtcp.nacksSent, r.rtcp.nacksReceived, r.rtcp.keyRequests,
			float64(r.perPacket())/1e3, r.cpu.Seconds()/wall, float64(r.rss)/(1<<20), r.selfCPU.Seconds()/wall, r.behind, r.rcvbufErrs)
	}
	tw.Flush()
	for _, r := range res {
		if r.stalled > 0 {
			fmt.Fprintf(w, "%s, round %d: %d streams delivered nothing for 2 s after the window; what they had not delivered is counted lost\n", r.name, r.round, r.stalled)
		}
		if r.bad > 0 {
			fmt.Fprintf(w, "%s: %d packets not understood; first: %s\n", r.name, r.bad, r.firstErr)
		}
	}
	// A round compares like with like only if both delivered the load:
	// when either lost packets (video paused by the server's congestion
	// control, or a forwarder swamped by the machine), its CPU is spread
	// over fewer packets.
	var ratios, clean []float64
	var floor *mediaResult
	for i := range res {
		r := &res[i]
		switch {
		case r.name == phaseBare:
			floor = r
		case r.name == phaseServer && r.got > 0:
			perConsult := float64(r.got) / r.window.Seconds() / float64(r.consults)
			perPkt := float64(r.perPacket()) / 1e3
			fmt.Fprintf(w, "round %d: bedside forwards %.0f packets/s per consult at %.1f µs each: %.0f consults per server core (target 50)\n",
				r.round, perConsult, perPkt, 1e6/perPkt/perConsult)
			if floor == nil || floor.round != r.round || floor.perPacket() == 0 {
				continue
			}
			ratio := float64(r.perPacket()) / float64(floor.perPacket())
			ratios = append(ratios, ratio)
			comparable := r.loss() < comparableLoss && floor.loss() < comparableLoss
			note := ""
			if comparable {
				clean = append(clean, ratio)
			} else {
				note = " [not comparable: a phase lost packets]"
			}
			fmt.Fprintf(w, "round %d: bedside / bare forwarder: CPU per forwarded packet %.2f× (target ≤ 1.3); p99 %s ms against %s ms (added %s ms; target < 5 ms); loss %.3f%% against %.3f%% (target < 0.5%%)%s\n",
				r.round, ratio, msString(r.lat.p99), msString(floor.lat.p99), msString(r.lat.p99-floor.lat.p99), 100*r.loss(), 100*floor.loss(), note)
		}
	}
	if len(ratios) > 1 {
		fmt.Fprintf(w, "median CPU per forwarded packet, bedside / bare forwarder, over %d rounds: %s\n", len(ratios), medianRange(ratios, "×"))
	}
	if len(clean) > 0 && len(clean) < len(ratios) {
		fmt.Fprintf(w, "over the %d comparable rounds: %s\n", len(clean), medianRange(clean, "×"))
	}
}

// comparableLoss is the loss under which a phase counts as having carried
// the whole load.
const comparableLoss = 0.005

// medianRange formats the median of v, followed by unit, and its range.
// It sorts v.
func medianRange(v []float64, unit string) string {
	slices.Sort(v)
	n := len(v)
	return fmt.Sprintf("%.2f%s (from %.2f to %.2f)", (v[(n-1)/2]+v[n/2])/2, unit, v[0], v[n-1])
}

// firstFields returns the first n space-separated fields of s.
func firstFields(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}
