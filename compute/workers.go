package compute

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Helper goroutines for the kernels that are cut into bands.
//
// Starting a goroutine for each band and waiting for it costs little CPU, but when the other cores'
// goroutines have gone idle the wake-up goes through the operating system: measured here, a fork and
// join after 30 µs of sequential work costs about 12 µs, as much as a whole element-wise op on a
// [32,7,7,32] tensor. So cutting the step's many small kernels gained nothing. Instead, GOMAXPROCS-1
// helper goroutines, started once, take bands: after a band each keeps polling for the next one for
// helperSpin (yielding its core to any other runnable goroutine every 256 polls: yielding on every
// poll made the cores contend for the scheduler's lock, whose lock2/unlock2 were 7% of a step's CPU
// profile; polling this way took the step from 22.9 to 22.3 ms, means of seven alternated runs) and
// only then parks on a channel. Between the ops of a training step the helpers stay awake, so handing over a band costs
// well under a microsecond; an idle process parks them after helperSpin.

// helperSpin is how long a helper polls for a new band after its last one before parking.
const helperSpin = 500 * time.Microsecond

type helper struct {
	busy   atomic.Bool   // claimed by a caller of runBands, until its band is done
	seq    atomic.Uint64 // incremented by the caller when fn is set
	done   atomic.Uint64 // set to seq by the helper when fn has returned
	parked atomic.Bool   // the helper is (about to be) blocked on wake
	wake   chan struct{} // capacity 1
	fn     func()        // the band, written before seq is incremented
	panic  any           // fn's panic, if any, read by the caller after done
}

var (
	helpersOnce sync.Once
	helpers     []*helper
)

// startHelpers starts the helper goroutines, once.
func startHelpers() {
	helpersOnce.Do(func() {
		n := runtime.GOMAXPROCS(0) - 1
		for range max(n, 0) {
			h := &helper{wake: make(chan struct{}, 1)}
			helpers = append(helpers, h)
			go h.loop()
		}
	})
}

// loop runs the bands handed to h, forever.
func (h *helper) loop() {
	var last uint64
	for {
		start := time.Now()
		for polls := 0; h.seq.Load() == last; polls++ {
			if polls&1023 == 1023 && time.Since(start) > helperSpin {
				h.parked.Store(true)
				if h.seq.Load() == last {
					<-h.wake // a stale token only makes the loop poll again
				}
				h.parked.Store(false)
				start = time.Now()
				continue
			}
			if polls&255 == 255 {
				runtime.Gosched() // now and then, so that a goroutine waiting for this core gets it
			}
		}
		last = h.seq.Load()
		h.run()
		h.done.Store(last)
	}
}

// run calls h.fn, keeping a panic for the caller to re-raise.
func (h *helper) run() {
	defer func() {
		h.panic = recover()
		h.fn = nil
	}()
	h.fn()
}

// claim hands fn to an idle helper and returns it, or returns nil when every helper is busy (then
// the caller runs fn itself).
func claimHelper(fn func()) *helper {
	for _, h := range helpers {
		if h.busy.CompareAndSwap(false, true) {
			h.fn = fn
			h.seq.Add(1)
			if h.parked.Load() {
				select {
				case h.wake <- struct{}{}:
				default:
				}
			}
			return h
		}
	}
	return nil
}

// wait returns when h has run the band it was handed (re-raising its panic) and releases it.
func (h *helper) wait() {
	want := h.seq.Load()
	for polls := 0; h.done.Load() != want; polls++ {
		if polls&255 == 255 {
			runtime.Gosched()
		}
	}
	p := h.panic
	h.panic = nil
	h.busy.Store(false)
	if p != nil {
		panic(p)
	}
}

// runBands calls band(i) for i in [0, n): band 0 on the calling goroutine, the others on idle
// helpers, or on the calling goroutine when none is idle (so nested and concurrent callers never
// wait for each other). It returns when every band has returned.
func runBands(n int, band func(i int)) {
	startHelpers()
	var claimed []*helper
	var inline []int
	for i := 1; i < n; i++ {
		if h := claimHelper(func() { band(i) }); h != nil {
			claimed = append(claimed, h)
		} else {
			inline = append(inline, i)
		}
	}
	defer func() {
		for _, h := range claimed {
			h.wait()
		}
	}()
	if n > 0 {
		band(0)
	}
	for _, i := range inline {
		band(i)
	}
}
