package media

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Limits of connectivity checks.
const (
	// maxChecks bounds the check connections open at once on a node.
	maxChecks = 32
	// checkLifetime is how long a check connection stays open.
	checkLifetime = 30 * time.Second
	// maxEchoes and maxEchoSize bound what a check's data channel echoes.
	maxEchoes   = 100
	maxEchoSize = 1024
)

// ErrBusy reports that too many connectivity checks are running; the
// client should try again shortly.
var ErrBusy = errors.New("too many connectivity checks at once")

// ErrBadOffer reports a check offer that cannot be used.
var ErrBadOffer = errors.New("connectivity check offer refused")

// Check answers a client's test connection: offer is a complete SDP offer
// (candidates gathered, no trickle) with one data channel and no media.
// The answer returned carries the SFU's candidates. Whatever the client
// sends on its data channel is sent back, so it can tell which path
// connected and measure the round trip. The connection closes when the
// client closes it, when it fails, or after 30 seconds.
func (s *SFU) Check(ctx context.Context, offer string) (string, error) {
	select {
	case s.checks <- struct{}{}:
	default:
		return "", ErrBusy
	}
	release := func() { <-s.checks }
	if !strings.Contains(offer, "m=application") {
		release()
		return "", fmt.Errorf("%w: the offer has no data channel (m=application)", ErrBadOffer)
	}
	if strings.Contains(offer, "m=audio") || strings.Contains(offer, "m=video") {
		release()
		return "", fmt.Errorf("%w: the offer carries media; a check sends none", ErrBadOffer)
	}
	pc, err := s.newPeerConnection()
	if err != nil {
		release()
		return "", fmt.Errorf("connectivity check: %w", err)
	}
	done := make(chan struct{})
	var once sync.Once
	end := func() { once.Do(func() { close(done) }) }
	go func() {
		select {
		case <-done:
		case <-time.After(checkLifetime):
		}
		_ = pc.Close()
		release()
	}()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			end()
		case webrtc.PeerConnectionStateConnected:
			s.log.Debug("connectivity check connected")
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		n := 0
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			n++
			if n > maxEchoes || len(m.Data) > maxEchoSize {
				end()
				return
			}
			if m.IsString {
				_ = dc.SendText(string(m.Data))
			} else {
				_ = dc.Send(m.Data)
			}
		})
		dc.OnClose(end)
	})
	answer, err := s.answerComplete(ctx, pc, offer)
	if err != nil {
		end()
		return "", err
	}
	return answer, nil
}

// answerComplete applies offer to pc and returns its answer once every
// candidate is gathered.
func (s *SFU) answerComplete(ctx context.Context, pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("connectivity check answer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("connectivity check answer: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}
