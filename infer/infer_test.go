package infer_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline/hntest"
)

// trainedFolders writes two hypernetwork folders (random adapters, different seeds and rewards)
// once per test binary.
var trainedFolders = sync.OnceValue(func() [2]string {
	root, err := os.MkdirTemp("", "infer-test")
	if err != nil {
		panic(err)
	}
	return [2]string{hntest.Folder(panicTB{}, root, "hn0", "align=1", 1), hntest.Folder(panicTB{}, root, "hn1", "brightness=1", 2)}
})

// panicTB lets hntest.Folder run outside a test (inside sync.OnceValue).
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func generate(t *testing.T, p *infer.Pipeline, r infer.Request, seed uint64, prompts []int32) []float32 {
	t.Helper()
	out, err := p.Generate(r, hypernoise.Noise(seed, len(prompts), p.Model().Generator.NoiseShape()), tensors.FromValue(prompts))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out.X)
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestSideBySide loads two hypernetworks into one pipeline: each must sample exactly what it
// samples when loaded alone, and they must differ from each other and from the base.
func TestSideBySide(t *testing.T) {
	dirs := trainedFolders()
	both := hntest.Pipeline(t, dirs[0], dirs[1])
	if hs := both.Hypernets(); len(hs) != 2 || hs[0].Name != "hn0" || hs[1].Name != "hn1" || hs[0].Scope == hs[1].Scope {
		t.Fatalf("loaded %+v", hs)
	}
	prompts := []int32{0, 3, 7, 9, 1}
	base := generate(t, both, infer.Request{Method: "base"}, 5, prompts)
	var got [2][]float32
	for i, d := range dirs {
		alone := hntest.Pipeline(t, d)
		want := generate(t, alone, infer.Request{Method: "hypernoise"}, 5, prompts)
		got[i] = generate(t, both, infer.Request{Method: "hypernoise", Hypernet: filepath.Base(d)}, 5, prompts)
		if dd := maxDiff(want, got[i]); dd > 1e-6 {
			t.Errorf("hypernetwork %d loaded beside another differs from itself alone by %g", i, dd)
		}
		if maxDiff(base, got[i]) == 0 {
			t.Errorf("hypernetwork %d samples the base images", i)
		}
	}
	if maxDiff(got[0], got[1]) == 0 {
		t.Error("the two hypernetworks sample the same images")
	}
	// Errors name what is allowed.
	for _, c := range []struct {
		r    infer.Request
		want string
	}{
		{infer.Request{Method: "hypernoise"}, "several hypernetworks are loaded; name one of: hn0, hn1"},
		{infer.Request{Method: "hypernoise", Hypernet: "x"}, `unknown hypernetwork "x"; loaded: hn0, hn1`},
		{infer.Request{Method: "magic"}, "methods: base, best-of-n"},
		{infer.Request{Method: "best-of-n", N: -1}, "best-of-n needs N in [1, 10000], got -1"},
		{infer.Request{Method: "reno", Steps: 1001}, "reno needs steps in [1, 1000], got 1001"},
		{infer.Request{Method: "reno", Reward: "nope=1"}, "available rewards"},
		{infer.Request{Method: "finetune"}, "no fine-tuned generator"},
	} {
		if _, err := both.Method(c.r); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.r, err, c.want)
		}
	}
	if _, err := both.LoadHypernet(dirs[0]); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Errorf("loading a name twice: %v", err)
	}
}

// TestConcurrent runs several methods from many goroutines at once on one pipeline (with batch
// sizes that need new compiled shapes while others run); every result must equal the sequential
// one. Run with -race to check the locking (see .ci/run).
func TestConcurrent(t *testing.T) {
	dirs := trainedFolders()
	p := hntest.Pipeline(t, dirs[0], dirs[1])
	reqs := []infer.Request{
		{Method: "base"},
		{Method: "hypernoise", Hypernet: "hn0"},
		{Method: "hypernoise", Hypernet: "hn1"},
		{Method: "best-of-n", Hypernet: "hn1", N: 3},
	}
	type job struct {
		r       infer.Request
		seed    uint64
		prompts []int32
	}
	var jobs []job
	for i := range 12 {
		n := 1 + i%5
		prompts := make([]int32, n)
		for k := range prompts {
			prompts[k] = int32((i + k) % 10)
		}
		jobs = append(jobs, job{reqs[i%len(reqs)], uint64(i), prompts})
	}
	results := make([][]float32, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := p.Generate(j.r, hypernoise.Noise(j.seed, len(j.prompts), p.Model().Generator.NoiseShape()), tensors.FromValue(j.prompts))
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = tensors.MustCopyFlatData[float32](out.X)
		}()
	}
	wg.Wait()
	for i, j := range jobs {
		want := generate(t, p, j.r, j.seed, j.prompts)
		if results[i] == nil || maxDiff(want, results[i]) > 1e-6 {
			t.Errorf("job %d (%+v): concurrent result differs from the sequential one", i, j.r)
		}
	}
}

// TestCacheBounded: Generate with more distinct requests than MaxCachedMethods keeps at most that
// many methods built, and an evicted method rebuilt later gives the same samples.
func TestCacheBounded(t *testing.T) {
	p := hntest.Pipeline(t)
	prompts := []int32{3}
	first := generate(t, p, infer.Request{Method: "best-of-n", N: 1}, 4, prompts)
	for n := 2; n <= infer.MaxCachedMethods+4; n++ {
		generate(t, p, infer.Request{Method: "best-of-n", N: n}, 4, prompts)
		if c := p.Cached(); c > infer.MaxCachedMethods {
			t.Fatalf("%d methods kept built, more than %d", c, infer.MaxCachedMethods)
		}
	}
	if again := generate(t, p, infer.Request{Method: "best-of-n", N: 1}, 4, prompts); maxDiff(first, again) != 0 {
		t.Error("a rebuilt method samples differently")
	}
}
