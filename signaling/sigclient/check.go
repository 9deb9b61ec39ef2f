package sigclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// CheckResult is what a connectivity check found.
type CheckResult struct {
	// Pair is the candidate pair that connected: its local candidate's
	// type says direct (host, srflx, prflx) or relayed (relay), and the
	// remote one's protocol UDP or TCP.
	Pair webrtc.ICECandidatePair
	// RTT is the median round trip of the echoes.
	RTT time.Duration
}

// checkServers is the answer of GET /connectivity-check.
type checkServers struct {
	ICEServers []webrtc.ICEServer `json:"iceServers"`
}

// CheckConnectivity runs the pre-call connectivity check against the
// server at base (http:// or https://) as a browser does: it fetches the
// ICE servers, opens a data channel to the SFU with them, and echoes five
// messages. header carries the session cookie; client may be nil.
func CheckConnectivity(ctx context.Context, base string, header http.Header, client *http.Client, api *webrtc.API) (CheckResult, error) {
	var res CheckResult
	if client == nil {
		client = http.DefaultClient
	}
	if api == nil {
		var err error
		if api, err = NewAPI(true); err != nil {
			return res, err
		}
	}
	url := strings.TrimRight(base, "/") + "/connectivity-check"
	var servers checkServers
	if err := checkRequest(ctx, client, http.MethodGet, url, header, "", &servers); err != nil {
		return res, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: servers.ICEServers})
	if err != nil {
		return res, fmt.Errorf("check connection: %w", err)
	}
	defer pc.Close()
	dc, err := pc.CreateDataChannel("echo", nil)
	if err != nil {
		return res, fmt.Errorf("check data channel: %w", err)
	}
	open := make(chan struct{})
	echoes := make(chan string, 8)
	dc.OnOpen(func() { close(open) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		select {
		case echoes <- string(m.Data):
		default:
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return res, fmt.Errorf("check offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return res, fmt.Errorf("check offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return res, fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	var answer string
	if err := checkRequest(ctx, client, http.MethodPost, url, header, pc.LocalDescription().SDP, &answer); err != nil {
		return res, err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return res, fmt.Errorf("check answer: %w", err)
	}
	select {
	case <-open:
	case <-ctx.Done():
		return res, fmt.Errorf("no connection to the media server: %w", ctx.Err())
	}
	var rtts []time.Duration
	for i := range 5 {
		msg := "ping " + strconv.Itoa(i)
		sent := time.Now()
		if err := dc.SendText(msg); err != nil {
			return res, fmt.Errorf("echo: %w", err)
		}
		select {
		case got := <-echoes:
			if got != msg {
				return res, fmt.Errorf("echo: sent %q, got %q back", msg, got)
			}
			rtts = append(rtts, time.Since(sent))
		case <-ctx.Done():
			return res, fmt.Errorf("echo: %w", ctx.Err())
		}
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	res.RTT = rtts[len(rtts)/2]
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return res, fmt.Errorf("no selected candidate pair: %v", err)
	}
	res.Pair = *pair
	return res, nil
}

// checkRequest does one request of the check; out is a *string for SDP
// or a value to decode JSON into.
func checkRequest(ctx context.Context, client *http.Client, method, url string, header http.Header, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/sdp")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %w: %d %s", method, url, ErrCheckRefused, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if s, ok := out.(*string); ok {
		*s = string(b)
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}

// ErrCheckRefused reports that the server refused a check request.
var ErrCheckRefused = errors.New("connectivity check refused")
