package bench

import (
	"os"
	"strconv"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// BenchmarkHypernetStep times the HyperNoise training step (go test -bench HypernetStep -cpuprofile).
func BenchmarkHypernetStep(b *testing.B) {
	backend := testutil.Backend(b)
	defer backend.Finalize()
	hn, err := hypernetStep(backend, nil, max(b.N, 5))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(hn.stepMS, "ms/step")
	b.ReportMetric(hn.cpuMS, "cpu-ms/step")
}

// BenchmarkHypernetStepOps prints the time per op kind of the HyperNoise step (go test -bench StepOps -v).
func BenchmarkHypernetStepOps(b *testing.B) {
	opProfile(b, benchRows(15), func(backend backends.Backend) (float64, error) {
		hn, err := hypernetStep(backend, nil, max(b.N, 5))
		if err != nil {
			return 0, err
		}
		return hn.stepMS, nil
	})
}

// BenchmarkConvStepOps prints the time per op kind of the conv-net step.
func BenchmarkConvStepOps(b *testing.B) {
	opProfile(b, 12, func(backend backends.Backend) (float64, error) { return convStepTime(backend, max(b.N, 3)) })
}

// opProfile runs step (which returns ms per step) with the per-op timers on and logs the rows
// op kinds that took the most time.
func opProfile(b *testing.B, rows int, step func(backends.Backend) (float64, error)) {
	compute.EnableOpTimes()
	backend := testutil.Backend(b)
	defer backend.Finalize()
	compute.OpTimes() // reset
	ms, err := step(backend)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(ms, "ms/step")
	ops := compute.OpTimes()
	for _, o := range ops[:min(rows, len(ops))] {
		b.Logf("%-22s %8.1f ms %6d  %5.1f%%", o.Op, float64(o.Time)/1e6, o.Count, o.Percent)
	}
}

// BenchmarkHypernetStepBeforeAfter times the HyperNoise step with the compute fast paths off
// ("go:blas=off,fastops=off": SimpleGo's kernels plus the patched gradients) and on, alternating
// in one process, and reports both and their ratio.
func BenchmarkHypernetStepBeforeAfter(b *testing.B) {
	var ms [2][]float64
	for range max(b.N, 1) {
		for i, name := range []string{"go:blas=off,fastops=off", "go"} {
			backend, err := compute.NewBackend(name)
			if err != nil {
				b.Fatal(err)
			}
			hn, err := hypernetStep(backend, nil, 5)
			backend.Finalize()
			if err != nil {
				b.Fatal(err)
			}
			ms[i] = append(ms[i], hn.stepMS)
		}
	}
	before, after := median(ms[0]), median(ms[1])
	b.ReportMetric(before, "ms/step-before")
	b.ReportMetric(after, "ms/step-after")
	b.ReportMetric(before/after, "x-speedup")
}

// benchRows is how many rows the per-op profiles print: n, or HN_OPTIMES_ROWS when set.
func benchRows(n int) int {
	if v, err := strconv.Atoi(os.Getenv("HN_OPTIMES_ROWS")); err == nil && v > 0 {
		return v
	}
	return n
}
