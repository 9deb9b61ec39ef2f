package live

// A subscription's replay (attach) goes into the viewer's queue at once:
// at most the whole history, two gap markers and the stream message, after
// the transport's NEWS2 snapshot. The queue holds one such burst beside the
// live messages (Config.QueueMessages), not one per stream, so a transport
// that subscribes one viewer to several streams in a row (a day list)
// paces the replays: before each subscription it waits on ReplayRoom until
// the viewer has taken what the previous ones queued. The queue's bound is
// then the memory bound, however many streams the viewer subscribes to,
// and a viewer that stops reading still overflows on live messages.

// replayBurst is the most one subscription queues at once.
func replayBurst(historyMessages int) int { return historyMessages + 4 }

// replayRoomAt is how few queued messages leave room for a replay: half of
// what the queue holds beyond one, the other half being headroom for the
// live messages that arrive while the writer drains it.
func replayRoomAt(queueMessages, historyMessages int) int {
	return max(0, (queueMessages-replayBurst(historyMessages))/2)
}

// ReplayRoom returns a channel that is closed once the viewer's queue has
// room for a subscription's replay, as it is already when the queue is
// short. It stays open while the viewer takes nothing, also once it fell
// behind or left: wait on FellBehind and the connection's end beside it.
func (v *Viewer) ReplayRoom() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.q) <= v.roomAt {
		return closedChan
	}
	if v.room == nil {
		v.room = make(chan struct{})
	}
	return v.room
}

// tookLocked closes the ReplayRoom channel once the queue has room.
func (v *Viewer) tookLocked() {
	if v.room != nil && len(v.q) <= v.roomAt {
		close(v.room)
		v.room = nil
	}
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
