package groupcommit

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestLendProcsAddsAPWhileCommitting: a Committer that lends commits with
// one P more than the runtime's default and goes back to the default
// before its caller hears; two lending at once share one extra P; one
// that does not lend leaves the count alone.
func TestLendProcsAddsAPWhileCommitting(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	base := runtime.GOMAXPROCS(0)
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)

	// A commit reports the Ps it ran with, and waits for hold.
	type probe struct {
		procs   chan int
		hold    chan struct{}
		started chan struct{}
	}
	newCommitter := func(p probe) *Committer[int] {
		return New(func(_ context.Context, batch []int) ([]error, error) {
			p.started <- struct{}{}
			<-p.hold
			p.procs <- runtime.GOMAXPROCS(0)
			return make([]error, len(batch)), nil
		}, 8)
	}
	a := probe{make(chan int, 4), make(chan struct{}), make(chan struct{}, 4)}
	b := probe{make(chan int, 4), make(chan struct{}), make(chan struct{}, 4)}
	ca, cb := newCommitter(a), newCommitter(b)
	defer ca.Close()
	defer cb.Close()

	errs := make(chan error, 2)
	// commitAlone commits v through a, alone, and returns the Ps its
	// commit ran with.
	commitAlone := func(v int) int {
		go func() { errs <- ca.Do(t.Context(), v) }()
		<-a.started
		a.hold <- struct{}{}
		got := <-a.procs
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		return got
	}

	// Not lending: the count stays.
	if got := commitAlone(1); got != base {
		t.Errorf("not lending: committed with %d Ps, want %d", got, base)
	}

	ca.LendProcs(true)
	cb.LendProcs(true)
	if !ca.LendsProcs() || !cb.LendsProcs() {
		t.Fatal("LendsProcs: false after LendProcs(true)")
	}
	// Both commit at once: a's commit waits until b's has begun.
	go func() { errs <- ca.Do(t.Context(), 2) }()
	<-a.started
	go func() { errs <- cb.Do(t.Context(), 3) }()
	<-b.started
	if got := runtime.GOMAXPROCS(0); got != base+1 {
		t.Errorf("two lending commits in hand: %d Ps, want %d", got, base+1)
	}
	a.hold <- struct{}{}
	if got := <-a.procs; got != base+1 {
		t.Errorf("lending: committed with %d Ps, want %d", got, base+1)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	// a's is done and b's is not: the P stays lent.
	if got := runtime.GOMAXPROCS(0); got != base+1 {
		t.Errorf("one lending commit still in hand: %d Ps, want %d", got, base+1)
	}
	b.hold <- struct{}{}
	<-b.procs
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	// The caller has its answer: the count is the default again.
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Errorf("after the commits: %d Ps, want the default %d", got, base)
	}

	ca.LendProcs(false)
	if got := commitAlone(4); got != base {
		t.Errorf("lending off again: committed with %d Ps, want %d", got, base)
	}
}

// TestLendingGathersABatch: a lending Committer holding a write waits
// for others within lendGather and commits them in one batch (one loan);
// a full batch commits without waiting out the window; a Close ends the
// wait and the batch still commits.
func TestLendingGathersABatch(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	was := lendGather
	lendGather = time.Hour // only a full batch or a Close ends the wait
	t.Cleanup(func() { lendGather = was })

	batches := make(chan []int, 4)
	c := New(func(_ context.Context, batch []int) ([]error, error) {
		batches <- slices.Clone(batch)
		return make([]error, len(batch)), nil
	}, 3)
	c.LendProcs(true)
	// send hands the writer v and returns once the writer has taken it
	// from its queue, so nothing else is waiting when it looks.
	send := func(v int) chan error {
		res := make(chan error, 1)
		c.in <- &request[int]{ctx: t.Context(), item: v, res: res}
		for len(c.in) > 0 {
			runtime.Gosched()
		}
		return res
	}
	var res []chan error
	for v := range 3 {
		res = append(res, send(v))
	}
	if got := <-batches; !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("batch %v, want the three writes in one", got)
	}
	for _, r := range res {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}

	// Held in a gathering batch when the Committer closes: committed.
	r := send(7)
	c.Close()
	if err := <-r; err != nil {
		t.Errorf("a write gathering at Close: %v, want it committed", err)
	}
	if got := <-batches; !slices.Equal(got, []int{7}) {
		t.Errorf("batch at Close %v, want [7]", got)
	}
}
