// Package batch is the dynamic batcher of `hypernoise serve`: concurrent generation requests for
// the same method settings (one infer.Request: method, hypernetwork, reward, N, steps, beta) are
// merged into one run of the pipeline, up to MaxRows noise rows, and each request gets back its
// own rows.
//
// A fixed pool of Workers goroutines runs the merged batches (the bound on generations at once).
// A worker takes the oldest waiting request; if it arrived less than Window ago and its batch is
// not full, the worker waits for the rest of the window so that others can join; then it takes
// every waiting request with the same settings, oldest first, while their rows fit. Requests that
// wait while every worker is busy join the next batch of their settings without any window.
//
// Every method of the toolkit treats the rows of a batch independently (a row's sample depends on
// its own noise and prompt only), so a request's images do not depend on what it was batched
// with (TestBatchedEqualsAlone checks this bit for bit on the serving pipeline).
//
// A request whose context is done before its batch starts is dropped without running; a request
// larger than MaxRows runs in several chunks, and one whose context ends between two chunks is
// dropped there, so a timed-out generation frees its worker as soon as the running chunk ends.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hypernoise/hypernoise/infer"
)

// Rows is the outcome of running noise rows: samples, rewards and the method's figures.
type Rows struct {
	X           []float32 // samples, row-major [B, SampleShape...]
	SampleShape []int     // shape of one sample
	Rewards     []float32 // [B]
	Method      string    // the method's label
	RewardSpec  string
	NFE         float64 // network evaluations per sample
}

// RunFunc runs req on noises eps [B, NoiseShape...] (row-major) and prompt ids [B].
type RunFunc func(req infer.Request, eps []float32, prompts []int32) (*Rows, error)

// Config sets the batcher's window, batch size and workers.
type Config struct {
	Window  time.Duration // how long the oldest request waits for others to join (0: no waiting)
	MaxRows int           // most noise rows in one run
	Workers int           // runs at once
	// OnRun, if set, is called after each run with its rows, its requests and its wall time.
	OnRun func(rows, requests int, seconds float64)
}

// Job is one request: its settings, its noise rows and its context.
type Job struct {
	Ctx     context.Context
	Req     infer.Request
	Eps     []float32 // N rows of the generator's noise shape
	Prompts []int32   // [N]
}

// Result is a job's share of the runs it took part in.
type Result struct {
	Rows
	Batch    int     // rows of the (largest) run it was part of
	Requests int     // requests in that run
	Seconds  float64 // wall time of its runs
}

type item struct {
	job     Job
	n       int
	arrived time.Time
	done    chan outcome
}

type outcome struct {
	res *Result
	err error
}

// Batcher merges concurrent jobs. It is safe for concurrent use.
type Batcher struct {
	cfg  Config
	run  RunFunc
	mu   sync.Mutex
	cond *sync.Cond
	wait []*item // waiting jobs, oldest first
	stop bool
	wg   sync.WaitGroup
}

// ErrClosed is returned for jobs submitted to, or still waiting in, a closed batcher.
var ErrClosed = errors.New("batcher is closed")

// New starts a batcher with cfg.Workers workers over run.
func New(cfg Config, run RunFunc) (*Batcher, error) {
	switch {
	case cfg.Window < 0 || cfg.Window > time.Second:
		return nil, fmt.Errorf("batch window must be in [0, 1s], got %s", cfg.Window)
	case cfg.MaxRows < 1 || cfg.MaxRows > 4096:
		return nil, fmt.Errorf("batch rows must be in [1, 4096], got %d", cfg.MaxRows)
	case cfg.Workers < 1 || cfg.Workers > 256:
		return nil, fmt.Errorf("batch workers must be in [1, 256], got %d", cfg.Workers)
	case run == nil:
		return nil, fmt.Errorf("batcher needs a run function")
	}
	b := &Batcher{cfg: cfg, run: run}
	b.cond = sync.NewCond(&b.mu)
	for range cfg.Workers {
		b.wg.Add(1)
		go b.worker()
	}
	return b, nil
}

// Waiting is the number of jobs waiting for a worker.
func (b *Batcher) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.wait)
}

// Do runs a job, merged with others of the same settings, and returns its rows. It returns the
// context's error as soon as the job's context is done (the job is then dropped, or stops after
// the chunk that is running).
func (b *Batcher) Do(job Job) (*Result, error) {
	n := len(job.Prompts)
	if n == 0 || len(job.Eps)%n != 0 {
		return nil, fmt.Errorf("batch: %d noise values for %d prompts", len(job.Eps), n)
	}
	it := &item{job: job, n: n, arrived: time.Now(), done: make(chan outcome, 1)}
	b.mu.Lock()
	if b.stop {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.wait = append(b.wait, it)
	b.mu.Unlock()
	b.cond.Signal()
	select {
	case o := <-it.done:
		return o.res, o.err
	case <-job.Ctx.Done():
		b.cond.Broadcast() // a worker waiting out this job's window re-plans
		return nil, job.Ctx.Err()
	}
}

// Close stops the workers after their running batches and fails the jobs still waiting.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.stop = true
	left := b.wait
	b.wait = nil
	b.mu.Unlock()
	b.cond.Broadcast()
	for _, it := range left {
		it.done <- outcome{err: ErrClosed}
	}
	b.wg.Wait()
}

func (b *Batcher) worker() {
	defer b.wg.Done()
	for {
		batch := b.next()
		if batch == nil {
			return
		}
		b.runBatch(batch)
	}
}

// next blocks until a batch is due and takes it out of the waiting list (nil: closed).
func (b *Batcher) next() []*item {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if b.stop {
			return nil
		}
		b.dropGone()
		if len(b.wait) == 0 {
			b.cond.Wait()
			continue
		}
		oldest := b.wait[0]
		rows := 0
		for _, it := range b.wait {
			if it.job.Req == oldest.job.Req {
				rows += it.n
			}
		}
		if due := oldest.arrived.Add(b.cfg.Window); rows < b.cfg.MaxRows && time.Now().Before(due) {
			t := time.AfterFunc(time.Until(due), b.cond.Broadcast)
			b.cond.Wait()
			t.Stop()
			continue
		}
		return b.take(oldest.job.Req)
	}
}

// dropGone removes waiting jobs whose context is done (their callers have returned).
func (b *Batcher) dropGone() {
	kept := b.wait[:0]
	for _, it := range b.wait {
		if it.job.Ctx.Err() == nil {
			kept = append(kept, it)
		}
	}
	clear(b.wait[len(kept):])
	b.wait = kept
}

// take removes and returns the oldest waiting jobs with settings req whose rows fit in MaxRows
// (at least the oldest one).
func (b *Batcher) take(req infer.Request) []*item {
	var out []*item
	kept := b.wait[:0]
	rows := 0
	for _, it := range b.wait {
		if it.job.Req == req && (len(out) == 0 || rows+it.n <= b.cfg.MaxRows) {
			out = append(out, it)
			rows += it.n
			continue
		}
		kept = append(kept, it)
	}
	clear(b.wait[len(kept):])
	b.wait = kept
	return out
}

// share is an item's part of a chunk: rows [lo, hi) of the item at offset off in the chunk.
type share struct {
	it      *item
	lo, hi  int
	off     int
	partial *Result
}

// runBatch runs the items' rows in chunks of at most MaxRows and delivers each item's result.
func (b *Batcher) runBatch(items []*item) {
	results := make(map[*item]*Result, len(items))
	failed := map[*item]bool{}
	next := make(map[*item]int, len(items)) // next row to run per item
	for {
		var shares []share
		rows := 0
		for _, it := range items {
			if failed[it] || next[it] >= it.n || it.job.Ctx.Err() != nil {
				continue
			}
			take := min(it.n-next[it], b.cfg.MaxRows-rows)
			if take == 0 {
				break
			}
			shares = append(shares, share{it: it, lo: next[it], hi: next[it] + take, off: rows})
			rows += take
		}
		if len(shares) == 0 {
			return
		}
		out, sec, err := b.runChunk(shares, rows)
		for _, s := range shares {
			next[s.it] = s.hi
			if err != nil {
				failed[s.it] = true
				s.it.done <- outcome{err: err}
				continue
			}
			results[s.it] = appendRows(results[s.it], out, s, rows, len(shares), sec)
			if s.hi == s.it.n {
				s.it.done <- outcome{res: results[s.it]}
			}
		}
	}
}

// runChunk concatenates the shares' noise rows, runs them and reports the run.
func (b *Batcher) runChunk(shares []share, rows int) (out *Rows, sec float64, err error) {
	d := len(shares[0].it.job.Eps) / shares[0].it.n
	eps := make([]float32, 0, rows*d)
	prompts := make([]int32, 0, rows)
	for _, s := range shares {
		eps = append(eps, s.it.job.Eps[s.lo*d:s.hi*d]...)
		prompts = append(prompts, s.it.job.Prompts[s.lo:s.hi]...)
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("generation failed: %v", v)
		}
	}()
	t0 := time.Now()
	out, err = b.run(shares[0].it.job.Req, eps, prompts)
	sec = time.Since(t0).Seconds()
	if err == nil && (len(out.Rewards) != rows || len(out.X)%rows != 0) {
		err = fmt.Errorf("generation returned %d rewards and %d values for %d rows", len(out.Rewards), len(out.X), rows)
	}
	if b.cfg.OnRun != nil {
		b.cfg.OnRun(rows, len(shares), sec)
	}
	return out, sec, err
}

// appendRows adds a share's rows of a chunk's output to the item's result.
func appendRows(r *Result, out *Rows, s share, rows, requests int, sec float64) *Result {
	if r == nil {
		r = &Result{Rows: Rows{SampleShape: out.SampleShape, Method: out.Method, RewardSpec: out.RewardSpec, NFE: out.NFE}}
	}
	d := len(out.X) / rows
	n := s.hi - s.lo
	r.X = append(r.X, out.X[s.off*d:(s.off+n)*d]...)
	r.Rewards = append(r.Rewards, out.Rewards[s.off:s.off+n]...)
	if rows > r.Batch {
		r.Batch, r.Requests = rows, requests
	}
	r.Seconds += sec
	return r
}
