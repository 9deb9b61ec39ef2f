package live

import "testing"

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestReplayRoomPacesSubscriptionsOfAReadingViewer: five streams' full
// replays are more than a viewer's queue holds, so subscribing to them
// back to back overflows it; waiting on ReplayRoom before each, while the
// viewer takes a frame at a time, gets it every replay and keeps it.
func TestReplayRoomPacesSubscriptionsOfAReadingViewer(t *testing.T) {
	const patients, history = 5, 100
	h, _ := newTestHub(Config{HistoryMessages: history, QueueMessages: 160})
	for p := int64(1); p <= patients; p++ {
		for n := range history {
			publish(t, h, p, reading(n))
		}
	}

	burst := h.NewViewer()
	for p := int64(1); p <= patients; p++ {
		subscribe(t, h, burst, p, Position{})
	}
	if !isClosed(burst.FellBehind()) {
		t.Fatal("five replays subscribed back to back fit the queue: the test shows nothing")
	}

	v := h.NewViewer()
	if !isClosed(v.ReplayRoom()) {
		t.Fatal("an empty queue has no room for a replay")
	}
	var got []msg
	for p := int64(1); p <= patients; p++ {
		// The viewer's writer takes a frame at a time until the channel
		// the subscriber waits on is closed.
		room := v.ReplayRoom()
		for !isClosed(room) {
			if v.Queued() == 0 {
				t.Fatal("the queue is empty and the subscriber still waits for room")
			}
			for _, b := range v.Take(nil, 50) {
				got = append(got, decode(t, b))
			}
		}
		subscribe(t, h, v, p, Position{})
		if isClosed(v.FellBehind()) {
			t.Fatalf("a reading viewer fell behind subscribing to stream %d", p)
		}
	}
	got = append(got, drain(t, v)...)
	streams, readings := 0, 0
	for _, m := range got {
		switch m.Type {
		case "stream":
			streams++
		case "reading":
			readings++
		}
	}
	if streams != patients || readings != patients*history {
		t.Fatalf("%d stream messages and %d readings, want %d and %d", streams, readings, patients, patients*history)
	}
}

// TestReplayRoomStaysShutForAViewerThatStopsReading: a viewer that takes
// nothing gets no room for another replay, and live messages still
// overflow its bounded queue.
func TestReplayRoomStaysShutForAViewerThatStopsReading(t *testing.T) {
	h, _ := newTestHub(Config{HistoryMessages: 100, QueueMessages: 160})
	for n := range 100 {
		publish(t, h, 1, reading(n))
	}
	v := h.NewViewer()
	subscribe(t, h, v, 1, Position{})
	room := v.ReplayRoom()
	for n := 0; n < 160 && !isClosed(v.FellBehind()); n++ {
		publish(t, h, 1, reading(n))
	}
	if !isClosed(v.FellBehind()) {
		t.Fatal("a viewer that reads nothing did not fall behind")
	}
	if isClosed(room) {
		t.Fatal("a viewer that reads nothing was given room for another replay")
	}
	if q := v.Queued(); q != 0 {
		t.Fatalf("a fallen viewer still holds %d messages", q)
	}
}
