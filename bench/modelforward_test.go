package bench

import (
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/models/onnx"
)

// modelSpec is the imported model the forward benchmarks time: $HN_BENCH_SPEC, else the small T2I
// fixture's bmm spec (make_t2i.py --size small writes it; the benchmark is skipped without it).
func modelSpec(b *testing.B) string {
	spec := os.Getenv("HN_BENCH_SPEC")
	if spec == "" {
		spec = "../models/onnx/testdata/t2i-small/t2i_bmm.json"
	}
	if _, err := os.Stat(spec); err != nil {
		b.Skipf("no model spec (%v): run models/onnx/testdata/make_t2i.py --size small or set HN_BENCH_SPEC", err)
	}
	return spec
}

// BenchmarkModelForward times the imported generator's forward at batch 2 ($HN_BENCH_BATCH if set),
// as bench --model --scale does (go test ./bench -run XXX -bench 'ModelForward$' -benchtime 10x -cpuprofile cpu.out): the
// median wall time per image, and the CPU time per image (all threads), which is steadier on a
// machine shared with other jobs.
func BenchmarkModelForward(b *testing.B) {
	modelForward(b, false)
}

// BenchmarkModelForwardOps prints the time per op kind of the same forwards (HN_OPTIMES_SHAPES=1
// splits the rows by shape, HN_OPTIMES_ROWS sets how many are printed).
func BenchmarkModelForwardOps(b *testing.B) {
	modelForward(b, true)
}

func modelForward(b *testing.B, ops bool) {
	batch := 2
	if v, err := strconv.Atoi(os.Getenv("HN_BENCH_BATCH")); err == nil && v > 0 {
		batch = v
	}
	backend, m := loadBenchModel(b, ops)
	defer backend.Finalize()
	exec, err := context.NewExec(backend, m.Context().Reuse(), func(ctx *context.Context, eps, pr *Node) *Node {
		return m.Generate(ctx, eps, pr)
	})
	if err != nil {
		b.Fatal(err)
	}
	defer exec.Finalize()
	eps, prompts := modelNoise(m, batch, 0)
	run := func() {
		out, err := exec.Exec(eps, prompts)
		if err != nil {
			b.Fatal(err)
		}
		out[0].FinalizeAll()
	}
	run()             // compiles
	compute.OpTimes() // reset
	steps := max(b.N, 5)
	times := make([]float64, steps)
	cpu := processCPUSeconds()
	for i := range times {
		start := time.Now()
		run()
		times[i] = time.Since(start).Seconds() * 1e3 / float64(batch)
	}
	b.ReportMetric((processCPUSeconds()-cpu)*1e3/float64(batch*steps), "cpu-ms/image")
	sort.Float64s(times)
	b.ReportMetric(times[steps/2], "ms/image")
	b.ReportMetric(times[0], "min-ms/image")
	if ops {
		logOpTimes(b, steps)
	}
}

// BenchmarkModelReno times ReNO iterations on the imported model (batch 2, the spec's default
// reward; -benchtime Nx: N iterations per timed run, at least 3), as bench --model --scale does: the
// best wall time per iteration per image, and the CPU time (all threads) per iteration per image,
// which is steadier on a shared machine. Gradients run through the generator, where the fused
// normalization and softmax nodes meet the gradient (compute/unfuse.go).
func BenchmarkModelReno(b *testing.B) {
	modelReno(b, false)
}

// BenchmarkModelRenoOps prints the time per op kind of the same ReNO iterations.
func BenchmarkModelRenoOps(b *testing.B) {
	modelReno(b, true)
}

func modelReno(b *testing.B, ops bool) {
	const batch = 2
	backend, m := loadBenchModel(b, ops)
	defer backend.Finalize()
	im := onnx.ModelOf(m)
	reward, err := im.Rewards.Parse(im.DefaultReward)
	if err != nil {
		b.Fatal(err)
	}
	steps := max(b.N, 3)
	o := ScaleOptions{Batch: batch, Steps: steps}
	if _, err := modelRenoStep(backend, m, im, reward, o); err != nil { // compiles
		b.Fatal(err)
	}
	compute.OpTimes() // reset
	cpu := processCPUSeconds()
	ms, err := modelRenoStep(backend, m, im, reward, o)
	if err != nil {
		b.Fatal(err)
	}
	// modelRenoStep runs ReNO twice (the first untimed), so the CPU and op times cover 2·steps iterations.
	b.ReportMetric((processCPUSeconds()-cpu)*1e3/float64(2*steps*batch), "cpu-ms/iter/image")
	b.ReportMetric(ms, "ms/iter/image")
	if ops {
		logOpTimes(b, 2*steps)
	}
}

// loadBenchModel loads the benchmark's model spec (modelSpec) on the test backend, with the per-op
// timers on when ops is set.
func loadBenchModel(b *testing.B, ops bool) (backends.Backend, *onnx.Model) {
	spec := modelSpec(b)
	if ops {
		compute.EnableOpTimes()
	}
	backend := testutil.Backend(b)
	m, err := onnx.Load(spec, backend)
	if err != nil {
		backend.Finalize()
		b.Fatal(err)
	}
	return backend, m
}

// logOpTimes logs the top rows of the per-op timers (benchRows, default 25), per run of runs.
func logOpTimes(b *testing.B, runs int) {
	rows := compute.OpTimes()
	for _, o := range rows[:min(benchRows(25), len(rows))] {
		b.Logf("%-40s %8.1f ms %6d  %5.1f%%", o.Op, float64(o.Time)/1e6/float64(runs), o.Count/runs, o.Percent)
	}
}
