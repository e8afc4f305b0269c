package compute

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRunBandsEachOnce checks that runBands calls every band exactly once, for counts below, at and
// above the number of helpers, also when called from many goroutines at once and from inside a band.
func TestRunBandsEachOnce(t *testing.T) {
	check := func(n int) {
		hits := make([]atomic.Int32, n)
		runBands(n, func(i int) { hits[i].Add(1) })
		for i := range hits {
			if got := hits[i].Load(); got != 1 {
				t.Errorf("runBands(%d): band %d ran %d times", n, i, got)
			}
		}
	}
	for _, n := range []int{0, 1, 2, 3, 7, 64} {
		check(n)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				check(3)
			}
		}()
	}
	wg.Wait()
	// Nested: each outer band cuts its own work again; an outer band may hold the only helper.
	var total atomic.Int64
	runBands(4, func(i int) {
		runBands(5, func(j int) { total.Add(int64(10*i + j)) })
	})
	if want := int64(4*(0+1+2+3+4) + 5*10*(0+1+2+3)); total.Load() != want {
		t.Errorf("nested runBands summed %d, want %d", total.Load(), want)
	}
}

// TestParallelRangesCovers checks that parallelRanges covers [0, total) with disjoint ranges whose
// inner edges are multiples of align.
func TestParallelRangesCovers(t *testing.T) {
	for _, c := range []struct{ total, parts, align int }{{100, 2, 16}, {7, 3, 1}, {1000, 5, 4}, {3, 4, 1}} {
		seen := make([]atomic.Int32, c.total)
		var mu sync.Mutex
		var edges []int
		parallelRanges(c.total, c.parts, c.align, func(lo, hi int) {
			mu.Lock()
			edges = append(edges, lo, hi)
			mu.Unlock()
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		for i := range seen {
			if seen[i].Load() != 1 {
				t.Fatalf("%+v: index %d covered %d times", c, i, seen[i].Load())
			}
		}
		for _, e := range edges {
			if e != 0 && e != c.total && e%c.align != 0 {
				t.Errorf("%+v: band edge %d not a multiple of %d", c, e, c.align)
			}
		}
	}
}

// TestRunBandsPanic checks that a band's panic reaches the caller, whichever goroutine ran the band,
// and that the helpers are free again afterwards.
func TestRunBandsPanic(t *testing.T) {
	for _, bad := range []int{0, 1} {
		func() {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, "band failed") {
					t.Errorf("bad band %d: recovered %v, want the band's panic", bad, r)
				}
			}()
			runBands(2, func(i int) {
				if i == bad {
					panic("band failed")
				}
			})
		}()
	}
	for _, h := range helpers {
		if h.busy.Load() {
			t.Error("a helper is still claimed after a band panicked")
		}
	}
}

// TestHelpersUsedAndPark checks that with two or more cores the bands do run on a helper (not all on
// the caller), and that an idle process parks its helpers instead of polling forever.
func TestHelpersUsedAndPark(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2: with one core every band runs on the caller by design")
	}
	startHelpers()
	if len(helpers) == 0 {
		t.Fatal("no helper goroutines started with GOMAXPROCS >= 2")
	}
	// Band 0 waits for band 1: that can only end early if band 1 runs on another goroutine.
	signal := make(chan struct{})
	concurrent := false
	runBands(2, func(i int) {
		if i == 1 {
			close(signal)
			return
		}
		select {
		case <-signal:
			concurrent = true
		case <-time.After(time.Second):
		}
	})
	if !concurrent {
		t.Error("band 1 did not run while band 0 waited for it: the helpers are not taking bands")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		all := true
		for _, h := range helpers {
			all = all && h.parked.Load()
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("helpers still polling 2 s after the last band (they should park after %v)", helperSpin)
		}
		time.Sleep(time.Millisecond)
	}
	// A parked helper still takes the next band.
	var ran atomic.Int32
	runBands(len(helpers)+1, func(int) { ran.Add(1) })
	if int(ran.Load()) != len(helpers)+1 {
		t.Errorf("after parking: %d of %d bands ran", ran.Load(), len(helpers)+1)
	}
}
