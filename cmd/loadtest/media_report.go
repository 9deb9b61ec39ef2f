package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
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
	fmt.Fprintln(tw, "phase\tconsults\tforwarded/s\tloss %\tdups\treordered\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tNACKs sent\tNACKs to pub\tkeyframe req\tserver µs/pkt\tserver cores\tserver MB\tloadtest cores\tlate frames\t")
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) }
	for _, r := range res {
		secs := r.window.Seconds()
		if secs <= 0 {
			secs = 1
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3f\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.1f\t%.2f\t%.0f\t%.2f\t%d\t\n",
			r.name, r.consults, float64(r.got)/secs, 100*r.loss(), r.dups, r.reordered,
			ms(r.lat.p50), ms(r.lat.p99), ms(r.lat.p999), ms(r.lat.mx),
			r.rtcp.nacksSent, r.rtcp.nacksReceived, r.rtcp.keyRequests,
			float64(r.perPacket())/1e3, r.cpu.Seconds()/secs, float64(r.rss)/(1<<20), r.selfCPU.Seconds()/secs, r.behind)
	}
	tw.Flush()
	for _, r := range res {
		if r.bad > 0 {
			fmt.Fprintf(w, "%s: %d packets not understood; first: %s\n", r.name, r.bad, r.firstErr)
		}
	}
	var floor, sfu *mediaResult
	for i := range res {
		switch res[i].name {
		case "bare forwarder":
			floor = &res[i]
		case "bedside":
			sfu = &res[i]
		}
	}
	if sfu == nil || sfu.got == 0 {
		return
	}
	perConsult := float64(sfu.got) / sfu.window.Seconds() / float64(sfu.consults)
	fmt.Fprintf(w, "bedside: %.0f packets/s forwarded per consult; at %.1f µs each, one server core forwards %.0f consults (target 50)\n",
		perConsult, float64(sfu.perPacket())/1e3, 1e6/(float64(sfu.perPacket())/1e3)/perConsult)
	if floor == nil || floor.got == 0 || floor.perPacket() == 0 {
		return
	}
	fmt.Fprintf(w, "bedside / bare forwarder: CPU per forwarded packet %.2f× (target ≤ 1.3); p99 %s ms against %s ms (added %s ms; target < 5 ms); loss %.3f%% against %.3f%% (target < 0.5%%)\n",
		float64(sfu.perPacket())/float64(floor.perPacket()), ms(sfu.lat.p99), ms(floor.lat.p99), ms(sfu.lat.p99-floor.lat.p99),
		100*sfu.loss(), 100*floor.loss())
}

// firstFields returns the first n space-separated fields of s.
func firstFields(s string, n int) string {
	f := strings.Fields(s)
	return strings.Join(f[:min(n, len(f))], " ")
}
