package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// forwarder is the floor for the SFU: a minimal Pion program that copies
// each RTP packet a participant publishes to the other participant of its
// consult, and nothing more (no packet cache of its own, no congestion
// control, no keyframe requests, no signaling protocol: one HTTP request
// per peer connection, offer in, answer out, candidates gathered first).
// Pion's default interceptors run on both sides, as in any Pion program.
type forwarder struct {
	api *webrtc.API

	mu     sync.Mutex
	tracks map[string]*fwdTracks // by consult/side of the publisher
	pcs    []*webrtc.PeerConnection
}

type fwdTracks struct{ video, audio *webrtc.TrackLocalStaticRTP }

func newForwarder() (*forwarder, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return &forwarder{api: api, tracks: map[string]*fwdTracks{}}, nil
}

func (f *forwarder) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /publish/{consult}/{side}", f.publish)
	mux.HandleFunc("POST /subscribe/{consult}/{side}", f.subscribe)
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		f.close()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// close ends every peer connection and forgets every track, so that a new
// round starts with nothing bound to the last round's peers.
func (f *forwarder) close() {
	f.mu.Lock()
	pcs := f.pcs
	f.pcs = nil
	f.tracks = map[string]*fwdTracks{}
	f.mu.Unlock()
	for _, pc := range pcs {
		_ = pc.Close()
	}
}

// tracksOf returns the tracks carrying what key publishes.
func (f *forwarder) tracksOf(key string) (*fwdTracks, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.tracks[key]; t != nil {
		return t, nil
	}
	v, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", key)
	if err != nil {
		return nil, err
	}
	a, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", key)
	if err != nil {
		return nil, err
	}
	t := &fwdTracks{video: v, audio: a}
	f.tracks[key] = t
	return t, nil
}

func (f *forwarder) publish(w http.ResponseWriter, r *http.Request) {
	t, err := f.tracksOf(r.PathValue("consult") + "/" + r.PathValue("side"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.answer(w, r, func(pc *webrtc.PeerConnection) error {
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			dst := t.audio
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				dst = t.video
			}
			buf := make([]byte, 1500)
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				_, _ = dst.Write(buf[:n])
			}
		})
		return nil
	}, nil)
}

func (f *forwarder) subscribe(w http.ResponseWriter, r *http.Request) {
	other := "1"
	if r.PathValue("side") == "1" {
		other = "0"
	}
	t, err := f.tracksOf(r.PathValue("consult") + "/" + other)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.answer(w, r, nil, func(pc *webrtc.PeerConnection) error {
		for _, tr := range []webrtc.TrackLocal{t.video, t.audio} {
			s, err := pc.AddTrack(tr)
			if err != nil {
				return err
			}
			// Read RTCP so that the interceptors (the NACK responder)
			// see it.
			go func() {
				for {
					if _, _, err := s.ReadRTCP(); err != nil {
						return
					}
				}
			}()
		}
		return nil
	})
}

// answer answers the offer in r's body on a new peer connection, set up by
// before (ahead of the offer) and after (once the offer is applied).
func (f *forwarder) answer(w http.ResponseWriter, r *http.Request, before, after func(*webrtc.PeerConnection) error) {
	offer, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pc, err := f.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.mu.Lock()
	f.pcs = append(f.pcs, pc)
	f.mu.Unlock()
	sdp, err := answerOn(pc, string(offer), before, after)
	if err != nil {
		_ = pc.Close()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/sdp")
	_, _ = io.WriteString(w, sdp)
}

func answerOn(pc *webrtc.PeerConnection, offer string, before, after func(*webrtc.PeerConnection) error) (string, error) {
	if before != nil {
		if err := before(pc); err != nil {
			return "", err
		}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("apply offer: %w", err)
	}
	if after != nil {
		if err := after(pc); err != nil {
			return "", err
		}
	}
	a, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(a); err != nil {
		return "", err
	}
	<-done
	return pc.LocalDescription().SDP, nil
}

// offerTo sends pc's offer, candidates gathered, to url and applies the
// answer: the client side of the forwarder's signaling.
func offerTo(ctx context.Context, url string, pc *webrtc.PeerConnection) error {
	o, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(pc.LocalDescription().SDP))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(b)})
}

// resetForwarder asks the forwarder at base to close every connection.
func resetForwarder(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset forwarder: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("reset forwarder: %s", resp.Status)
	}
	return nil
}

// runForwarder serves the forwarder on --addr until ctx ends, printing the
// address it listens on as its first line.
func runForwarder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("forwarder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (HTTP signaling; media on ephemeral UDP ports)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := newForwarder()
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	defer f.close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("forwarder: %w", err)
	}
	fmt.Fprintf(stdout, "forwarder listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: f.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("forwarder: %w", err)
	}
	return nil
}
