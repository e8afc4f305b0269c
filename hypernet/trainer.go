package hypernet

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/hypernoise/hypernoise/progress"
)

// Optimizers.
const (
	SGD   = "sgd"   // SGD with (optionally Nesterov) momentum, PyTorch semantics
	AdamW = "adamw" // Adam with decoupled weight decay, PyTorch semantics
)

// TrainConfig configures Train. The zero value is not valid: start from DefaultSGD or DefaultAdamW.
type TrainConfig struct {
	Steps     int     `json:"steps"`      // total optimizer steps (including those done before a resume)
	BatchSize int     `json:"batch_size"` // samples per step
	Optimizer string  `json:"optimizer"`  // SGD or AdamW
	LR        float64 `json:"lr"`         // peak learning rate
	Momentum  float64 `json:"momentum"`   // SGD momentum mu
	Nesterov  bool    `json:"nesterov"`   // SGD: Nesterov momentum
	// WeightDecay: for SGD an L2 term wd*p added to the (clipped) gradient; for AdamW the
	// decoupled decay p <- p(1 - lr*wd).
	WeightDecay float64 `json:"weight_decay"`
	Beta1       float64 `json:"beta1"`    // AdamW
	Beta2       float64 `json:"beta2"`    // AdamW
	AdamEps     float64 `json:"adam_eps"` // AdamW
	// WarmupSteps: the learning rate at 0-based step k is LR * WarmupFactor(k, WarmupSteps)
	// (times the schedule's factor, see Schedule).
	WarmupSteps int `json:"warmup_steps"`
	// Schedule of the learning rate after warm-up: "" or ScheduleConstant, or ScheduleCosine
	// (see LRFactor).
	Schedule string `json:"schedule,omitempty"`
	// BudgetSeconds, if > 0, bounds the run's wall time: after the first step (which compiles the
	// graph) and budgetProbeSteps more, the trainer sets Steps to the most that fit in what is left
	// of the budget at the pace of those budgetProbeSteps steps (the first one's compilation is
	// charged to the budget once, not to every step), never more than Steps, so that the schedule
	// still ends at the last step. The steps done are recorded
	// (Steps of the saved configuration); the run is reproducible from them, not from the budget.
	BudgetSeconds float64 `json:"budget_seconds,omitempty"`
	// ClipNorm: the gradient (all trainable variables together) is scaled by
	// min(1, ClipNorm/(||g|| + 1e-6)) before the update; 0 disables clipping.
	ClipNorm     float64   `json:"clip_norm"`
	Noise        NoiseMode `json:"noise"`          // see NoiseMode
	NoiseSetSize int       `json:"noise_set_size"` // size of the fixed set for NoiseMulti (0: BatchSize)
	// PromptsPerStep, if > 0, is how many prompts each step's batch holds (NoiseFresh and
	// NoiseBatch only): the rows are split into that many groups, each with one prompt, the
	// prompts read from seeded permutations of all prompts (StratifiedPrompts); 1 holds the
	// prompt fixed for the whole batch. 0: every row draws its prompt independently and uniformly.
	PromptsPerStep int   `json:"prompts_per_step,omitempty"`
	Seed           int64 `json:"seed"` // initialization and noise

	// CheckpointDir, if set, receives a checkpoint every CheckpointEvery steps (0: only at the
	// end): train.safetensors (trainable variables and optimizer state) and train.json.
	CheckpointDir   string `json:"-"`
	CheckpointEvery int    `json:"-"`
	// Resume continues from the checkpoint in CheckpointDir (its step count, optimizer state and
	// history); the run then matches an uninterrupted one. A missing checkpoint is an error.
	Resume bool `json:"-"`
	// Force starts afresh in a CheckpointDir that holds a checkpoint (deleting it); without Resume
	// or Force such a folder is refused, so a run is never silently discarded.
	Force bool `json:"-"`
	// Defines names what else defines the model and objective being trained (reward spec,
	// regularizer, architecture, ...): it is stored in the checkpoint and a resume with any other
	// value is refused, naming the difference.
	Defines map[string]string `json:"-"`
	// MaxNonFinite is how many consecutive skipped (non-finite) steps stop training with an error
	// (0: DefaultMaxNonFinite).
	MaxNonFinite int `json:"-"`
	// MaxSkippedShare is the largest share of all steps that may be skipped: a run that skipped
	// more fails at its end without writing its final checkpoint (0: DefaultMaxSkippedShare).
	MaxSkippedShare float64 `json:"-"`
}

// DefaultSGD is the reference code's setting for the smaller model: SGD momentum 0.9, lr 1e-3,
// 100 warm-up steps, gradient-norm clip 1.0, fresh noise, batch 16, 1000 steps.
func DefaultSGD() TrainConfig {
	return TrainConfig{Steps: 1000, BatchSize: 16, Optimizer: SGD, LR: 1e-3, Momentum: 0.9,
		WarmupSteps: 100, ClipNorm: 1, Noise: NoiseFresh, Seed: 1,
		Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8}
}

// DefaultAdamW is the reference code's setting for the larger model: AdamW lr 2e-5, weight decay
// 1e-4, betas (0.9, 0.999), 100 warm-up steps, clip 1.0.
func DefaultAdamW() TrainConfig {
	c := DefaultSGD()
	c.Optimizer = AdamW
	c.LR = 2e-5
	c.WeightDecay = 1e-4
	c.Momentum = 0
	return c
}

// Validate checks the configuration; errors name the field and what is allowed.
func (c TrainConfig) Validate() error {
	if c.Optimizer != SGD && c.Optimizer != AdamW {
		return fmt.Errorf("unknown optimizer %q; allowed: %s, %s", c.Optimizer, SGD, AdamW)
	}
	if !(c.LR > 0) {
		return fmt.Errorf("learning rate must be positive, got %g", c.LR)
	}
	checks := []error{
		CheckIntRange("steps", c.Steps, 1, MaxSteps),
		CheckIntRange("batch size", c.BatchSize, 1, MaxBatchSize),
		CheckRange("learning rate", c.LR, 0, MaxLR),
		CheckRange("momentum", c.Momentum, 0, 0.999999),
		CheckRange("weight decay", c.WeightDecay, 0, MaxWeightDecay),
		CheckIntRange("warm-up steps", c.WarmupSteps, 0, MaxSteps),
		CheckRange("clip norm (0 disables)", c.ClipNorm, 0, MaxClipNorm),
		CheckIntRange("checkpoint interval", c.CheckpointEvery, 0, MaxSteps),
		CheckIntRange("noise set size", c.NoiseSetSize, 0, MaxNoiseSet),
		CheckIntRange("prompts per step (0: independent per row)", c.PromptsPerStep, 0, max(c.BatchSize, 1)),
	}
	if c.Optimizer == AdamW {
		checks = append(checks, CheckRange("AdamW beta1", c.Beta1, 0, 0.999999),
			CheckRange("AdamW beta2", c.Beta2, 0, 0.999999), CheckRange("AdamW eps", c.AdamEps, 1e-12, 1))
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if _, err := ParseNoiseMode(string(c.Noise)); err != nil {
		return err
	}
	if c.PromptsPerStep > 0 && c.Noise != NoiseFresh && c.Noise != NoiseBatch {
		return fmt.Errorf("prompts per step applies to the %s and %s noise modes (the %s and %s modes fix their own prompts), got noise mode %s",
			NoiseFresh, NoiseBatch, NoiseOne, NoiseMulti, c.Noise)
	}
	if c.Schedule != "" && c.Schedule != ScheduleConstant && c.Schedule != ScheduleCosine {
		return fmt.Errorf("unknown learning-rate schedule %q; allowed: %s, %s", c.Schedule, ScheduleConstant, ScheduleCosine)
	}
	if err := CheckRange("time budget (seconds; 0: none)", c.BudgetSeconds, 0, MaxBudgetSeconds); err != nil {
		return err
	}
	if c.Resume && c.BudgetSeconds > 0 {
		return fmt.Errorf("a time budget fixes the step count of a fresh run; resume with --steps instead")
	}
	if c.Resume && c.CheckpointDir == "" {
		return fmt.Errorf("resume needs a checkpoint directory")
	}
	if c.Resume && c.Force {
		return fmt.Errorf("resume and force exclude each other")
	}
	if c.MaxNonFinite < 0 {
		return fmt.Errorf("max non-finite steps must be >= 0, got %d", c.MaxNonFinite)
	}
	return nil
}

// Learning-rate schedules.
const (
	ScheduleConstant = "constant" // LR after warm-up
	ScheduleCosine   = "cosine"   // LR * 1/2 (1 + cos(pi t)), t from 0 at warm-up's end to 1 at the last step
)

// LRFactor is the multiplier of the peak learning rate at 0-based step k of a run of total steps:
// the linear warm-up times, for ScheduleCosine, 1/2 (1 + cos(pi (k - warmup)/(total - warmup)))
// after warm-up (so it reaches 0 after the last step).
func LRFactor(schedule string, step, warmup, total int) float64 {
	f := WarmupFactor(step, warmup)
	if schedule == ScheduleCosine && step >= warmup && total > warmup {
		t := float64(step-warmup) / float64(total-warmup)
		f *= 0.5 * (1 + math.Cos(math.Pi*t))
	}
	return f
}

// budgetProbeSteps is how many steps after the first a time budget times before it fixes the step
// count. The first step is not timed: it builds and compiles the step's graph, which on an
// imported model can take longer than several steps (the small T2I fixture: ~1.8 s against
// ~0.65 s, so a pace that counted it fixed about half the steps a budget could run).
const budgetProbeSteps = 5

// WarmupFactor is the linear warm-up multiplier of the learning rate at 0-based step k:
// min(1, (k+1)/warmup), so step 0 uses LR/warmup and steps >= warmup-1 use LR; 1 if warmup <= 0.
func WarmupFactor(step, warmup int) float64 {
	if warmup <= 0 {
		return 1
	}
	return math.Min(1, float64(step+1)/float64(warmup))
}

// TrainResult reports a training run. Loss, GradNorm and Metrics cover the whole run from step 0,
// including the steps done before a resume (restored from the checkpoint).
type TrainResult struct {
	StartStep int       // first step of this run (> 0 after a resume)
	Steps     int       // total steps done, including before the resume
	Skipped   int       // steps whose loss or gradient was not finite (not applied), in total
	Loss      []float64 // batch loss per step (NaN where not finite)
	GradNorm  []float64 // gradient norm (before clipping) per step
	Metrics   map[string][]float64
	Seconds   float64 // wall time of this run
	// TotalSeconds: wall time of the whole run, across resumes.
	TotalSeconds float64
	// Cost: network evaluations of this run per training sample (StepCost * steps of this run,
	// with Seconds the run's wall time divided by its samples).
	Cost Cost
	// Config is the configuration the run ended with: its Steps is the count a time budget fixed.
	Config TrainConfig
}

// budgetSteps is the step count that fits cfg.BudgetSeconds when the run is elapsed seconds in,
// has done its steps up to done, and the steps after step first (first < done) took probe seconds:
// done plus the remaining budget, cfg.BudgetSeconds - elapsed, at probe/(done-first) seconds a
// step. The first step's time (its compilation) is thus paid once, as it is, instead of being
// spread over every step. At least done, at most cfg.Steps.
func budgetSteps(cfg TrainConfig, done, first int, elapsed, probe float64) int {
	if done <= first || !(probe > 0) {
		return done // no pace measured: stop where we are
	}
	per := probe / float64(done-first)
	left := cfg.BudgetSeconds - elapsed
	if left <= 0 {
		return done
	}
	more := left / per
	if more >= float64(cfg.Steps) { // also guards the int conversion
		return max(done, cfg.Steps)
	}
	return max(done, min(cfg.Steps, done+int(more)))
}

// DefaultMaxNonFinite is the default TrainConfig.MaxNonFinite.
const DefaultMaxNonFinite = 25

// DefaultMaxSkippedShare is the default TrainConfig.MaxSkippedShare: a run that skipped more than a
// quarter of its steps trained on a biased part of the noise (the part where the model is finite),
// or not at all.
const DefaultMaxSkippedShare = 0.25

// optimizer state lives under this root, mirroring the trainable variables' scopes.
const optimRoot = "/optimizer"

// Train minimizes p's loss over the variables under p.Scope with cfg, starting from the values
// those variables have in ctx (initializing missing ones from cfg.Seed: ctx's RNG is reseeded),
// or from the checkpoint in cfg.CheckpointDir when cfg.Resume is set and one exists. A step whose
// loss or gradient norm is not finite changes nothing (variables and optimizer state keep their
// values) and is counted in Skipped; the step index still advances. Any failure, including a
// panic while building the graph, is returned as an error.
func Train(backend backends.Backend, ctx *context.Context, p *Problem, cfg TrainConfig, report progress.Func) (res *TrainResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			name := "problem"
			if p != nil {
				name = p.Name
			}
			err = fmt.Errorf("training %s: %v", name, r)
		}
	}()
	st, err := prepareRun(ctx, p, &cfg)
	if err != nil {
		return nil, err
	}
	start, skipped, resumed, prevSeconds, hist := st.Step, st.Skipped, st.resumed, st.Seconds, st.History
	maxBad := cfg.MaxNonFinite
	if maxBad == 0 {
		maxBad = DefaultMaxNonFinite
	}
	exec, err := newStepExec(backend, ctx, p, cfg)
	if err != nil {
		return nil, err
	}
	defer exec.exec.Finalize()

	res = &TrainResult{StartStep: start, Steps: start, Skipped: skipped, Config: cfg}
	t0 := time.Now()
	defer func() {
		res.Loss, res.GradNorm, res.Metrics = hist.Loss, hist.GradNorm, hist.Metrics
		res.Seconds = time.Since(t0).Seconds()
		res.TotalSeconds = prevSeconds + res.Seconds
	}()
	badRun := 0          // consecutive non-finite steps
	var firstEnd float64 // seconds into the run when its first step ended (time budget)
	for step := start; step < cfg.Steps; step++ {
		epsFlat, promptIDs := StepBatch(cfg, step, p.NoiseShape, p.NumPrompts)
		epsT := tensors.FromFlatDataAndDimensions(epsFlat, append([]int{cfg.BatchSize}, p.NoiseShape...)...)
		promptT := tensors.FromFlatDataAndDimensions(promptIDs, cfg.BatchSize)
		lr := float32(cfg.LR * LRFactor(cfg.Schedule, step, cfg.WarmupSteps, cfg.Steps))
		loss, finite, err := exec.run(epsT, promptT, lr, hist)
		if err != nil {
			return res, fmt.Errorf("training %s, step %d: %w", p.Name, step, err)
		}
		if !finite {
			res.Skipped++
			badRun++
		} else {
			badRun = 0
		}
		res.Steps = step + 1
		if badRun >= maxBad {
			return res, fmt.Errorf("training %s stopped at step %d: the loss or gradient was not finite for %d consecutive steps "+
				"(these steps were skipped; the weights are those of step %d, and nothing non-finite was written): "+
				"lower the learning rate or the reward weights", p.Name, step+1, badRun, step+1-badRun)
		}
		if cfg.CheckpointDir != "" && cfg.CheckpointEvery > 0 && res.Steps%cfg.CheckpointEvery == 0 && res.Steps < cfg.Steps {
			if err := saveCheckpoint(ctx, p, cfg, res.Steps, res.Skipped, hist, prevSeconds+time.Since(t0).Seconds()); err != nil {
				return res, err
			}
		}
		report.Report(step+1, cfg.Steps, fmt.Sprintf("loss %.4g", loss))
		if cfg.BudgetSeconds > 0 {
			switch step + 1 - start {
			case 1: // the compiling step: the pace is timed from here
				firstEnd = time.Since(t0).Seconds()
			case 1 + budgetProbeSteps:
				elapsed := time.Since(t0).Seconds()
				cfg.Steps = budgetSteps(cfg, step+1, start+1, elapsed, elapsed-firstEnd)
				res.Config = cfg
			}
		}
	}
	if err := checkSkippedShare(p, res.Skipped, res.Steps, cfg.MaxSkippedShare); err != nil {
		return res, err
	}
	elapsed := time.Since(t0).Seconds()
	ran := float64(res.Steps - start)
	res.Cost = Cost{Forward: p.StepCost.Forward * ran, Backward: p.StepCost.Backward * ran}
	if ran > 0 {
		res.Cost.Seconds = elapsed / (ran * float64(cfg.BatchSize))
	}
	if cfg.CheckpointDir != "" && (ran > 0 || !resumed) {
		if err := saveCheckpoint(ctx, p, cfg, res.Steps, res.Skipped, hist, prevSeconds+elapsed); err != nil {
			return res, err
		}
	}
	return res, nil
}

// stepExec is the compiled training step (buildStep): its outputs are the loss, the gradient
// norm, whether both were finite (the update is skipped otherwise) and the step's metrics.
type stepExec struct {
	exec        *context.Exec
	metricNames []string // filled when the step's graph is built
}

// newStepExec compiles the training step of p under cfg.
func newStepExec(backend backends.Backend, ctx *context.Context, p *Problem, cfg TrainConfig) (*stepExec, error) {
	s := &stepExec{}
	exec, err := context.NewExec(backend, ctx, func(ctx *context.Context, eps, prompts, lr *Node) []*Node {
		loss, metrics, gnorm, finite := buildStep(ctx, p, cfg, eps, prompts, lr)
		outs := []*Node{loss, gnorm, ConvertDType(finite, dtypes.Float32)}
		s.metricNames = s.metricNames[:0]
		for _, m := range metrics {
			s.metricNames = append(s.metricNames, m.Name)
			outs = append(outs, ConvertDType(ReduceAllMean(m.Value), dtypes.Float32))
		}
		return outs
	})
	if err != nil {
		return nil, err
	}
	s.exec = exec
	return s, nil
}

// run executes one step, appends its loss, gradient norm and metrics to hist, and returns the
// loss and whether the step was finite (applied).
func (s *stepExec) run(eps, prompts *tensors.Tensor, lr float32, hist *History) (loss float64, finite bool, err error) {
	outs, err := s.exec.Exec(eps, prompts, lr)
	if err != nil {
		return 0, false, err
	}
	loss = float64(scalarOf(outs[0]))
	hist.Loss = append(hist.Loss, loss)
	hist.GradNorm = append(hist.GradNorm, float64(scalarOf(outs[1])))
	for i, name := range s.metricNames {
		hist.Metrics[name] = append(hist.Metrics[name], float64(scalarOf(outs[3+i])))
	}
	return loss, scalarOf(outs[2]) != 0, nil
}

// runStart is where a run starts: step 0 with an empty history, or a resumed checkpoint's state.
type runStart struct {
	checkpointState
	resumed bool
}

// prepareRun checks the problem and configuration (filling the noise-set size default), prepares
// the checkpoint folder and, when resuming, loads the checkpoint (weights, optimizer state, RNG,
// history); a fresh run seeds the context's RNG with cfg.Seed.
func prepareRun(ctx *context.Context, p *Problem, cfg *TrainConfig) (*runStart, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if strings.HasPrefix(p.Scope+"/", optimRoot+"/") {
		return nil, fmt.Errorf("training problem scope %q is reserved for optimizer state", p.Scope)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NoiseSetSize == 0 {
		cfg.NoiseSetSize = cfg.BatchSize
	}
	if cfg.CheckpointDir != "" {
		if err := prepareCheckpointDir(*cfg); err != nil {
			return nil, err
		}
	}
	if !cfg.Resume {
		if err := ctx.SetRNGStateFromSeed(cfg.Seed); err != nil {
			return nil, err
		}
		return &runStart{checkpointState: checkpointState{History: newHistory()}}, nil
	}
	st, err := loadCheckpoint(ctx, p, *cfg)
	if err != nil {
		return nil, err
	}
	if st.History == nil {
		st.History = newHistory()
	}
	return &runStart{checkpointState: *st, resumed: true}, nil
}

// checkSkippedShare fails a run that skipped more than share (0: DefaultMaxSkippedShare) of its
// steps for a non-finite loss or gradient.
func checkSkippedShare(p *Problem, skipped, steps int, share float64) error {
	if share == 0 {
		share = DefaultMaxSkippedShare
	}
	if steps == 0 || float64(skipped) <= share*float64(steps) {
		return nil
	}
	what := fmt.Sprintf("%d of its %d steps", skipped, steps)
	if skipped == steps {
		what = fmt.Sprintf("every one of its %d steps", steps)
	}
	written, models := "no weights were written", "the reward or generator"
	if p.Saves != "" {
		written = "no " + p.Saves + " was written"
	}
	if p.Models != "" {
		models += " (" + p.Models + ")"
	}
	return fmt.Errorf("training %s failed: the loss or gradient was not finite (NaN or Inf) in %s, more than %.0f%% "+
		"(those steps were skipped); %s. Either %s returns non-finite values, "+
		"or the learning rate or reward weights are too large", p.Name, what, 100*share, written, models)
}

func scalarOf(t *tensors.Tensor) float32 {
	switch v := t.Value().(type) {
	case float32:
		return v
	case float64:
		return float32(v)
	}
	panic(fmt.Sprintf("expected a float scalar, got %s", t.Shape()))
}

// trainableVariables lists the trainable variables under scope used by g, sorted by path (so the
// update is independent of creation order, e.g. after loading a checkpoint).
func trainableVariables(ctx *context.Context, scope string, g *Graph) []*context.Variable {
	var vars []*context.Variable
	for v := range ctx.IterVariables() {
		if v.Trainable && v.InUseByGraph(g) && (v.Scope() == scope || strings.HasPrefix(v.Scope(), scope+"/")) {
			vars = append(vars, v)
		}
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].ScopeAndName() < vars[j].ScopeAndName() })
	return vars
}

// slot returns (creating it zero-initialized if needed) optimizer state for v.
func slot(ctx *context.Context, v *context.Variable, suffix string) *context.Variable {
	return ctx.InAbsPath(optimRoot+v.Scope()).Checked(false).WithInitializer(initializers.Zero).
		VariableWithShape(v.Name()+"@"+suffix, v.Shape()).SetTrainable(false)
}

// buildStep builds one optimizer step and returns the batch loss, metrics, the gradient norm and
// whether the step was applied (finite).
func buildStep(ctx *context.Context, p *Problem, cfg TrainConfig, eps, prompts, lr *Node) (*Node, []Metric, *Node, *Node) {
	g := eps.Graph()
	perSampleLoss, metrics := p.Loss(ctx, eps, prompts)
	loss := ReduceAllMean(perSampleLoss)
	vars := trainableVariables(ctx, p.Scope, g)
	if len(vars) == 0 {
		panic(fmt.Sprintf("no trainable variables under %s", p.Scope))
	}
	values := make([]*Node, len(vars))
	for i, v := range vars {
		values[i] = v.ValueGraph(g)
	}
	grads := Gradient(loss, values...)
	var sq *Node
	for _, gr := range grads {
		s := ReduceAllSum(Square(gr))
		if sq == nil {
			sq = s
		} else {
			sq = Add(sq, s)
		}
	}
	gnorm := Sqrt(sq)
	finite := LogicalAnd(IsFinite(loss), IsFinite(gnorm))
	if cfg.ClipNorm > 0 {
		scale := MinScalar(Div(Scalar(g, gnorm.DType(), cfg.ClipNorm), AddScalar(gnorm, 1e-6)), 1.0)
		for i := range grads {
			grads[i] = Mul(grads[i], ConvertDType(scale, grads[i].DType()))
		}
	}
	keep := func(v *context.Variable, newValue *Node) {
		old := v.ValueGraph(g)
		cond := BroadcastToDims(finite, old.Shape().Dimensions...)
		if old.Rank() == 0 {
			cond = finite
		}
		v.SetValueGraph(Where(cond, newValue, old))
	}
	countVar := ctx.InAbsPath(optimRoot+p.Scope).Checked(false).WithInitializer(initializers.Zero).
		VariableWithShape("#applied", shapes.Make(dtypes.Int64)).SetTrainable(false)
	count := countVar.ValueGraph(g)
	newCount := AddScalar(count, 1)
	t := ConvertDType(newCount, dtypes.Float32)
	for i, v := range vars {
		pv := values[i]
		gr := grads[i]
		lrv := ConvertDType(lr, pv.DType())
		switch cfg.Optimizer {
		case SGD:
			if cfg.WeightDecay > 0 {
				gr = Add(gr, MulScalar(pv, cfg.WeightDecay))
			}
			dir := gr
			if cfg.Momentum > 0 {
				buf := slot(ctx, v, "momentum")
				nb := Add(MulScalar(buf.ValueGraph(g), cfg.Momentum), gr)
				keep(buf, nb)
				dir = nb
				if cfg.Nesterov {
					dir = Add(gr, MulScalar(nb, cfg.Momentum))
				}
			}
			keep(v, Sub(pv, Mul(lrv, dir)))
		case AdamW:
			m := slot(ctx, v, "m")
			s := slot(ctx, v, "v")
			nm := Add(MulScalar(m.ValueGraph(g), cfg.Beta1), MulScalar(gr, 1-cfg.Beta1))
			ns := Add(MulScalar(s.ValueGraph(g), cfg.Beta2), MulScalar(Square(gr), 1-cfg.Beta2))
			keep(m, nm)
			keep(s, ns)
			// bias corrections 1 - beta^t
			bc1 := OneMinus(Exp(MulScalar(t, math.Log(cfg.Beta1+1e-300))))
			bc2 := OneMinus(Exp(MulScalar(t, math.Log(cfg.Beta2+1e-300))))
			mhat := Div(nm, ConvertDType(bc1, pv.DType()))
			shat := Div(ns, ConvertDType(bc2, pv.DType()))
			decayed := pv
			if cfg.WeightDecay > 0 {
				decayed = Mul(pv, OneMinus(MulScalar(lrv, cfg.WeightDecay)))
			}
			keep(v, Sub(decayed, Mul(lrv, Div(mhat, AddScalar(Sqrt(shat), cfg.AdamEps)))))
		}
	}
	keep(countVar, newCount)
	return loss, metrics, gnorm, finite
}
