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
	"fmt"
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
// one two threads of lower priority that run the Commit calls alone.
type Committer[T any] struct {
	commit Commit[T]
	max    int
	nice   int         // the nice value added for the starved commits' thread; 0: no Background
	lowerr error       // why the priority could not be lowered; read after started
	lend   atomic.Bool // commit with one more P (LendProcs)
	in     chan *request[T]
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
	// The threads the commits run on (Background): idle's in the
	// kernel's idle class, low's at the lowered nice value; nil where
	// there is none. starvedUntil is when commits go back to idle after
	// one there waited too long (starveAfter); only loop reads and
	// writes it.
	idle, low    *thread
	starvedUntil time.Time
	starved      atomic.Int64 // times commits moved off the idle class
}

// Starved counts the times a commit in the kernel's idle class waited
// longer than starveAfter and the commits moved to the lowered thread
// for a while (Background).
func (c *Committer[T]) Starved() int64 { return c.starved.Load() }

// starveAfter is how long a commit on the idle-class thread may take
// before the following ones move to the lowered thread for starvedFor.
// The idle class runs only on CPU time nothing else wants; on CPUs kept
// busy it gets almost none (a fifth of what nice 19 gets), and the
// readings waiting to commit, and their devices' acks, would pile up
// for as long. A commit takes milliseconds of CPU (4.5 ms at 1,000
// streaming patients); one that takes half a second has waited.
var (
	starveAfter = 500 * time.Millisecond
	starvedFor  = 30 * time.Second
)

// thread runs functions, one at a time, on an OS thread of its own.
type thread struct {
	work   chan func()
	worked chan struct{}
	exited chan struct{}
}

// startThread starts a thread and runs setup on it first. If setup fails
// the functions run on whatever thread the runtime gives, and the error
// is returned with the thread.
func startThread(setup func() error) (*thread, error) {
	t := &thread{work: make(chan func()), worked: make(chan struct{}), exited: make(chan struct{})}
	set := make(chan error, 1)
	go func() {
		defer close(t.exited)
		// The thread stays this goroutine's, and ends with it: no other
		// goroutine ever runs at its priority.
		runtime.LockOSThread()
		err := setup()
		if err != nil {
			runtime.UnlockOSThread()
		}
		set <- err
		for f := range t.work {
			f()
			t.worked <- struct{}{}
		}
	}()
	return t, <-set
}

// run runs f on the thread and returns once it has.
func (t *thread) run(f func()) {
	t.work <- f
	<-t.worked
}

// stop ends the thread once it is done with its work.
func (t *thread) stop() {
	close(t.work)
	<-t.exited
}

// Option configures a Committer.
type Option func(*options)

type options struct{ nice int }

// Background runs the commits on OS threads of their own, at a lower
// priority than the process's, where the system allows it (Linux): on a
// thread in the kernel's idle scheduling class, which runs only on CPU
// time nothing else wants and gives its core up to any thread that
// wakes; and, while a commit there has waited longer than starveAfter
// (CPUs kept busy give that class almost nothing), for starvedFor on a
// thread whose nice value is raised by nice (1 to 19, up to the lowest
// priority, 19) above the process's, which the kernel still gives a
// share of a busy core. When the CPUs are busy the kernel runs the
// process's other threads first, and the commits take what they leave:
// a slow commit delays only its callers, while a thread woken to deliver
// something waits less behind one. The thread holds one of the runtime's
// Ps while it commits, so the commits take that P from everything else
// unless the process lends them one (LendProcs).
//
// Only the Commit calls run on those threads. The writer gathers writes
// and releases their callers at the process's priority: a goroutine
// locked to a thread takes the P of whoever wakes it, and a lowered
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
	switch {
	case c.nice == 0:
	case c.nice < 1 || c.nice > 19:
		c.lowerr = fmt.Errorf("groupcommit: lower the priority by %d: want 1 to 19", c.nice)
	default:
		idle, err := startThread(idleClass)
		if err == nil {
			c.idle = idle
		} else {
			idle.stop()
		}
		c.low, c.lowerr = startThread(func() error { return lowerPriority(c.nice) })
		if c.idle != nil {
			c.lowerr = nil // commits run lowered, if only in the idle class
		}
	}
	go c.loop()
	return c
}

// onLowered runs f, a commit, on the idle-class thread, or on the
// lowered thread while commits there starve, or on the caller's without
// Background, and returns once it has.
func (c *Committer[T]) onLowered(f func()) {
	switch {
	case c.idle != nil && !time.Now().Before(c.starvedUntil):
		began := time.Now()
		c.idle.run(f)
		if time.Since(began) > starveAfter {
			c.starvedUntil = time.Now().Add(starvedFor)
			c.starved.Add(1)
		}
	case c.low != nil:
		c.low.run(f)
	default:
		f()
	}
}

// Lowered reports whether the commits run at a lower priority, as
// Background asked: nil if they do (in the idle class, or at the lowered
// nice value), why not if they do not (they then run at the process's
// priority), and ErrNotLowered if Background was not asked for.
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
// releases its callers; when it ends, so do the commits' threads.
func (c *Committer[T]) loop() {
	defer close(c.done)
	for _, t := range []*thread{c.idle, c.low} {
		if t != nil {
			defer t.stop()
		}
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

// commitLent commits items on a lowered thread (onLowered), with one
// more P if the Committer lends one; the P is returned before any caller
// hears of the result. The writer changes the count itself: the change
// stops the world and holds it stopped until it is done, and on a
// lowered thread the kernel, with every other runnable thread of the
// machine ahead of it, left the world stopped for milliseconds
// (docs/benchmarks.md).
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
