package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readNice(statPath string) (int, error) {
	s, err := readSched(statPath)
	return s.nice, err
}

// sched is how the kernel schedules a thread: its policy (0 the usual,
// 5 the idle class) and its nice value.
type sched struct{ policy, nice int }

// idle is the idle class's policy number (SCHED_IDLE).
const idle = 5

func (s sched) String() string {
	if s.policy == idle {
		return "the idle class"
	}
	return fmt.Sprintf("policy %d, nice %d", s.policy, s.nice)
}

// readSched reads a thread's policy (the 41st field of its stat) and nice
// value (the 19th), apart from the system calls the package uses.
func readSched(statPath string) (sched, error) {
	b, err := os.ReadFile(statPath)
	if err != nil {
		return sched{}, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // from the state, the 3rd
	n, err := strconv.Atoi(f[16])
	if err != nil {
		return sched{}, fmt.Errorf("nice in %q: %w", s, err)
	}
	p, err := strconv.Atoi(f[38])
	if err != nil {
		return sched{}, fmt.Errorf("policy in %q: %w", s, err)
	}
	return sched{policy: p, nice: n}, nil
}

// reportNice is a hook that sends the nice value of the thread it runs
// on to got.
func reportNice(t *testing.T, got chan<- int) func() {
	return func() {
		n, err := readNice("/proc/thread-self/stat")
		if err != nil {
			t.Error(err) // not Fatal: this is the writer's goroutine
		}
		got <- n
	}
}

// commitSched is a Commit that sends how its thread is scheduled to got.
func commitSched(t *testing.T, got chan<- sched) Commit[int] {
	return func(_ context.Context, batch []int) ([]error, error) {
		s, err := readSched("/proc/thread-self/stat")
		if err != nil {
			t.Error(err) // not Fatal: this is the commit's goroutine
		}
		got <- s
		return make([]error, len(batch)), nil
	}
}

// processNice is the process's nice value, for a test that tells a
// lowered thread from the others: the process must run at the usual
// policy and below nice 19, or the test cannot. CI runs its tests at the
// usual priority, so there anything else is a fault of the set-up.
func processNice(t *testing.T) int {
	t.Helper()
	runtime.LockOSThread()
	s, err := readSched("/proc/thread-self/stat")
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	if s.policy == idle || s.nice >= 19 {
		if os.Getenv("CI") != "" {
			t.Fatalf("the tests run with %v: a lowered thread cannot be told apart", s)
		}
		t.Skipf("the process already runs with %v: a lowered thread cannot be told apart", s)
	}
	return s.nice
}

// threadScheds reads how each thread of the process is scheduled, by the
// path of its stat; a thread that ends meanwhile is left out.
func threadScheds(t *testing.T) map[string]sched {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]sched, len(tasks))
	for _, p := range tasks {
		s, err := readSched(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // a thread that ended since (a locked goroutine's)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[p] = s
	}
	return out
}

// TestBackgroundLowersTheWriterAlone: the commits run on a thread in the
// idle class, and the process has one more thread, at its nice value
// raised by the option, for when they starve there; no other thread of
// the process is lowered, however many the runtime starts meanwhile.
func TestBackgroundLowersTheWriterAlone(t *testing.T) {
	base := processNice(t)
	want := min(base+5, 19)
	// The threads of Committers closed by earlier tests end once their
	// goroutines have, a moment after Close returns: they are not this
	// Committer's.
	before := threadScheds(t)

	got := make(chan sched, 1)
	c := New(commitSched(t, got), 4, Background(5))
	if err := c.Lowered(); err != nil {
		t.Fatalf("Lowered: %v", err)
	}
	if err := c.Do(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.policy != idle {
		t.Errorf("the commit ran with %v, want the idle class", s)
	}
	// Make the runtime start threads while the writer's exist.
	done := make(chan struct{})
	for range 4 * runtime.GOMAXPROCS(0) {
		go func() {
			runtime.LockOSThread() // a thread each, released when the goroutine ends
			done <- struct{}{}
		}()
	}
	for range 4 * runtime.GOMAXPROCS(0) {
		<-done
	}
	tasks := threadScheds(t)
	idles, lowered := 0, 0
	for p, s := range tasks {
		if old, ok := before[p]; ok && old == s {
			continue
		}
		switch {
		case s.policy == idle:
			idles++
		case s.nice != base:
			lowered++
			if s.nice != want {
				t.Errorf("thread %s at nice %d; want the process's %d or the writer's %d", p, s.nice, base, want)
			}
		}
	}
	if idles != 1 {
		t.Errorf("%d of %d threads in the idle class; want the commits' alone", idles, len(tasks))
	}
	if lowered != 1 {
		t.Errorf("%d of %d threads lowered; want the starved commits' alone", lowered, len(tasks))
	}
	c.Close()
}

func TestBackgroundRefusesWhatIsNotAPriority(t *testing.T) {
	commit := func(_ context.Context, batch []int) ([]error, error) { return make([]error, len(batch)), nil }
	c := New(commit, 4)
	if err := c.Lowered(); !errors.Is(err, ErrNotLowered) {
		t.Errorf("without Background: %v, want ErrNotLowered", err)
	}
	c.Close()
	c = New(commit, 4, Background(25))
	if err := c.Lowered(); err == nil || errors.Is(err, ErrNotLowered) {
		t.Errorf("Background(25): %v, want a refusal", err)
	}
	// It still commits, at the process's priority.
	if err := c.Do(t.Context(), 1); err != nil {
		t.Errorf("commit after a refused priority: %v", err)
	}
	c.Close()
}

// TestLendingResizesOffTheWritersThread: a lowered writer that lends Ps
// has the count changed by a thread of the process's priority. The
// change stops the world until it is done, and on the lowered thread
// the kernel left it stopped for milliseconds.
func TestLendingResizesOffTheWritersThread(t *testing.T) {
	base := processNice(t)
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	nices := make(chan int, 4)
	resized = reportNice(t, nices)
	t.Cleanup(func() { resized = nil })
	c := New(func(_ context.Context, batch []int) ([]error, error) {
		return make([]error, len(batch)), nil
	}, 4, Background(5))
	defer c.Close()
	if err := c.Lowered(); err != nil {
		t.Fatalf("Lowered: %v", err)
	}
	c.LendProcs(true)
	if err := c.Do(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	// One loan: the count went up, and back down before Do returned.
	for _, what := range []string{"lent", "returned"} {
		if n := <-nices; n != base {
			t.Errorf("the P was %s by a thread at nice %d, want the process's %d", what, n, base)
		}
	}
}

// TestBackgroundLowersTheCommitAlone: of a lowered writer's work, only the
// Commit runs on a lowered thread; the writer that gathers the batch and
// wakes its callers runs at the process's priority. A goroutine locked to
// a lowered thread takes the P of whoever wakes it, and held it, away
// from every other goroutine, until the kernel ran that thread.
func TestBackgroundLowersTheCommitAlone(t *testing.T) {
	base := processNice(t)
	commits, releases := make(chan sched, 8), make(chan int, 8)
	released = reportNice(t, releases)
	t.Cleanup(func() { released = nil })
	t.Cleanup(runtime.SetDefaultGOMAXPROCS) // lending changes the count
	c := New(commitSched(t, commits), 4, Background(5))
	defer c.Close()
	if err := c.Lowered(); err != nil {
		t.Fatalf("Lowered: %v", err)
	}
	for _, lend := range []bool{false, true} {
		c.LendProcs(lend)
		if err := c.Do(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if s := <-commits; s.policy != idle {
			t.Errorf("lending %v: the commit ran with %v, want the idle class", lend, s)
		}
		if n := <-releases; n != base {
			t.Errorf("lending %v: the callers were released by a thread at nice %d, want the process's %d", lend, n, base)
		}
	}
}

// TestStarvedCommitsMoveToTheLoweredThread: a commit that waited in the
// idle class longer than starveAfter sends the next ones to the thread at
// the lowered nice value, which the kernel still gives a share of a busy
// core, until starvedFor has passed.
func TestStarvedCommitsMoveToTheLoweredThread(t *testing.T) {
	base := processNice(t)
	want := min(base+5, 19)
	wasAfter, wasFor := starveAfter, starvedFor
	t.Cleanup(func() { starveAfter, starvedFor = wasAfter, wasFor })
	starveAfter = 0 // every commit in the idle class counts as starved

	got := make(chan sched, 8)
	commit := func(c *Committer[int]) sched {
		t.Helper()
		if err := c.Do(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		return <-got
	}
	starvedFor = time.Hour
	c := New(commitSched(t, got), 4, Background(5))
	defer c.Close()
	if s := commit(c); s.policy != idle {
		t.Errorf("first commit with %v, want the idle class", s)
	}
	for i := range 2 {
		if s := commit(c); s.policy == idle || s.nice != want {
			t.Errorf("commit %d after a starved one: %v, want nice %d", i+2, s, want)
		}
	}
	if n := c.Starved(); n != 1 {
		t.Errorf("Starved() = %d, want 1", n)
	}

	// Once starvedFor has passed (at once, here), back to the idle class.
	starvedFor = 0
	c2 := New(commitSched(t, got), 4, Background(5))
	defer c2.Close()
	for i := range 2 {
		if s := commit(c2); s.policy != idle {
			t.Errorf("commit %d once the starved spell is over: %v, want the idle class", i+1, s)
		}
	}
	if n := c2.Starved(); n != 2 {
		t.Errorf("Starved() = %d, want 2", n)
	}
}
