package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/bedside-health/bedside/signaling/sigclient"
)

// TestConnectivityCheck: a patient's browser session completes the check
// (a data channel to the SFU, echoed), and an anonymous caller cannot.
func TestConnectivityCheck(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res, err := sigclient.CheckConnectivity(ctx, f.srv.URL, f.cookieHeader(f.joinClient(t, f.visit)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.RTT <= 0 || res.RTT > 5*time.Second {
		t.Errorf("round trip %v", res.RTT)
	}
	if res.Pair.Local == nil || res.Pair.Local.Typ != webrtc.ICECandidateTypeHost || res.Pair.Remote.Protocol != webrtc.ICEProtocolUDP {
		t.Errorf("on loopback the check connected by %+v, want a direct UDP pair", res.Pair)
	}

	if _, err := sigclient.CheckConnectivity(ctx, f.srv.URL, nil, nil, nil); !errors.Is(err, sigclient.ErrCheckRefused) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("anonymous check: %v, want 401", err)
	}
}

// TestConnectivityCheckRefusesBadOffers: what is not a data-channel-only
// SDP offer gets a 4xx naming the problem.
func TestConnectivityCheckRefusesBadOffers(t *testing.T) {
	f := newFixture(t)
	cookie := f.cookieHeader(f.signIn(t, "doc@example.org"))
	post := func(ct, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/connectivity-check", strings.NewReader(body))
		for k, v := range cookie {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		return resp.StatusCode, b.String()
	}
	for _, tc := range []struct {
		name, ct, body string
		status         int
		says           string
	}{
		{"json", "application/json", `{"sdp":"v=0"}`, 415, "application/sdp"},
		{"not SDP", "application/sdp", "hello", 400, "data channel"},
		{"media offer", "application/sdp", "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", 400, "carries media"},
		{"broken data offer", "application/sdp", "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n", 400, "refused"},
		{"too large", "application/sdp", "m=application" + strings.Repeat("a", 17<<10), 413, "16 KiB"},
	} {
		status, body := post(tc.ct, tc.body)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, status, body, tc.status, tc.says)
		}
	}
	// The budget: six in a row pass the limiter, then 429.
	var last int
	for range 8 {
		last, _ = post("application/sdp", "hello")
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("after a burst of checks: %d, want 429", last)
	}
}
