package bench

import (
	"fmt"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/onnx"
)

// ScaleOptions configures RunModel.
type ScaleOptions struct {
	Batch  int    // images per forward, training step and ReNO run
	Steps  int    // timed forwards, training steps and ReNO iterations
	Rank   int    // LoRA rank of the HyperNoise step (0: no training step)
	Reward string // reward spec of the training and ReNO steps (default: the spec's first reward)
	// TorchCmd is a shell command printing PyTorch's figures as one JSON line (empty: not run).
	TorchCmd string
	// ORTScript is scripts/ort_bench.js (empty: onnxruntime not run).
	ORTScript string
	// MemBudget is the memory, in bytes, a stage may plan to use (0: no check): a stage whose
	// up-front estimate exceeds it (the forward: EstimateBytes(batch, false); the HyperNoise step:
	// EstimateTrainBytes(batch, rank); ReNO: EstimateBytes(batch, true)) is not run, and Errors says
	// so with the estimate, as train and sample refuse such runs.
	MemBudget int64
	// Warmup is how many untimed forwards follow the first call before the timed ones, on our side
	// and on onnxruntime's (each of its runs a new process, so each of its rounds too): a process's
	// first forwards run slower than its later ones (docs/bring-your-model.md, section 6).
	Warmup int
	// Rounds is how many times our forward and onnxruntime's are timed, alternately (ours, then
	// onnxruntime's, per round), for the ratio's median (1: once each).
	Rounds int
	Log    func(string)
}

// ScaleResult is what RunModel measured on an imported model (times in seconds or milliseconds,
// memory in bytes).
type ScaleResult struct {
	Spec       string  `json:"spec"`
	Batch      int     `json:"batch"`
	Warmup     int     `json:"warmup,omitempty"` // untimed forwards before the timed ones (ScaleOptions.Warmup)
	LoadS      float64 `json:"load_s"`           // spec + ONNX files read, graphs checked (onnx.Load)
	FirstCallS float64 `json:"first_call_s"`     // the first forward at this batch: build, compile, run
	// BuildS is the part of the first call spent building the graph (running the model's graph
	// function); CompileS what remains of it after the build and one forward at the timed pace
	// (so the backend's compilation, with our graph rewrites, to within one forward's noise).
	BuildS            float64  `json:"build_s"`
	CompileS          float64  `json:"compile_s"`
	ForwardMSPerImage float64  `json:"forward_ms_per_image"`
	HypernetStepMS    *float64 `json:"hypernet_step_ms"` // one HyperNoise training step (LoRA copy, reward, AdamW)
	RenoStepMSImage   *float64 `json:"reno_step_ms_per_image"`
	WeightBytes       int64    `json:"weight_bytes"`
	EstimateForward   int64    `json:"estimate_forward_bytes"` // onnx.Model.EstimateBytes(batch, false)
	EstimateTrain     int64    `json:"estimate_train_bytes"`   // EstimateTrainBytes(batch, rank)
	PeakRSS           int64    `json:"peak_rss_bytes"`         // the process's peak resident memory
	LoadPeakRSS       int64    `json:"load_peak_rss_bytes"`    // the same, right after loading (before any forward)
	Torch             any      `json:"torch,omitempty"`        // PyTorch's figures (--torch-cmd), as printed
	ORT               any      `json:"onnxruntime,omitempty"`  // onnxruntime's figures (--ort)
	// ForwardRounds are the alternated forward timings (ScaleOptions.Rounds > 1), the first being
	// ForwardMSPerImage and onnxruntime's above; ForwardRatioMedian is the median of their ratios.
	ForwardRounds      []ForwardRound `json:"forward_rounds,omitempty"`
	ForwardRatioMedian *float64       `json:"forward_ratio_median,omitempty"`
	Errors             []string       `json:"errors,omitempty"` // figures that could not be measured, and why
}

// ForwardRound is one round of alternated forward timings: the median ms per image of ours, then of
// onnxruntime's, and ours / onnxruntime's.
type ForwardRound struct {
	OursMS float64 `json:"ours_ms_per_image"`
	ORTMS  float64 `json:"onnxruntime_ms_per_image"`
	Ratio  float64 `json:"ratio"`
}

// forwardRounds times rounds of ours() then ort() (ms per image each), the first round given as
// first, and returns every round with the median of the ratios; it stops at the first error.
func forwardRounds(rounds int, first ForwardRound, ours, ort func() (float64, error)) ([]ForwardRound, float64, error) {
	out := []ForwardRound{first}
	for len(out) < rounds {
		o, err := ours()
		if err != nil {
			return out, 0, err
		}
		x, err := ort()
		if err != nil {
			return out, 0, err
		}
		if !(o > 0) || !(x > 0) {
			return out, 0, fmt.Errorf("round %d: a forward time that is not positive (ours %g, onnxruntime %g ms)", len(out)+1, o, x)
		}
		out = append(out, ForwardRound{OursMS: o, ORTMS: x, Ratio: o / x})
	}
	ratios := make([]float64, len(out))
	for i, r := range out {
		ratios[i] = r.Ratio
	}
	return out, median(ratios), nil
}

// RunModel times an imported model on backend: load, the first forward, forwards, a HyperNoise
// training step and a ReNO iteration.
func RunModel(backend backends.Backend, specPath string, o ScaleOptions) (*ScaleResult, error) {
	logf := func(format string, args ...any) {
		if o.Log != nil {
			o.Log(fmt.Sprintf(format, args...))
		}
	}
	res := &ScaleResult{Spec: specPath, Batch: o.Batch, Warmup: o.Warmup}
	start := time.Now()
	m, err := onnx.Load(specPath, backend)
	if err != nil {
		return nil, err
	}
	res.LoadS = time.Since(start).Seconds()
	res.LoadPeakRSS = peakRSS()
	res.WeightBytes = m.WeightBytes()
	res.EstimateForward, res.EstimateTrain = m.EstimateBytes(o.Batch, false), m.EstimateTrainBytes(o.Batch, o.Rank)
	logf("load + check %.2f s (weights %d MB)", res.LoadS, res.WeightBytes>>20)
	overBudget := func(stage string, need int64) bool {
		if o.MemBudget <= 0 || need <= o.MemBudget {
			return false
		}
		res.Errors = append(res.Errors, fmt.Sprintf("%s: refused up front: needs about %s of memory at batch %d, more than the budget of %s"+
			" ($HYPERNOISE_MEM_BUDGET)", stage, gib(need), o.Batch, gib(o.MemBudget)))
		logf("%s", res.Errors[len(res.Errors)-1])
		return true
	}
	if overBudget("forward", res.EstimateForward) {
		res.PeakRSS = peakRSS()
		return res, nil
	}
	call, done, buildS, err := forwardRunner(backend, m, o.Batch)
	if err != nil {
		return nil, err
	}
	if res.FirstCallS, res.ForwardMSPerImage, err = timeForwards(call, o.Warmup, o.Steps, o.Batch); err != nil {
		done()
		return nil, err
	}
	res.BuildS = *buildS
	res.CompileS = max(0, res.FirstCallS-res.BuildS-res.ForwardMSPerImage*float64(o.Batch)/1e3)
	if o.Rounds > 1 { // the rounds reuse this compiled forward (at sd-turbo's size a compile is 20-25 s)
		defer done()
	} else {
		done()
	}
	logf("first call %.2f s, forward %.1f ms/image", res.FirstCallS, res.ForwardMSPerImage)
	im := onnx.ModelOf(m)
	spec := o.Reward
	if spec == "" {
		spec = im.DefaultReward
	}
	reward, err := im.Rewards.Parse(spec)
	if err != nil {
		res.Errors = append(res.Errors, "reward: "+err.Error())
		res.PeakRSS = peakRSS()
		res.external(m, specPath, o)
		return res, nil
	}
	if o.Rank > 0 && !overBudget(fmt.Sprintf("hypernoise step (LoRA rank %d)", o.Rank), res.EstimateTrain) {
		if st, err := TimeModelStep(backend, im, spec, o.Batch, o.Rank, o.Steps); err != nil {
			res.Errors = append(res.Errors, "hypernoise step: "+err.Error())
		} else {
			res.HypernetStepMS = &st.StepMS
			logf("hypernoise step %.0f ms", st.StepMS)
		}
	}
	if !overBudget("reno", m.EstimateBytes(o.Batch, true)) {
		if ms, err := modelRenoStep(backend, m, im, reward, o); err != nil {
			res.Errors = append(res.Errors, "reno: "+err.Error())
		} else {
			res.RenoStepMSImage = &ms
			logf("reno step %.1f ms/image", ms)
		}
	}
	res.PeakRSS = peakRSS()
	res.external(m, specPath, o)
	res.rounds(call, m, specPath, o, logf)
	return res, nil
}

// rounds times o.Rounds - 1 more rounds of our forward (call, the first round's compiled forward)
// and onnxruntime's, alternately, when both ran once (see forwardRounds).
func (res *ScaleResult) rounds(call func() (float64, error), m *onnx.Model, specPath string, o ScaleOptions, logf func(string, ...any)) {
	ortMS, ok := ortForwardMS(res.ORT)
	if o.Rounds <= 1 || !ok || !(res.ForwardMSPerImage > 0) {
		return
	}
	first := ForwardRound{OursMS: res.ForwardMSPerImage, ORTMS: ortMS, Ratio: res.ForwardMSPerImage / ortMS}
	ours := func() (float64, error) { // each round starts with one untimed call, like the first
		_, ms, err := timeForwards(call, 0, o.Steps, o.Batch)
		return ms, err
	}
	ort := func() (float64, error) {
		v, err := ORTFigures(o.ORTScript, m, specPath, o.Batch, o.Warmup, o.Steps)
		if err != nil {
			return 0, err
		}
		ms, ok := ortForwardMS(v)
		if !ok {
			return 0, fmt.Errorf("onnxruntime printed no forward_ms_per_image")
		}
		return ms, nil
	}
	rounds, med, err := forwardRounds(o.Rounds, first, ours, ort)
	res.ForwardRounds = rounds
	if err != nil {
		res.Errors = append(res.Errors, "forward rounds: "+err.Error())
		return
	}
	res.ForwardRatioMedian = &med
	logf("forward against onnxruntime over %d alternated rounds: median ratio %.3fx", len(rounds), med)
}

// ortForwardMS reads forward_ms_per_image from onnxruntime's figures.
func ortForwardMS(v any) (float64, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return 0, false
	}
	ms, ok := m["forward_ms_per_image"].(float64)
	return ms, ok && ms > 0
}

// external adds PyTorch's and onnxruntime's figures (after ours, so that our peak memory is ours).
func (res *ScaleResult) external(m *onnx.Model, specPath string, o ScaleOptions) {
	if o.TorchCmd != "" {
		if v, err := TorchFigures(o.TorchCmd); err != nil {
			res.Errors = append(res.Errors, "pytorch: "+err.Error())
		} else {
			res.Torch = v
		}
	}
	if o.ORTScript != "" {
		if v, err := ORTFigures(o.ORTScript, m, specPath, o.Batch, o.Warmup, o.Steps); err != nil {
			res.Errors = append(res.Errors, "onnxruntime: "+err.Error())
		} else {
			res.ORT = v
		}
	}
}

// forwardRunner returns a function running the generator's forward once on a seeded batch of batch
// noises (the graph built and compiled on its first call) and reporting its seconds, the
// function that releases it, and where the first call's graph build time (seconds) is written.
func forwardRunner(backend backends.Backend, m *onnx.Model, batch int) (call func() (float64, error), done func(), buildS *float64, err error) {
	buildS = new(float64)
	exec, err := context.NewExec(backend, m.Context().Reuse(), func(ctx *context.Context, eps, pr *Node) *Node {
		start := time.Now()
		defer func() { *buildS = time.Since(start).Seconds() }()
		return m.Generate(ctx, eps, pr)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	eps, prompts := modelNoise(m, batch, 0)
	call = func() (float64, error) {
		start := time.Now()
		out, err := exec.Exec(eps, prompts)
		if err != nil {
			return 0, err
		}
		out[0].FinalizeAll()
		return time.Since(start).Seconds(), nil
	}
	return call, exec.Finalize, buildS, nil
}

// timeForwards makes 1 + warmup + steps calls: it returns the first call's seconds and the median of
// the last steps in ms per image of a batch of batch.
func timeForwards(call func() (float64, error), warmup, steps, batch int) (firstS, msPerImage float64, err error) {
	times := make([]float64, 0, steps)
	for i := range 1 + warmup + steps {
		d, err := call()
		if err != nil {
			return 0, 0, err
		}
		switch {
		case i == 0:
			firstS = d
		case i > warmup:
			times = append(times, d*1e3/float64(batch))
		}
	}
	return firstS, median(times), nil
}

// modelNoise is a seeded batch of noises and prompt ids (cycling over the model's prompts).
func modelNoise(m *onnx.Model, batch int, seed int64) (*tensors.Tensor, *tensors.Tensor) {
	shape := m.NoiseShape()
	d := 1
	for _, s := range shape {
		d *= s
	}
	prompts := make([]int32, batch)
	if n := len(m.Prompts()); n > 0 {
		for i := range prompts {
			prompts[i] = int32(i % n)
		}
	}
	return tensors.FromFlatDataAndDimensions(hypernet.Normal(seed, 1, batch*d), append([]int{batch}, shape...)...),
		tensors.FromFlatDataAndDimensions(prompts, batch)
}

// modelRenoStep times ReNO (o.Steps iterations) on o.Batch images, after one run that compiles, and
// returns milliseconds per iteration per image.
func modelRenoStep(backend backends.Backend, m *onnx.Model, im *family.Model, reward hypernoise.Reward, o ScaleOptions) (float64, error) {
	cfg := reno.DefaultConfig()
	cfg.Steps = o.Steps
	opt, err := reno.New(backend, im.Context, im.Generator, reward, cfg)
	if err != nil {
		return 0, err
	}
	defer opt.Finalize()
	best := time.Duration(1 << 62)
	for i := range 2 {
		eps, prompts := modelNoise(m, o.Batch, int64(10+i))
		start := time.Now()
		if _, err := opt.Run(eps, prompts); err != nil {
			return 0, err
		}
		if i > 0 {
			best = min(best, time.Since(start))
		}
	}
	return float64(best) / 1e6 / float64(o.Steps*o.Batch), nil
}

// gib writes a size in MiB or GiB (as cli.FormatBytes, which bench does not import).
func gib(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}
