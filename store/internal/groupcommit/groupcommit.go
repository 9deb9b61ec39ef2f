// Package groupcommit batches concurrent writes into one transaction: one
// goroutine takes the first waiting write, adds every other one already
// waiting, commits them together and then releases each caller with its own
// result. When writes come one at a time each commits at once; no timer
// holds a write back to wait for company, except in a Committer that
// lends Ps (LendProcs), which waits up to lendGather for more writes so
// that one loan serves them all.
package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed reports a write after Close.
var ErrClosed = errors.New("store closed")

// Commit writes a batch in one transaction. It returns either an error
// for the whole batch (nothing of it was stored) or one result per item,
// nil for stored. An item's own error (an unknown device) must leave the
// other items stored.
type Commit[T any] func(ctx context.Context, batch []T) (each []error, err error)

type request[T any] struct {
	ctx  context.Context
	item T
	res  chan error
}

// Committer runs one writer goroutine for a Commit, and for a Background
// one a goroutine on a lowered thread that runs the Commit calls alone.
type Committer[T any] struct {
	commit Commit[T]
	max    int
	nice   int         // the lowered thread's priority; 0 leaves it
	lowerr error       // why the priority could not be lowered; read after started
	lend   atomic.Bool // commit with one more P (LendProcs)
	in     chan *request[T]
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
	// The work the lowered thread runs, one function at a time, and its
	// answer that each is done; nil without Background.
	work   chan func()
	worked chan struct{}
}

// Option configures a Committer.
type Option func(*options)

type options struct{ nice int }

// Background runs the writer on an OS thread of its own, its nice value
// raised by nice (1 to 19, up to the lowest priority, 19) above the
// process's, where the system allows it (Linux). When the CPUs are busy
// the kernel runs the process's other threads first, and the commits
// take what they leave: a slow commit delays only its callers, while a
// thread woken to deliver something waits less behind one. The thread
// holds one of the runtime's Ps while it commits, so the writer's turns
// take that P from everything else unless the process lends it one
// (LendProcs).
//
// Only the Commit calls run on that thread. The writer gathers writes
// and releases their callers at the process's priority: a goroutine
// locked to a thread takes the P of whoever wakes it, and the lowered
// thread, which the kernel runs last, held that P away from the other
// goroutines until it got the CPU, on each write that joined a batch
// and again while it woke the batch's callers (docs/benchmarks.md).
func Background(nice int) Option {
	return func(o *options) { o.nice = nice }
}

// New starts a Committer batching at most max items per transaction.
func New[T any](commit Commit[T], max int, opts ...Option) *Committer[T] {
	var o options
	for _, f := range opts {
		f(&o)
	}
	c := &Committer[T]{commit: commit, max: max, nice: o.nice, in: make(chan *request[T], max), quit: make(chan struct{}), done: make(chan struct{})}
	var lowered chan struct{}
	if c.nice != 0 {
		c.work, c.worked = make(chan func()), make(chan struct{})
		started := make(chan struct{})
		lowered = make(chan struct{})
		go c.lowered(started, lowered)
		<-started
	}
	go c.loop(lowered)
	return c
}

// lowered runs the work it is given on a thread of its own at the lowered
// priority, until work is closed; then it closes exited.
func (c *Committer[T]) lowered(started, exited chan<- struct{}) {
	defer close(exited)
	// The thread stays this goroutine's, and ends with it: no other
	// goroutine ever runs at the lowered priority.
	runtime.LockOSThread()
	if c.lowerr = lowerPriority(c.nice); c.lowerr != nil {
		runtime.UnlockOSThread()
	}
	close(started)
	for f := range c.work {
		f()
		c.worked <- struct{}{}
	}
}

// onLowered runs f on the lowered thread, or on the caller's without
// Background, and returns once it has.
func (c *Committer[T]) onLowered(f func()) {
	if c.work == nil {
		f()
		return
	}
	c.work <- f
	<-c.worked
}

// Lowered reports whether the writer runs at the lowered priority
// Background asked for: nil if it does, why not if it does not (the
// commits then run at the process's priority), and ErrNotLowered if
// Background was not asked for.
func (c *Committer[T]) Lowered() error {
	if c.nice == 0 {
		return ErrNotLowered
	}
	return c.lowerr
}

// LendProcs makes the runtime allow one more P (runtime.GOMAXPROCS) while
// a batch commits, and go back to its default after: the writer's P,
// when it runs at a lowered priority and the kernel leaves it waiting,
// is not one the process's other goroutines needed. Keeping the extra P
// all the time costs its idle spinning and wake-ups instead: on a
// two-core node, a tenth more CPU per live-vitals delivery
// (docs/benchmarks.md). Changing the count stops the world, twice a
// loan, so a lending Committer gathers writes for up to lendGather
// after the first before it commits them, and the writer changes the
// count at the process's priority (commitLent). Committers that lend
// at once share one extra P. Only for a process that leaves GOMAXPROCS
// to the runtime: going back to the default
// (runtime.SetDefaultGOMAXPROCS) ignores the environment's GOMAXPROCS
// and any count set before.
func (c *Committer[T]) LendProcs(on bool) { c.lend.Store(on) }

// LendsProcs reports whether commits are given one more P (LendProcs).
func (c *Committer[T]) LendsProcs() bool { return c.lend.Load() }

// lent counts the commits in hand with one more P, of every Committer.
var lent struct {
	sync.Mutex
	n int
}

// lendGather is how long a lending Committer waits, after the first
// write of a batch, for others to join it. Live vitals' devices commit
// in slots (vitals' commitSlots): at 1,000 streaming patients a slot's
// hundred devices reach the writer over a few milliseconds, which
// without the wait made about six batches of a slot, each a loan (two
// stops of the world) and a transaction; with it, one or two. A write
// waits at most this long more for its commit; a batch that fills
// commits at once.
var lendGather = 4 * time.Millisecond

// Set by tests: resized is called by the goroutine that changes the
// count of Ps, once it has; released by the writer once it has released
// a batch's callers.
var resized, released func()

// lendProc allows one more P, unless a commit has already.
func lendProc() {
	lent.Lock()
	defer lent.Unlock()
	if lent.n == 0 {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
		if resized != nil {
			resized()
		}
	}
	lent.n++
}

// returnProc goes back to the runtime's default once the last commit
// with one more P is done.
func returnProc() {
	lent.Lock()
	defer lent.Unlock()
	if lent.n--; lent.n == 0 {
		runtime.SetDefaultGOMAXPROCS()
		if resized != nil {
			resized()
		}
	}
}

// ErrNotLowered is Lowered's answer for a Committer without Background.
var ErrNotLowered = errors.New("the writer's priority was not lowered")

// Do writes item with whatever else is waiting and returns once its batch
// has committed (nil) or failed. If ctx ends first it returns ctx's error,
// and the item may or may not have been stored.
func (c *Committer[T]) Do(ctx context.Context, item T) error {
	select {
	case <-c.quit:
		return ErrClosed
	default:
	}
	rq := &request[T]{ctx: ctx, item: item, res: make(chan error, 1)}
	select {
	case c.in <- rq:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.quit:
		return ErrClosed
	}
	select {
	case err := <-rq.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		select {
		case err := <-rq.res:
			return err
		default:
			return ErrClosed
		}
	}
}

// Close stops the writer once the batch in hand is done; later writes get
// ErrClosed.
func (c *Committer[T]) Close() {
	c.once.Do(func() { close(c.quit) })
	<-c.done
}

// loop is the writer: it gathers each batch, has it committed and
// releases its callers. lowered, if not nil, closes once the lowered
// thread's goroutine has ended, after loop closes c.work.
func (c *Committer[T]) loop(lowered <-chan struct{}) {
	defer close(c.done)
	if c.work != nil {
		defer func() { <-lowered }()
		defer close(c.work)
	}
	batch := make([]*request[T], 0, c.max)
	items := make([]T, 0, c.max)
	for {
		var first *request[T]
		select {
		case first = <-c.in:
		case <-c.quit:
			c.failWaiting()
			return
		}
		batch = append(batch[:0], first)
		batch = c.gather(batch)
		// Callers that gave up before their batch began are not written.
		live := batch[:0]
		for _, rq := range batch {
			if err := rq.ctx.Err(); err != nil {
				rq.res <- err
				continue
			}
			live = append(live, rq)
		}
		if len(live) == 0 {
			continue
		}
		items = items[:0]
		for _, rq := range live {
			items = append(items, rq.item)
		}
		c.run(live, items)
		if released != nil {
			released()
		}
		clear(batch)
	}
}

// gather adds to batch the writes waiting, up to c.max: those already
// waiting, and for a lending Committer those that come within
// lendGather. A Close meanwhile ends the wait; the batch still commits.
func (c *Committer[T]) gather(batch []*request[T]) []*request[T] {
	if !c.lend.Load() || lendGather <= 0 {
		for len(batch) < c.max {
			select {
			case rq := <-c.in:
				batch = append(batch, rq)
			default:
				return batch
			}
		}
		return batch
	}
	wait := time.NewTimer(lendGather)
	defer wait.Stop()
	for len(batch) < c.max {
		select {
		case rq := <-c.in:
			batch = append(batch, rq)
		case <-wait.C:
			return batch
		case <-c.quit:
			return batch
		}
	}
	return batch
}

// run commits items; if the batch fails as a whole, each item is tried
// alone, so one bad write does not fail the others.
func (c *Committer[T]) run(rqs []*request[T], items []T) {
	each, err := c.commitLent(items)
	if err == nil && len(each) == len(items) {
		for i, rq := range rqs {
			rq.res <- each[i]
		}
		return
	}
	if len(items) == 1 {
		if err == nil {
			err = errors.New("commit gave no result")
		}
		rqs[0].res <- err
		return
	}
	for i, rq := range rqs {
		one, err := c.commitLent(items[i : i+1])
		if err == nil && len(one) == 1 {
			err = one[0]
		}
		rq.res <- err
	}
}

// commitLent commits items on the lowered thread, with one more P if the
// Committer lends one; the P is returned before any caller hears of the
// result. The writer changes the count itself: the change stops the
// world and holds it stopped until it is done, and on the lowered thread
// the kernel, with every other runnable thread of the machine ahead of
// it, left the world stopped for milliseconds (docs/benchmarks.md).
func (c *Committer[T]) commitLent(items []T) (each []error, err error) {
	if c.lend.Load() {
		lendProc()
		defer returnProc()
	}
	c.onLowered(func() { each, err = c.commit(context.Background(), items) })
	return each, err
}

func (c *Committer[T]) failWaiting() {
	for {
		select {
		case rq := <-c.in:
			rq.res <- ErrClosed
		default:
			return
		}
	}
}
