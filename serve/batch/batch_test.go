package batch

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hypernoise/hypernoise/infer"
)

// recorder is a run function that doubles each noise value, rewards each row with its first
// value, and records the runs it saw.
type recorder struct {
	mu      sync.Mutex
	runs    []int // rows per run
	gate    chan struct{}
	entered chan struct{}
}

func (r *recorder) run(req infer.Request, eps []float32, prompts []int32) (*Rows, error) {
	if r.gate != nil {
		r.entered <- struct{}{}
		<-r.gate
	}
	r.mu.Lock()
	r.runs = append(r.runs, len(prompts))
	r.mu.Unlock()
	d := len(eps) / len(prompts)
	out := &Rows{SampleShape: []int{d}, Method: req.Method, X: make([]float32, len(eps)), Rewards: make([]float32, len(prompts))}
	for i, v := range eps {
		out.X[i] = 2 * v
	}
	for i := range prompts {
		out.Rewards[i] = eps[i*d] + float32(prompts[i])
	}
	return out, nil
}

func rowsOf(start, n int) ([]float32, []int32) {
	eps := make([]float32, 2*n)
	for i := range eps {
		eps[i] = float32(start*2 + i)
	}
	return eps, make([]int32, n)
}

// TestMerge: jobs of the same settings arriving within the window run as one batch, each getting
// exactly its own rows; a job of other settings runs apart.
func TestMerge(t *testing.T) {
	rec := &recorder{}
	b, err := New(Config{Window: 300 * time.Millisecond, MaxRows: 16, Workers: 1}, rec.run)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sizes := []int{1, 3, 2, 4}
	results := make([]*Result, len(sizes)+1)
	var wg sync.WaitGroup
	for i, n := range sizes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eps, pr := rowsOf(10*i, n)
			r, err := b.Do(Job{Ctx: context.Background(), Req: infer.Request{Method: "base"}, Eps: eps, Prompts: pr})
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		eps, pr := rowsOf(99, 2)
		results[len(sizes)], _ = b.Do(Job{Ctx: context.Background(), Req: infer.Request{Method: "reno", Steps: 1}, Eps: eps, Prompts: pr})
	}()
	wg.Wait()
	for i, n := range sizes {
		r := results[i]
		eps, _ := rowsOf(10*i, n)
		if r == nil || len(r.X) != len(eps) || r.Batch != 10 || r.Requests != 4 {
			t.Fatalf("job %d (n=%d): %+v, want its %d rows from one batch of 10 rows and 4 requests", i, n, r, n)
		}
		for k, v := range eps {
			if r.X[k] != 2*v {
				t.Fatalf("job %d got value %g at %d, want %g: rows of another job", i, r.X[k], k, 2*v)
			}
		}
	}
	if r := results[len(sizes)]; r == nil || r.Requests != 1 || r.Method != "reno" {
		t.Errorf("the job of other settings: %+v, want a batch of its own", r)
	}
	if got := slices.Sorted(slices.Values(rec.runs)); !slices.Equal(got, []int{2, 10}) {
		t.Errorf("runs of %v rows, want one of 10 (base) and one of 2 (reno)", rec.runs)
	}
}

// TestChunksAndDrops: a job larger than MaxRows runs in chunks; a job whose context ends while it
// waits is never run; a job whose context ends during its first chunk stops after it.
func TestChunksAndDrops(t *testing.T) {
	rec := &recorder{gate: make(chan struct{}), entered: make(chan struct{}, 16)}
	b, err := New(Config{MaxRows: 4, Workers: 1}, rec.run)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	eps, pr := rowsOf(0, 10)
	done := make(chan *Result)
	go func() {
		r, err := b.Do(Job{Ctx: context.Background(), Req: infer.Request{Method: "base"}, Eps: eps, Prompts: pr})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	rec.gate <- struct{}{} // the first chunk of the large job is running
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error)
	go func() {
		e, p := rowsOf(50, 1)
		_, err := b.Do(Job{Ctx: ctx, Req: infer.Request{Method: "hypernoise"}, Eps: e, Prompts: p})
		gone <- err
	}()
	for b.Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-gone; err != context.Canceled {
		t.Errorf("cancelled waiting job: %v", err)
	}
	rec.gate <- struct{}{}
	rec.gate <- struct{}{}
	r := <-done
	if r == nil || len(r.Rewards) != 10 || r.Batch != 4 || r.Rewards[9] != eps[18] {
		t.Fatalf("large job: %+v, want 10 rows in chunks of at most 4", r)
	}
	// A job cancelled while its first chunk runs: the second chunk never runs.
	ctx2, cancel2 := context.WithCancel(context.Background())
	for len(rec.entered) > 0 {
		<-rec.entered
	}
	go func() { _, _ = b.Do(Job{Ctx: ctx2, Req: infer.Request{Method: "base"}, Eps: eps, Prompts: pr}) }()
	<-rec.entered
	cancel2()
	close(rec.gate)
	b.Close()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !slices.Equal(rec.runs, []int{4, 4, 2, 4}) {
		t.Errorf("runs of %v rows, want [4 4 2] for the large job then [4] for the cancelled one (the waiting job dropped)", rec.runs)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{{MaxRows: 0, Workers: 1}, {MaxRows: 1, Workers: 0}, {Window: -1, MaxRows: 1, Workers: 1}} {
		if _, err := New(c, (&recorder{}).run); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
