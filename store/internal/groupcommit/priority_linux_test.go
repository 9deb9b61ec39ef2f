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
)

// threadNice reads a thread's nice value from /proc (the 19th field of
// its stat), apart from the system calls the package uses.
func threadNice(t *testing.T, statPath string) int {
	t.Helper()
	n, err := readNice(statPath)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readNice(statPath string) (int, error) {
	b, err := os.ReadFile(statPath)
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	n, err := strconv.Atoi(f[16]) // fields from the state (the 3rd) on: nice is the 19th
	if err != nil {
		return 0, fmt.Errorf("nice in %q: %w", s, err)
	}
	return n, nil
}

// TestBackgroundLowersTheWriterAlone: the commits run on a thread whose
// nice value is the process's raised by the option, and no other thread
// of the process is lowered, however many the runtime starts meanwhile.
func TestBackgroundLowersTheWriterAlone(t *testing.T) {
	runtime.LockOSThread()
	base := threadNice(t, "/proc/thread-self/stat")
	runtime.UnlockOSThread()
	want := min(base+5, 19)

	got := make(chan int, 1)
	c := New(func(_ context.Context, batch []int) ([]error, error) {
		n, err := readNice("/proc/thread-self/stat")
		if err != nil {
			t.Error(err) // not Fatal: this is the writer's goroutine
		}
		got <- n
		return make([]error, len(batch)), nil
	}, 4, Background(5))
	if err := c.Lowered(); err != nil {
		t.Fatalf("Lowered: %v", err)
	}
	if err := c.Do(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != want {
		t.Errorf("the commit ran at nice %d, want %d (the process's %d, lowered by 5)", n, want, base)
	}
	// Make the runtime start threads while the writer's exists.
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
	tasks, err := filepath.Glob("/proc/self/task/*/stat")
	if err != nil {
		t.Fatal(err)
	}
	lowered := 0
	for _, p := range tasks {
		n, err := readNice(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // a thread that ended since (a locked goroutine's)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n != base {
			lowered++
			if n != want {
				t.Errorf("thread %s at nice %d; want the process's %d or the writer's %d", p, n, base, want)
			}
		}
	}
	if want != base && lowered != 1 {
		t.Errorf("%d of %d threads lowered; want the writer's alone", lowered, len(tasks))
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
	runtime.LockOSThread()
	base := threadNice(t, "/proc/thread-self/stat")
	runtime.UnlockOSThread()
	if base >= 19 {
		// A lowered thread cannot be told apart; CI runs its tests at
		// the usual priority, so there this is a fault of the set-up.
		if os.Getenv("CI") != "" {
			t.Fatal("the tests run at nice 19: a lowered thread cannot be told apart")
		}
		t.Skip("the process already runs at the lowest priority: a lowered thread cannot be told apart")
	}
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	nices := make(chan int, 4)
	resized = func() {
		n, err := readNice("/proc/thread-self/stat")
		if err != nil {
			t.Error(err)
		}
		nices <- n
	}
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
// Commit runs on the lowered thread; the writer that gathers the batch
// and wakes its callers runs at the process's priority. A goroutine
// locked to the lowered thread takes the P of whoever wakes it, and held
// it, away from every other goroutine, until the kernel ran that thread.
func TestBackgroundLowersTheCommitAlone(t *testing.T) {
	runtime.LockOSThread()
	base := threadNice(t, "/proc/thread-self/stat")
	runtime.UnlockOSThread()
	if base >= 19 {
		if os.Getenv("CI") != "" {
			t.Fatal("the tests run at nice 19: a lowered thread cannot be told apart")
		}
		t.Skip("the process already runs at the lowest priority: a lowered thread cannot be told apart")
	}
	want := min(base+5, 19)
	commits, releases := make(chan int, 8), make(chan int, 8)
	released = func() {
		n, err := readNice("/proc/thread-self/stat")
		if err != nil {
			t.Error(err)
		}
		releases <- n
	}
	t.Cleanup(func() { released = nil })
	c := New(func(_ context.Context, batch []int) ([]error, error) {
		n, err := readNice("/proc/thread-self/stat")
		if err != nil {
			t.Error(err)
		}
		commits <- n
		return make([]error, len(batch)), nil
	}, 4, Background(5))
	defer c.Close()
	if err := c.Lowered(); err != nil {
		t.Fatalf("Lowered: %v", err)
	}
	for _, lend := range []bool{false, true} {
		c.LendProcs(lend)
		if err := c.Do(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if n := <-commits; n != want {
			t.Errorf("lending %v: the commit ran at nice %d, want %d", lend, n, want)
		}
		if n := <-releases; n != base {
			t.Errorf("lending %v: the callers were released by a thread at nice %d, want the process's %d", lend, n, base)
		}
	}
	runtime.SetDefaultGOMAXPROCS()
}
