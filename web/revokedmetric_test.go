package web

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/bedside-health/bedside/metrics"
	"github.com/bedside-health/bedside/scheduling"
	"github.com/bedside-health/bedside/store"
)

// apptHookStore runs a hook before each AppointmentByID.
type apptHookStore struct {
	store.Store
	hook atomic.Pointer[func(id int64)]
}

func (s *apptHookStore) AppointmentByID(ctx context.Context, id int64) (scheduling.Appointment, error) {
	if h := s.hook.Load(); h != nil {
		(*h)(id)
	}
	return s.Store.AppointmentByID(ctx, id)
}

// TestRevokedCountLeavesOutAnOwnUnsubscribe: the physician unsubscribes
// a visit themselves while a re-check that listed it is looking it up,
// and the visit is cancelled meanwhile: the re-check's drop finds nothing
// to end, and bedside_vitals_subscriptions_revoked_total must not count it.
func TestRevokedCountLeavesOutAnOwnUnsubscribe(t *testing.T) {
	reg := metrics.NewRegistry()
	hs := &apptHookStore{}
	f := newFixtureWith(t, func(d *Deps) {
		hs.Store = d.Store
		d.Store = hs
		d.Metrics = reg
		d.Recheck = 20 * time.Millisecond
	})
	other, v := f.dayList(t)
	read := func() (streamMsg, error) {
		_ = v.SetReadDeadline(time.Now().Add(10 * time.Second))
		var m streamMsg
		for len(v.pending) == 0 {
			_, b, err := v.ReadMessage()
			if err != nil {
				return m, err
			}
			if err := json.Unmarshal(b, &v.pending); err != nil {
				return m, err
			}
		}
		err := json.Unmarshal(v.pending[0], &m)
		v.pending = v.pending[1:]
		return m, err
	}
	for _, id := range []int64{other.ID, f.visit.ID} {
		if err := v.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"subscribe","appointment":%d}`, id))); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := read()
			if err != nil {
				t.Fatal(err)
			}
			if m.Type == "stream" && m.Appointment == id {
				break
			}
		}
	}
	hookDone := make(chan error, 1)
	after := make(chan struct{}, 1)
	var fired, returned atomic.Bool
	h := func(id int64) {
		switch {
		case id == f.visit.ID && fired.CompareAndSwap(false, true):
			// The re-check looks the visit up: meanwhile the physician
			// unsubscribes it, and it is cancelled.
			err := v.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"unsubscribe","appointment":%d}`, id)))
			for err == nil {
				var m streamMsg
				if m, err = read(); err == nil && m.Type == "unsubscribed" && m.Appointment == id {
					break
				}
			}
			if err == nil {
				_, err = f.st.SetAppointmentStatus(context.Background(), id, scheduling.StatusCancelled, store.Change{})
			}
			returned.Store(true)
			hookDone <- err
		case id == other.ID && returned.Load():
			select { // a look-up of the other visit after the hooked one: that re-check has dropped it
			case after <- struct{}{}:
			default:
			}
		}
	}
	hs.hook.Store(&h)
	if err := <-hookDone; err != nil {
		t.Fatal(err)
	}
	select {
	case <-after:
	case <-time.After(10 * time.Second):
		t.Fatal("no re-check after the hooked one")
	}
	if n := revokedCount(reg); n != 0 {
		t.Fatalf("bedside_vitals_subscriptions_revoked_total = %d, though the physician unsubscribed the visit themselves and no re-check ended a subscription", n)
	}
}
