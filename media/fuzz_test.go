package media

import (
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzCheckOffer: whatever a browser posts to the connectivity check is
// answered or refused with ErrBadOffer (or ErrBusy), never a panic.
func FuzzCheckOffer(f *testing.F) {
	s, err := New(Config{AllowLoopback: true, UDPAddr: "127.0.0.1:0"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(s.Close)
	f.Fuzz(func(t *testing.T, offer string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		answer, err := s.Check(ctx, offer)
		switch {
		case err == nil && answer == "":
			t.Fatal("empty answer without an error")
		case err != nil && !errors.Is(err, ErrBadOffer) && !errors.Is(err, ErrBusy) && !errors.Is(err, context.DeadlineExceeded):
			t.Fatalf("offer %q: %v, want ErrBadOffer or ErrBusy", offer, err)
		}
	})
}
