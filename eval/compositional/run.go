package compositional

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/hypernet"
	_ "github.com/hypernoise/hypernoise/methods" // the method registry
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/progress"
)

// Options configures Run.
type Options struct {
	SeedsPerPrompt int    `json:"seeds_per_prompt"` // images per prompt and method
	Seed           uint64 `json:"seed"`             // noise seed of the evaluation set
	// Train is the hypernetwork's training configuration (its Steps, BatchSize, LR, ...).
	Train     hypernet.TrainConfig `json:"train"`
	LoRARank  int                  `json:"lora_rank"`
	RegWeight float64              `json:"reg_weight"` // weight of mean(f^2)
	RenoSteps int                  `json:"reno_steps"`
	WarmSteps int                  `json:"warm_reno_steps"` // ReNO steps after the hypernetwork (0: no row)
	SmallN    int                  `json:"small_n"`         // best-of-N with a small N
	LargeN    int                  `json:"large_n"`         // best-of-N with a large N (0: no row)
	GridSeeds int                  `json:"grid_seeds"`      // images per prompt and method in the grids
	Chunk     int                  `json:"chunk"`           // rows per compiled call (0: the default)
	// Prompts replaces the benchmark's prompts (nil: Prompts()).
	Prompts []Prompt `json:"-"`
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.SeedsPerPrompt < 2:
		return fmt.Errorf("compositional: seeds per prompt must be >= 2, got %d", o.SeedsPerPrompt)
	case o.LoRARank < 1:
		return fmt.Errorf("compositional: LoRA rank must be >= 1, got %d", o.LoRARank)
	case o.WarmSteps < 0 || o.LargeN < 0 || o.GridSeeds < 0:
		return fmt.Errorf("compositional: bad method settings %+v", o)
	}
	// The methods' knobs within the method registry's limits (0 skips the optional rows).
	for _, k := range []struct {
		method string
		knobs  hypernoise.Knobs
		skip   bool
	}{{reno.Name, hypernoise.Knobs{Steps: o.RenoSteps}, false}, {reno.WarmName, hypernoise.Knobs{Steps: o.WarmSteps}, o.WarmSteps == 0},
		{bestofn.Name, hypernoise.Knobs{N: o.SmallN}, false}, {bestofn.Name, hypernoise.Knobs{N: o.LargeN}, o.LargeN == 0}} {
		if err := hypernoise.CheckKnobs(k.method, k.knobs); !k.skip && err != nil {
			return fmt.Errorf("compositional: %w", err)
		}
	}
	return o.Train.Validate()
}

// PromptInfo describes one prompt in a Result.
type PromptInfo struct {
	Text     string `json:"text"`
	Category string `json:"category"`
	Class    string `json:"class"`
	Band     string `json:"band"`
	// RealPass: the fraction of the class's real test images whose statistics pass every band.
	RealPass float64 `json:"real_attribute_pass"`
}

// MethodResult is one method's figures. Every rate has its 95% bootstrap interval; GainRatio is
// (method - base) / (reno - base) of each figure.
type MethodResult struct {
	Images             int        `json:"images"`
	Success            float64    `json:"success"`
	SuccessCI          [2]float64 `json:"success_ci"`
	HeldoutAlignment   float64    `json:"heldout_alignment"`
	HeldoutAlignmentCI [2]float64 `json:"heldout_alignment_ci"`
	ClassProb          float64    `json:"heldout_class_prob"`
	ClassProbCI        [2]float64 `json:"heldout_class_prob_ci"`
	AttributePass      float64    `json:"attribute_pass"`
	AttributePassCI    [2]float64 `json:"attribute_pass_ci"`
	Reward             float64    `json:"reward"` // mean training reward
	SecondsPerImage    float64    `json:"seconds_per_image"`
	NFEPerImage        float64    `json:"nfe_per_image"`
	PerPromptSuccess   []float64  `json:"per_prompt_success"`
	// CategorySuccess: the success rate of each prompt category with its interval.
	CategorySuccess map[string]Estimate `json:"category_success"`
	GainRatio       map[string]float64  `json:"gain_ratio_vs_reno,omitempty"`
	// Grid: the first GridSeeds images of every prompt, prompt-major.
	Grid []float32 `json:"-"`
}

// Result is the benchmark's outcome.
type Result struct {
	Prompts       []PromptInfo             `json:"prompts"`
	Images        int                      `json:"images_per_method"`
	Options       Options                  `json:"options"`
	Reward        string                   `json:"reward"`
	Order         []string                 `json:"order"`
	Methods       map[string]*MethodResult `json:"methods"`
	TrainSeconds  float64                  `json:"hypernet_train_seconds"`
	Seconds       float64                  `json:"seconds"`
	GeneratorArch string                   `json:"generator_arch"`
	Categories    []string                 `json:"categories"`
	// Real is the held-out checks on the real test images (absent without Fashion-MNIST).
	Real *RealResult `json:"real_test_images,omitempty"`
}

// Run trains a LoRA hypernetwork on the compositional reward (in m's context, which it modifies),
// then generates SeedsPerPrompt images per prompt with each method (base, best-of-SmallN,
// best-of-LargeN, ReNO, HyperNoise, HyperNoise + ReNO) for the same noises, and scores them with the
// held-out checks.
func Run(backend backends.Backend, m *fashion.Model, opts Options, log io.Writer, prog progress.Func) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compositional benchmark: %v", r)
		}
	}()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	ps := opts.Prompts
	if ps == nil {
		ps = Prompts()
	}
	gen, err := NewGeneratorFor(m, ps)
	if err != nil {
		return nil, err
	}
	reward, err := gen.Reward()
	if err != nil {
		return nil, err
	}
	checker, err := NewChecker(backend, m, ps)
	if err != nil {
		return nil, err
	}
	defer checker.Finalize()

	mod, trainSeconds, err := trainHypernet(backend, m, gen, reward, opts, log, prog)
	if err != nil {
		return nil, err
	}

	env := hypernoise.MethodEnv{Backend: backend, Context: m.Context(), Generator: gen, Reward: reward,
		Modulator: mod, Chunk: opts.Chunk}
	rows := methodRows(env, opts)

	prompts := gen.Benchmark()
	np := len(prompts)
	eps, pt := benchmarkNoise(gen, np, opts)
	n := np * opts.SeedsPerPrompt

	rewardExec, err := newRewardExec(backend, m, reward)
	if err != nil {
		return nil, err
	}
	defer rewardExec.Finalize()

	res = &Result{Images: n, Options: opts, Reward: RewardName, Methods: map[string]*MethodResult{},
		TrainSeconds: trainSeconds, GeneratorArch: m.Arch("student")}
	seenCat := map[string]bool{}
	for _, p := range prompts {
		res.Prompts = append(res.Prompts, PromptInfo{Text: p.Text, Category: p.Category, Class: fashion.Prompts[p.Class],
			Band: p.Band(), RealPass: p.RealPass})
		if !seenCat[p.Category] {
			seenCat[p.Category] = true
			res.Categories = append(res.Categories, p.Category)
		}
	}
	if ok, why := fashionmnist.Installed(fashionmnist.DefaultDir); ok {
		set, err := fashionmnist.Load("", fashionmnist.Test)
		if err != nil {
			return nil, err
		}
		if res.Real, err = checker.CheckReal(set, opts.Seed+1000); err != nil {
			return nil, err
		}
		if log != nil {
			fmt.Fprintf(log, "[compositional] real test images: success %.3f, ceiling %.3f\n", res.Real.Success.Value, res.Real.Ceiling)
		}
	} else if log != nil {
		fmt.Fprintf(log, "[compositional] no real-data reference: %s\n", why)
	}
	for k, r := range rows {
		name, mr, err := evalRow(r, eps, pt, checker, rewardExec, prompts, opts, uint64(k), log)
		if err != nil {
			return nil, err
		}
		res.Order = append(res.Order, name)
		res.Methods[name] = mr
	}
	res.gainRatios()
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// evalRow generates the benchmark's images with one method and scores them: held-out checks with
// bootstrap intervals (stream k), mean reward, time and network evaluations per image, a grid.
func evalRow(r row, eps, pt *tensors.Tensor, checker *Checker, scorer *rewardExec, prompts []Prompt, opts Options, k uint64, log io.Writer) (string, *MethodResult, error) {
	meth, err := hypernoise.NewMethod(r.name, r.env)
	if err != nil {
		return "", nil, err
	}
	n := eps.Shape().Dim(0)
	if log != nil {
		fmt.Fprintf(log, "[compositional] %s: %d images ...\n", meth.Name(), n)
	}
	t := time.Now()
	x, cost, err := meth.Generate(eps, pt)
	secs := time.Since(t).Seconds()
	meth.Close()
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", r.name, err)
	}
	checks, err := checker.Check(x, pt)
	if err != nil {
		return "", nil, err
	}
	rw, err := scorer.mean(x, pt)
	if err != nil {
		return "", nil, err
	}
	s := Summarize(checks, prompts, opts.Seed+k*16)
	mr := &MethodResult{Images: n, Success: s.Success.Value, SuccessCI: s.Success.CI,
		HeldoutAlignment: s.HeldoutAlignment.Value, HeldoutAlignmentCI: s.HeldoutAlignment.CI,
		ClassProb: s.ClassProb.Value, ClassProbCI: s.ClassProb.CI,
		AttributePass: s.AttributePass.Value, AttributePassCI: s.AttributePass.CI,
		Reward: rw, SecondsPerImage: secs / float64(n), NFEPerImage: cost.NFE(), PerPromptSuccess: s.PerPromptSuccess,
		CategorySuccess: s.CategorySuccess}
	if opts.GridSeeds > 0 {
		mr.Grid = gridImages(tensors.MustCopyFlatData[float32](x), len(prompts), opts.SeedsPerPrompt, min(opts.GridSeeds, opts.SeedsPerPrompt))
	}
	if log != nil {
		fmt.Fprintf(log, "[compositional] %s: success %.3f [%.3f, %.3f], held-out alignment %.3f, %.1f ms/image\n",
			meth.Name(), mr.Success, mr.SuccessCI[0], mr.SuccessCI[1], mr.HeldoutAlignment, 1000*mr.SecondsPerImage)
	}
	return meth.Name(), mr, nil
}

// trainHypernet trains the benchmark's LoRA hypernetwork on the compositional reward (the mean-square
// objective with opts.RegWeight) and returns it with its training time in seconds.
func trainHypernet(backend backends.Backend, m *fashion.Model, gen *Generator, reward hypernoise.Reward, opts Options, log io.Writer, prog progress.Func) (hypernoise.Modulator, float64, error) {
	mod, err := hypernet.NewLoRA(gen, opts.LoRARank, 0, "compositional_hypernet")
	if err != nil {
		return nil, 0, err
	}
	prob, err := hypernet.NewProblem(gen, mod, hypernet.Objective{Reward: reward, Reg: hypernet.RegMeanSquare, Weight: opts.RegWeight})
	if err != nil {
		return nil, 0, err
	}
	if log != nil {
		fmt.Fprintf(log, "[compositional] training the LoRA hypernetwork on the compositional reward (%d steps, batch %d) ...\n",
			opts.Train.Steps, opts.Train.BatchSize)
	}
	t0 := time.Now()
	if _, err := hypernet.Train(backend, m.Context(), prob, opts.Train, prog); err != nil {
		return nil, 0, err
	}
	return mod, time.Since(t0).Seconds(), nil
}

// row is one method of the benchmark: a registered method and its environment.
type row struct {
	name string
	env  hypernoise.MethodEnv
}

// methodRows are the benchmark's methods: base, best-of-SmallN (and LargeN), ReNO, HyperNoise and,
// when WarmSteps > 0, HyperNoise + ReNO.
func methodRows(env hypernoise.MethodEnv, opts Options) []row {
	with := func(f func(e *hypernoise.MethodEnv)) hypernoise.MethodEnv { e := env; f(&e); return e }
	rows := []row{
		{hypernet.MethodBase, env},
		{bestofn.Name, with(func(e *hypernoise.MethodEnv) { e.N = opts.SmallN })},
	}
	if opts.LargeN > 0 && opts.LargeN != opts.SmallN {
		rows = append(rows, row{bestofn.Name, with(func(e *hypernoise.MethodEnv) { e.N = opts.LargeN })})
	}
	rows = append(rows, row{reno.Name, with(func(e *hypernoise.MethodEnv) { e.Steps = opts.RenoSteps })},
		row{hypernet.MethodHyperNoise, env})
	if opts.WarmSteps > 0 {
		rows = append(rows, row{reno.WarmName, with(func(e *hypernoise.MethodEnv) { e.Steps = opts.WarmSteps })})
	}
	return rows
}

// benchmarkNoise is the evaluation noise of np prompts x SeedsPerPrompt images and their prompt
// ids: image k of every prompt uses noise k of the seed (the toolkit's one noise scheme).
func benchmarkNoise(gen *Generator, np int, opts Options) (eps, ids *tensors.Tensor) {
	n := np * opts.SeedsPerPrompt
	pid := make([]int32, n)
	for i := range pid {
		pid[i] = int32(i / opts.SeedsPerPrompt)
	}
	per := hypernoise.NoiseFlat(opts.Seed, opts.SeedsPerPrompt, gen.NoiseShape())
	d := len(per) / opts.SeedsPerPrompt
	flat := make([]float32, 0, n*d)
	for range np {
		flat = append(flat, per...)
	}
	return tensors.FromFlatDataAndDimensions(flat, append([]int{n}, gen.NoiseShape()...)...), tensors.FromFlatDataAndDimensions(pid, n)
}

// gainRatios fills each method's GainRatio against base and reno.
func (r *Result) gainRatios() {
	b, ref := r.Methods[hypernet.MethodBase], r.Methods[reno.Name]
	if b == nil || ref == nil {
		return
	}
	for _, name := range r.Order {
		x := r.Methods[name]
		x.GainRatio = map[string]float64{}
		for k, g := range map[string]float64{
			"success":            GainRatio(x.Success, b.Success, ref.Success),
			"heldout_alignment":  GainRatio(x.HeldoutAlignment, b.HeldoutAlignment, ref.HeldoutAlignment),
			"heldout_class_prob": GainRatio(x.ClassProb, b.ClassProb, ref.ClassProb),
		} {
			if !math.IsNaN(g) { // no ratio where ReNO does not improve on the base
				x.GainRatio[k] = g
			}
		}
	}
}

// gridImages picks the first k images of each of np prompts (perPrompt images each, prompt-major).
func gridImages(x []float32, np, perPrompt, k int) []float32 {
	const px = fashion.Side * fashion.Side
	out := make([]float32, 0, np*k*px)
	for p := range np {
		lo := p * perPrompt * px
		out = append(out, x[lo:lo+k*px]...)
	}
	return out
}

// rewardExec computes the mean training reward of images.
type rewardExec struct{ exec *context.Exec }

func newRewardExec(backend backends.Backend, m *fashion.Model, reward hypernoise.Reward) (*rewardExec, error) {
	exec, err := context.NewExec(backend, m.Context().Reuse(), func(ctx *context.Context, x, p *Node) *Node {
		return ReduceAllMean(reward.Score(ctx, x, p))
	})
	if err != nil {
		return nil, err
	}
	return &rewardExec{exec: exec}, nil
}

func (r *rewardExec) mean(x, prompts *tensors.Tensor) (float64, error) {
	out, err := r.exec.Exec(x, prompts)
	if err != nil {
		return 0, err
	}
	defer out[0].FinalizeAll()
	return float64(tensors.MustCopyFlatData[float32](out[0])[0]), nil
}

// Finalize releases the compiled graph.
func (r *rewardExec) Finalize() { r.exec.Finalize() }
