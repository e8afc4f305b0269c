// Package bench times the steps that decide how long hypernoise takes on a machine, on any backend,
// next to PyTorch's CPU time for the same steps when python3-torch is installed:
//
//   - matmul_gflops: a 1024x1024 by 1024x1024 float32 product, 2·1024³ / seconds (median of 10 after
//     3 warm-up products, as the PyTorch script times its own);
//   - hypernet_step_ms: one HyperNoise training step on the embedded default (batch 32, LoRA rank 8
//     copy of the one-step student, frozen student + decoder + reward classifier, align reward,
//     mean-square regularizer, AdamW, gradient clipping), median over the timed steps;
//   - reno_step_ms: one ReNO iteration (reward forward + backward + Nesterov update), per image,
//     measured on a batch of 32 images;
//   - sample_ms_per_image: HyperNoise sampling x = g(eps + f(eps, c), c), per image, batch 32;
//   - mlp_step_ms, conv_step_ms: the MLP (784-1024-1024-784, batch 256, Adam) and small conv-net
//     (28x28x1, batch 64, conv3x3(32), conv3x3/2(64), dense(10), Adam) training steps of
//     ../shared/bench/torch_steps.py.
//
// The PyTorch figures come from running the scripts in a folder (../shared/bench by default) with
// /usr/bin/python3 in the same run, after ours, so the two are compared on the same machine state.
package bench

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gomlx/gomlx/backends"

	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/doctor"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// Figures are the measured times. In Result.Torch a figure the scripts do not measure is null.
type Figures struct {
	MatmulGFLOPS     *float64 `json:"matmul_gflops"`
	HypernetStepMS   *float64 `json:"hypernet_step_ms"`
	RenoStepMS       *float64 `json:"reno_step_ms"`
	SampleMSPerImage *float64 `json:"sample_ms_per_image"`
	MLPStepMS        *float64 `json:"mlp_step_ms"`
	ConvStepMS       *float64 `json:"conv_step_ms"`
}

// Result is what Run measured. Its JSON form is stable: the keys of Figures at the top level (ours),
// torch (PyTorch's, or null), ratios (each of ours divided by PyTorch's), blas and fallbacks.
type Result struct {
	Figures
	// HypernetStepCPUMS is the process CPU time per HyperNoise step (all threads): on a busy machine
	// it says what the step costs better than the wall time does. 0 where not measured.
	HypernetStepCPUMS float64 `json:"hypernet_step_cpu_ms"`
	// HypernetArch is the embedded student's architecture the HyperNoise step ran on (and
	// PyTorch's twin of it): "v2" today, "v1" for the earlier default.
	HypernetArch string             `json:"hypernet_arch"`
	Torch        *Figures           `json:"torch"`
	TorchError   string             `json:"torch_error,omitempty"` // why there are no PyTorch figures
	Ratios       map[string]float64 `json:"ratios,omitempty"`
	Backend      string             `json:"backend"`
	BLAS         string             `json:"blas"`      // the matrix product in use
	Fallbacks    int64              `json:"fallbacks"` // DotGeneral runs that did not take the fast path
	FallbackWhy  map[string]int64   `json:"fallback_reasons,omitempty"`
	FastMatmuls  int64              `json:"fast_matmuls"`  // DotGeneral runs on the fast path
	SplitMatmuls int64              `json:"split_matmuls"` // of those, spread over several cores
	Seconds      float64            `json:"seconds"`       // wall time of the whole run
}

// Options configures Run.
type Options struct {
	// TorchDir holds torch_steps.py and torch_hypernoise_step.py; empty means no PyTorch run.
	TorchDir string
	// Python is the interpreter with torch (default /usr/bin/python3).
	Python string
	// Steps is the number of timed steps per training benchmark (default 10).
	Steps int
	// Log receives one line per finished benchmark (may be nil).
	Log func(string)
	// Model is the model whose HyperNoise step, ReNO iteration and sampling are timed (nil: the
	// embedded default). PyTorch's scripts time the embedded default's networks only, so they are
	// not run for another model.
	Model *family.Model
}

// Run measures every figure on backend, then PyTorch's when opts.TorchDir is set.
func Run(backend backends.Backend, opts Options) (*Result, error) {
	if opts.Steps <= 0 {
		opts.Steps = 10
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log(fmt.Sprintf(format, args...))
		}
	}
	t0 := time.Now()
	before := compute.MatmulStats()
	res := &Result{Backend: backend.Name()}
	mp := compute.MatmulPathFor(backend)
	res.BLAS = mp.Path
	if mp.Library != "" {
		res.BLAS = mp.Library
	} else if mp.Reason != "" {
		res.BLAS += " (" + mp.Reason + ")"
	}

	mm, err := doctor.MatmulSpeed(backend, 1024)
	if err != nil {
		return nil, fmt.Errorf("bench matmul: %w", err)
	}
	res.MatmulGFLOPS = &mm.GFLOPS
	logf("matmul 1024^3: %.1f GFLOP/s", mm.GFLOPS)

	hn, err := hypernetStep(backend, opts.Model, opts.Steps)
	if err != nil {
		return nil, fmt.Errorf("bench hypernet step: %w", err)
	}
	res.HypernetStepMS = &hn.stepMS
	res.HypernetStepCPUMS = hn.cpuMS
	if a, ok := hn.model.Generator.(interface{ Arch(part string) string }); ok {
		res.HypernetArch = a.Arch("student")
	}
	logf("HyperNoise training step (batch %d): %.1f ms (%.1f ms of CPU)", hnBatch, hn.stepMS, hn.cpuMS)

	renoMS, err := renoStep(backend, hn)
	if err != nil {
		return nil, fmt.Errorf("bench ReNO: %w", err)
	}
	res.RenoStepMS = &renoMS
	logf("ReNO iteration: %.2f ms per image", renoMS)

	sampleMS, err := sampleTime(backend, hn)
	if err != nil {
		return nil, fmt.Errorf("bench sample: %w", err)
	}
	res.SampleMSPerImage = &sampleMS
	logf("HyperNoise sample: %.3f ms per image", sampleMS)

	mlpMS, err := mlpStepTime(backend, opts.Steps)
	if err != nil {
		return nil, fmt.Errorf("bench MLP step: %w", err)
	}
	res.MLPStepMS = &mlpMS
	logf("MLP step: %.1f ms", mlpMS)

	convMS, err := convStepTime(backend, opts.Steps)
	if err != nil {
		return nil, fmt.Errorf("bench conv step: %w", err)
	}
	res.ConvStepMS = &convMS
	logf("conv-net step: %.1f ms", convMS)

	after := compute.MatmulStats()
	res.FastMatmuls = after.Fast - before.Fast
	res.SplitMatmuls = after.Split - before.Split
	res.Fallbacks = after.Fallback - before.Fallback
	for k, v := range after.Reasons {
		if d := v - before.Reasons[k]; d > 0 {
			if res.FallbackWhy == nil {
				res.FallbackWhy = map[string]int64{}
			}
			res.FallbackWhy[k] = d
		}
	}

	if opts.Model != nil && opts.Model.Family != fashion.FamilyName {
		res.TorchError = "PyTorch's scripts time the embedded model only"
	} else if opts.TorchDir != "" {
		tf, err := RunTorch(opts.TorchDir, opts.Python, res.HypernetArch)
		if err != nil {
			res.TorchError = err.Error()
			logf("PyTorch: %v", err)
		} else {
			res.Torch = tf
			res.Ratios = ratios(&res.Figures, tf)
			logf("PyTorch figures measured")
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

// ratios divides each of our figures by PyTorch's: for the times below 1 means faster than PyTorch,
// for matmul_gflops above 1 means faster.
func ratios(ours, torch *Figures) map[string]float64 {
	out := map[string]float64{}
	add := func(key string, a, b *float64) {
		if a != nil && b != nil && *b > 0 {
			out[key] = *a / *b
		}
	}
	add("matmul_gflops", ours.MatmulGFLOPS, torch.MatmulGFLOPS)
	add("hypernet_step_ms", ours.HypernetStepMS, torch.HypernetStepMS)
	add("reno_step_ms", ours.RenoStepMS, torch.RenoStepMS)
	add("sample_ms_per_image", ours.SampleMSPerImage, torch.SampleMSPerImage)
	add("mlp_step_ms", ours.MLPStepMS, torch.MLPStepMS)
	add("conv_step_ms", ours.ConvStepMS, torch.ConvStepMS)
	return out
}

// median of xs (xs is reordered).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// WriteTable prints the figures, PyTorch's and the ratios as an aligned table.
func WriteTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "backend: %s\nmatrix product: %s\n", r.Backend, r.BLAS)
	if r.HypernetStepCPUMS > 0 {
		fmt.Fprintf(w, "HyperNoise step CPU time: %.1f ms (all threads)\n", r.HypernetStepCPUMS)
	}
	fmt.Fprintf(w, "DotGeneral runs: %d on the fast path (%d over several cores), %d fallbacks", r.FastMatmuls,
		r.SplitMatmuls, r.Fallbacks)
	if len(r.FallbackWhy) > 0 {
		keys := make([]string, 0, len(r.FallbackWhy))
		for k := range r.FallbackWhy {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s: %d", k, r.FallbackWhy[k])
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	rows := []struct {
		name, key string
		ours      *float64
		torch     func(*Figures) *float64
	}{
		{"matmul 1024^3 (GFLOP/s)", "matmul_gflops", r.MatmulGFLOPS, func(f *Figures) *float64 { return f.MatmulGFLOPS }},
		{"HyperNoise step, batch 32 (ms)", "hypernet_step_ms", r.HypernetStepMS, func(f *Figures) *float64 { return f.HypernetStepMS }},
		{"ReNO iteration (ms / image)", "reno_step_ms", r.RenoStepMS, func(f *Figures) *float64 { return f.RenoStepMS }},
		{"HyperNoise sample (ms / image)", "sample_ms_per_image", r.SampleMSPerImage, func(f *Figures) *float64 { return f.SampleMSPerImage }},
		{"MLP step, batch 256 (ms)", "mlp_step_ms", r.MLPStepMS, func(f *Figures) *float64 { return f.MLPStepMS }},
		{"conv-net step, batch 64 (ms)", "conv_step_ms", r.ConvStepMS, func(f *Figures) *float64 { return f.ConvStepMS }},
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tours\tPyTorch\tours / PyTorch\t")
	num := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatFloat(*v, 'f', 3, 64)
	}
	for _, row := range rows {
		var t *float64
		if r.Torch != nil {
			t = row.torch(r.Torch)
		}
		ratio := "-"
		if v, ok := r.Ratios[row.key]; ok {
			ratio = strconv.FormatFloat(v, 'f', 2, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", row.name, num(row.ours), num(t), ratio)
	}
	tw.Flush()
}
