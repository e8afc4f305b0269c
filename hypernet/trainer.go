package hypernet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/hypernoise/hypernoise/ckpt"
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
	// WarmupSteps: the learning rate at 0-based step k is LR * WarmupFactor(k, WarmupSteps).
	WarmupSteps int `json:"warmup_steps"`
	// ClipNorm: the gradient (all trainable variables together) is scaled by
	// min(1, ClipNorm/(||g|| + 1e-6)) before the update; 0 disables clipping.
	ClipNorm     float64   `json:"clip_norm"`
	Noise        NoiseMode `json:"noise"`          // see NoiseMode
	NoiseSetSize int       `json:"noise_set_size"` // size of the fixed set for NoiseMulti (0: BatchSize)
	Seed         int64     `json:"seed"`           // initialization and noise

	// CheckpointDir, if set, receives a checkpoint every CheckpointEvery steps (0: only at the
	// end): train.safetensors (trainable variables and optimizer state) and train.json.
	CheckpointDir   string `json:"-"`
	CheckpointEvery int    `json:"-"`
	// Resume continues from the checkpoint in CheckpointDir if there is one (its step count and
	// optimizer state); the run then matches an uninterrupted one.
	Resume bool `json:"-"`
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
	switch {
	case c.Steps <= 0:
		return fmt.Errorf("steps must be positive, got %d", c.Steps)
	case c.BatchSize <= 0:
		return fmt.Errorf("batch size must be positive, got %d", c.BatchSize)
	case c.Optimizer != SGD && c.Optimizer != AdamW:
		return fmt.Errorf("unknown optimizer %q; allowed: %s, %s", c.Optimizer, SGD, AdamW)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("learning rate must be positive, got %g", c.LR)
	case c.Momentum < 0 || c.Momentum >= 1:
		return fmt.Errorf("momentum must be in [0, 1), got %g", c.Momentum)
	case c.WeightDecay < 0:
		return fmt.Errorf("weight decay must be >= 0, got %g", c.WeightDecay)
	case c.WarmupSteps < 0:
		return fmt.Errorf("warm-up steps must be >= 0, got %d", c.WarmupSteps)
	case c.ClipNorm < 0:
		return fmt.Errorf("clip norm must be >= 0 (0 disables), got %g", c.ClipNorm)
	case c.CheckpointEvery < 0:
		return fmt.Errorf("checkpoint interval must be >= 0, got %d", c.CheckpointEvery)
	case c.NoiseSetSize < 0:
		return fmt.Errorf("noise set size must be >= 0, got %d", c.NoiseSetSize)
	}
	if c.Optimizer == AdamW {
		if c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1 || !(c.AdamEps > 0) {
			return fmt.Errorf("AdamW needs beta1, beta2 in [0, 1) and eps > 0, got %g, %g, %g", c.Beta1, c.Beta2, c.AdamEps)
		}
	}
	if _, err := ParseNoiseMode(string(c.Noise)); err != nil {
		return err
	}
	if c.Resume && c.CheckpointDir == "" {
		return fmt.Errorf("resume needs a checkpoint directory")
	}
	return nil
}

// WarmupFactor is the linear warm-up multiplier of the learning rate at 0-based step k:
// min(1, (k+1)/warmup), so step 0 uses LR/warmup and steps >= warmup-1 use LR; 1 if warmup <= 0.
func WarmupFactor(step, warmup int) float64 {
	if warmup <= 0 {
		return 1
	}
	return math.Min(1, float64(step+1)/float64(warmup))
}

// TrainResult reports a training run.
type TrainResult struct {
	StartStep int       // first step of this run (> 0 after a resume)
	Steps     int       // total steps done, including before the resume
	Skipped   int       // steps whose loss or gradient was not finite (not applied), in total
	Loss      []float64 // batch loss per step of this run
	GradNorm  []float64 // gradient norm (before clipping) per step of this run
	Metrics   map[string][]float64
	Seconds   float64 // wall time of this run
	// Cost: network evaluations of this run per training sample (StepCost * steps of this run,
	// with Seconds the run's wall time divided by its samples).
	Cost Cost
}

// Names of files in a checkpoint directory.
const (
	CheckpointWeights = "train.safetensors"
	CheckpointJSON    = "train.json"
)

// checkpointState is the JSON beside the checkpoint weights.
type checkpointState struct {
	Problem    string      `json:"problem"`
	Scope      string      `json:"scope"`
	NoiseShape []int       `json:"noise_shape"`
	Step       int         `json:"step"`
	Skipped    int         `json:"skipped"`
	Config     TrainConfig `json:"config"`
}

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
	start, skipped := 0, 0
	resumed := false
	if cfg.Resume {
		start, skipped, resumed, err = loadCheckpoint(ctx, p, cfg)
		if err != nil {
			return nil, err
		}
	}
	if !resumed {
		if err := ctx.SetRNGStateFromSeed(cfg.Seed); err != nil {
			return nil, err
		}
	}
	numMetrics := -1
	var metricNames []string
	exec, err := context.NewExec(backend, ctx, func(ctx *context.Context, eps, prompts, lr *Node) []*Node {
		loss, metrics, gnorm, finite := buildStep(ctx, p, cfg, eps, prompts, lr)
		outs := []*Node{loss, gnorm, ConvertDType(finite, dtypes.Float32)}
		metricNames = metricNames[:0]
		for _, m := range metrics {
			metricNames = append(metricNames, m.Name)
			outs = append(outs, ConvertDType(ReduceAllMean(m.Value), dtypes.Float32))
		}
		numMetrics = len(metrics)
		return outs
	})
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()

	res = &TrainResult{StartStep: start, Steps: start, Skipped: skipped, Metrics: map[string][]float64{}}
	t0 := time.Now()
	for step := start; step < cfg.Steps; step++ {
		epsFlat, promptIDs := TrainingBatch(cfg.Noise, cfg.Seed, step, cfg.BatchSize, cfg.NoiseSetSize, p.NoiseShape, p.NumPrompts)
		epsT := tensors.FromFlatDataAndDimensions(epsFlat, append([]int{cfg.BatchSize}, p.NoiseShape...)...)
		promptT := tensors.FromFlatDataAndDimensions(promptIDs, cfg.BatchSize)
		lr := float32(cfg.LR * WarmupFactor(step, cfg.WarmupSteps))
		outs, err := exec.Exec(epsT, promptT, lr)
		if err != nil {
			return res, fmt.Errorf("training %s, step %d: %w", p.Name, step, err)
		}
		loss := float64(scalarOf(outs[0]))
		gn := float64(scalarOf(outs[1]))
		if scalarOf(outs[2]) == 0 {
			res.Skipped++
		}
		res.Loss = append(res.Loss, loss)
		res.GradNorm = append(res.GradNorm, gn)
		for i := 0; i < numMetrics; i++ {
			res.Metrics[metricNames[i]] = append(res.Metrics[metricNames[i]], float64(scalarOf(outs[3+i])))
		}
		res.Steps = step + 1
		if cfg.CheckpointDir != "" && cfg.CheckpointEvery > 0 && res.Steps%cfg.CheckpointEvery == 0 && res.Steps < cfg.Steps {
			if err := saveCheckpoint(ctx, p, cfg, res.Steps, res.Skipped); err != nil {
				return res, err
			}
		}
		report.Report(step+1, cfg.Steps, fmt.Sprintf("loss %.4g", loss))
	}
	res.Seconds = time.Since(t0).Seconds()
	ran := float64(res.Steps - start)
	res.Cost = Cost{Forward: p.StepCost.Forward * ran, Backward: p.StepCost.Backward * ran}
	if ran > 0 {
		res.Cost.Seconds = res.Seconds / (ran * float64(cfg.BatchSize))
	}
	if cfg.CheckpointDir != "" {
		if err := saveCheckpoint(ctx, p, cfg, res.Steps, res.Skipped); err != nil {
			return res, err
		}
	}
	return res, nil
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

// saveCheckpoint writes the trainable variables and optimizer state (one safetensors file, with
// step and skipped count in its metadata), then the JSON state; both atomically.
func saveCheckpoint(ctx *context.Context, p *Problem, cfg TrainConfig, step, skipped int) error {
	state := checkpointState{Problem: p.Name, Scope: p.Scope, NoiseShape: p.NoiseShape, Step: step, Skipped: skipped, Config: cfg}
	js, err := json.Marshal(state)
	if err != nil {
		return err
	}
	meta := map[string]string{"step": strconv.Itoa(step), "skipped": strconv.Itoa(skipped), "state": string(js)}
	if err := ckpt.SaveScopes(ctx, []string{p.Scope, optimRoot + p.Scope}, filepath.Join(cfg.CheckpointDir, CheckpointWeights), meta); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return ckpt.WriteJSON(filepath.Join(cfg.CheckpointDir, CheckpointJSON), state)
}

// loadCheckpoint loads the checkpoint in cfg.CheckpointDir into ctx, if present. The step count is
// taken from the weights file's own metadata (written in the same atomic write as the tensors).
func loadCheckpoint(ctx *context.Context, p *Problem, cfg TrainConfig) (step, skipped int, ok bool, err error) {
	path := filepath.Join(cfg.CheckpointDir, CheckpointWeights)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	meta, err := ckpt.Decode(ctx, data)
	if err != nil {
		return 0, 0, false, fmt.Errorf("%s: %w", path, err)
	}
	var state checkpointState
	if err := json.Unmarshal([]byte(meta["state"]), &state); err != nil {
		return 0, 0, false, fmt.Errorf("%s: no training state in metadata: %w", path, err)
	}
	if state.Scope != p.Scope || fmt.Sprint(state.NoiseShape) != fmt.Sprint(p.NoiseShape) {
		return 0, 0, false, fmt.Errorf("%s: checkpoint is for %s (scope %s, noise %v), not %s (scope %s, noise %v)",
			path, state.Problem, state.Scope, state.NoiseShape, p.Name, p.Scope, p.NoiseShape)
	}
	if diff := configDiff(state.Config, cfg); diff != "" {
		return 0, 0, false, fmt.Errorf("%s: cannot resume with a different configuration (%s)", path, diff)
	}
	if state.Step > cfg.Steps {
		return 0, 0, false, fmt.Errorf("%s: checkpoint is at step %d, beyond the %d steps asked for", path, state.Step, cfg.Steps)
	}
	return state.Step, state.Skipped, true, nil
}

// configDiff lists the fields (other than Steps) that differ between a checkpoint's config and
// the resumed run's.
func configDiff(a, b TrainConfig) string {
	a.Steps, b.Steps = 0, 0
	if a.NoiseSetSize == 0 {
		a.NoiseSetSize = a.BatchSize
	}
	if b.NoiseSetSize == 0 {
		b.NoiseSetSize = b.BatchSize
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var ma, mb map[string]any
	_ = json.Unmarshal(ja, &ma)
	_ = json.Unmarshal(jb, &mb)
	var diffs []string
	for k, va := range ma {
		if fmt.Sprint(va) != fmt.Sprint(mb[k]) {
			diffs = append(diffs, fmt.Sprintf("%s: %v -> %v", k, va, mb[k]))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}
