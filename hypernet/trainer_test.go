package hypernet

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// linearProblem's loss is k * (w . c) (+ extra(eps), per sample) for one trainable vector w
// under /lin, initialized to w0: its gradient is k*c, independent of w, so every update can be
// computed by hand.
func linearProblem(k float64, c, w0 []float32, extra func(eps *Node) *Node) *Problem {
	return &Problem{
		Name: "linear", Scope: "/lin", NoiseShape: []int{2},
		Loss: func(ctx *context.Context, eps, prompts *Node) (*Node, []Metric) {
			w := ctx.InAbsPath("/lin").Checked(false).VariableWithValue("w", slices.Clone(w0)).ValueGraph(eps.Graph())
			l := MulScalar(ReduceAllSum(Mul(w, Const(eps.Graph(), c))), k)
			perSample := Add(ZerosLike(ReduceSum(eps, -1)), l)
			if extra != nil {
				perSample = Add(perSample, extra(eps))
			}
			return perSample, []Metric{{Name: "w0", Value: Slice(w, AxisElem(0))}}
		},
	}
}

func plainSGD(steps int, lr float64) TrainConfig {
	c := DefaultSGD()
	c.Steps, c.BatchSize, c.LR, c.Momentum, c.WarmupSteps, c.ClipNorm = steps, 4, lr, 0, 0, 0
	return c
}

func wOf(ctx *context.Context) []float32 {
	return tensors.MustCopyFlatData[float32](ctx.InspectVariable("/lin", "w").MustValue())
}

func TestWarmupFactor(t *testing.T) {
	for _, c := range []struct {
		step, warmup int
		want         float64
	}{{0, 4, 0.25}, {1, 4, 0.5}, {3, 4, 1}, {10, 4, 1}, {0, 0, 1}, {5, 0, 1}, {0, 1, 1}, {49, 100, 0.5}} {
		if got := WarmupFactor(c.step, c.warmup); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("WarmupFactor(%d, %d) = %g, want %g", c.step, c.warmup, got, c.want)
		}
	}
}

// TestWarmupApplied: with plain SGD on a linear loss, w after n steps is w0 - lr*c*Σ_k factor(k).
func TestWarmupApplied(t *testing.T) {
	b := testutil.Backend(t)
	c := []float32{1, -2}
	for _, n := range []int{2, 6} {
		ctx := context.New()
		cfg := plainSGD(n, 0.1)
		cfg.WarmupSteps = 4
		if _, err := Train(b, ctx, linearProblem(1, c, []float32{0, 0}, nil), cfg, nil); err != nil {
			t.Fatal(err)
		}
		sum := 0.0
		for k := range n {
			sum += WarmupFactor(k, 4)
		}
		w := wOf(ctx)
		for i := range c {
			want := -0.1 * float64(c[i]) * sum
			if math.Abs(float64(w[i])-want) > 1e-6 {
				t.Errorf("%d steps: w[%d] = %g, want %g", n, i, w[i], want)
			}
		}
	}
}

// TestClipping: a gradient of norm 100*|c| is scaled to norm ClipNorm, so one SGD step moves w by
// exactly lr*ClipNorm along -c/|c|; the reported norm is the one before clipping.
func TestClipping(t *testing.T) {
	b := testutil.Backend(t)
	c := []float32{3, 4} // |c| = 5
	ctx := context.New()
	cfg := plainSGD(1, 0.5)
	cfg.ClipNorm = 1
	res, err := Train(b, ctx, linearProblem(100, c, []float32{1, 1}, nil), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := wOf(ctx)
	want := []float64{1 - 0.5*0.6, 1 - 0.5*0.8}
	for i := range w {
		if math.Abs(float64(w[i])-want[i]) > 1e-5 {
			t.Errorf("w[%d] = %g, want %g", i, w[i], want[i])
		}
	}
	if math.Abs(res.GradNorm[0]-500) > 1e-2 {
		t.Errorf("reported gradient norm %g, want 500 (before clipping)", res.GradNorm[0])
	}
	// A gradient below the threshold is not scaled.
	ctx = context.New()
	cfg.ClipNorm = 1000
	if _, err := Train(b, ctx, linearProblem(100, c, []float32{1, 1}, nil), cfg, nil); err != nil {
		t.Fatal(err)
	}
	if w := wOf(ctx); math.Abs(float64(w[0])-(1-0.5*300)) > 1e-3 {
		t.Errorf("unclipped step: w[0] = %g, want %g", w[0], 1-0.5*300.0)
	}
}

// TestNonFiniteStepsSkipped: the loss is NaN whenever some |eps| in the batch exceeds 1.8; those
// steps must change nothing (weights nor momentum) and be counted. The expected trajectory is
// simulated on the host from the same noise (TrainingBatch).
func TestNonFiniteStepsSkipped(t *testing.T) {
	b := testutil.Backend(t)
	c := []float32{1, -2}
	const thr = 1.8
	nanIfLarge := func(eps *Node) *Node {
		big := GreaterThan(ReduceAllMax(Abs(eps)), Scalar(eps.Graph(), dtypes.Float32, thr))
		nan := Scalar(eps.Graph(), dtypes.Float32, math.NaN())
		return BroadcastToDims(Where(big, nan, ScalarZero(eps.Graph(), dtypes.Float32)), eps.Shape().Dim(0))
	}
	cfg := plainSGD(30, 0.1)
	cfg.Momentum = 0.9
	cfg.MaxSkippedShare = 1 // this test is about how a skip is done; TestSkippedShareFails about how many
	ctx := context.New()
	res, err := Train(b, ctx, linearProblem(1, c, []float32{0, 0}, nanIfLarge), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Host simulation.
	w := []float64{0, 0}
	buf := []float64{0, 0}
	skipped := 0
	for step := range cfg.Steps {
		eps, _ := TrainingBatch(cfg.Noise, cfg.Seed, step, cfg.BatchSize, cfg.BatchSize, []int{2}, 0)
		big := false
		for _, e := range eps {
			big = big || math.Abs(float64(e)) > thr
		}
		if big {
			skipped++
			if !math.IsNaN(res.Loss[step]) {
				t.Errorf("step %d: loss %g, expected NaN", step, res.Loss[step])
			}
			continue
		}
		for i := range w {
			buf[i] = 0.9*buf[i] + float64(c[i])
			w[i] -= 0.1 * buf[i]
		}
	}
	if skipped == 0 || skipped == cfg.Steps {
		t.Fatalf("test is vacuous: %d of %d steps have a NaN loss", skipped, cfg.Steps)
	}
	if res.Skipped != skipped {
		t.Errorf("Skipped = %d, want %d", res.Skipped, skipped)
	}
	got := wOf(ctx)
	for i := range w {
		if math.Abs(float64(got[i])-w[i]) > 1e-4 {
			t.Errorf("w[%d] = %g, want %g (skipped steps must not touch weights or momentum)", i, got[i], w[i])
		}
	}
}

// TestSkippedShareFails: a run that skipped more than MaxSkippedShare of its steps (here 18 of 30,
// above the default quarter; and every step, with a loss that is always NaN) fails, naming the
// count, and writes no final checkpoint.
func TestSkippedShareFails(t *testing.T) {
	b := testutil.Backend(t)
	for _, thr := range []float64{1.8, -1} {
		nanIfLarge := func(eps *Node) *Node {
			big := GreaterThan(ReduceAllMax(Abs(eps)), Scalar(eps.Graph(), dtypes.Float32, thr))
			nan := Scalar(eps.Graph(), dtypes.Float32, math.NaN())
			return BroadcastToDims(Where(big, nan, ScalarZero(eps.Graph(), dtypes.Float32)), eps.Shape().Dim(0))
		}
		cfg := plainSGD(20, 0.1)
		cfg.CheckpointDir = t.TempDir()
		_, err := Train(b, context.New(), linearProblem(1, []float32{1, -2}, []float32{0, 0}, nanIfLarge), cfg, nil)
		if err == nil || !strings.Contains(err.Error(), "no weights were written") {
			t.Fatalf("thr %g: err %v, want a failure for too many skipped steps", thr, err)
		}
		if thr < 0 && !strings.Contains(err.Error(), "every one of its 20 steps") {
			t.Errorf("always NaN: %v", err)
		}
		if _, serr := os.Stat(filepath.Join(cfg.CheckpointDir, CheckpointWeights)); serr == nil {
			t.Errorf("thr %g: a checkpoint was written", thr)
		}
	}
}

// TestAdamWFirstStep: Adam's first bias-corrected step is lr*g/(|g|+eps) per coordinate, after
// the decoupled decay w(1 - lr*wd).
func TestAdamWFirstStep(t *testing.T) {
	b := testutil.Backend(t)
	ctx := context.New()
	cfg := DefaultAdamW()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WeightDecay, cfg.WarmupSteps, cfg.ClipNorm = 1, 2, 0.1, 0.5, 0, 0
	if _, err := Train(b, ctx, linearProblem(1, []float32{2, -0.5}, []float32{1, 1}, nil), cfg, nil); err != nil {
		t.Fatal(err)
	}
	w := wOf(ctx)
	decay := 1 - 0.1*0.5
	want := []float64{decay - 0.1, decay + 0.1}
	for i := range w {
		if math.Abs(float64(w[i])-want[i]) > 1e-5 {
			t.Errorf("w[%d] = %g, want %g", i, w[i], want[i])
		}
	}
}

func TestNoiseModes(t *testing.T) {
	shape := []int{2, 3}
	d := 6
	row := func(eps []float32, i int) []float32 { return eps[i*d : (i+1)*d] }
	const bsz = 4
	// fresh: rows differ, steps differ, same step reproduces.
	e0, p0 := TrainingBatch(NoiseFresh, 5, 0, bsz, bsz, shape, 10)
	e1, _ := TrainingBatch(NoiseFresh, 5, 1, bsz, bsz, shape, 10)
	again, pAgain := TrainingBatch(NoiseFresh, 5, 0, bsz, bsz, shape, 10)
	if slices.Equal(row(e0, 0), row(e0, 1)) || slices.Equal(e0, e1) {
		t.Error("fresh: rows or steps repeat")
	}
	if !slices.Equal(e0, again) || !slices.Equal(p0, pAgain) {
		t.Error("fresh: the same (seed, step) gives different noise")
	}
	if other, _ := TrainingBatch(NoiseFresh, 6, 0, bsz, bsz, shape, 10); slices.Equal(e0, other) {
		t.Error("fresh: another seed gives the same noise")
	}
	for _, p := range p0 {
		if p < 0 || p >= 10 {
			t.Errorf("prompt id %d out of [0, 10)", p)
		}
	}
	// one: every row of every step is the same noise and prompt.
	o0, op0 := TrainingBatch(NoiseOne, 5, 0, bsz, bsz, shape, 10)
	o7, op7 := TrainingBatch(NoiseOne, 5, 7, bsz, bsz, shape, 10)
	for i := range bsz {
		if !slices.Equal(row(o0, i), row(o0, 0)) || !slices.Equal(row(o7, i), row(o0, 0)) || op0[i] != op0[0] || op7[i] != op0[0] {
			t.Fatal("one: rows or steps differ")
		}
	}
	// multi: a fixed set of 6 cycled in order.
	m0, _ := TrainingBatch(NoiseMulti, 5, 0, bsz, 6, shape, 0)
	m1, _ := TrainingBatch(NoiseMulti, 5, 1, bsz, 6, shape, 0)
	m3, _ := TrainingBatch(NoiseMulti, 5, 3, bsz, 6, shape, 0)
	// step 1 rows are set elements 4, 5, 0, 1; step 3 rows are 0, 1, 2, 3 (= step 0).
	if !slices.Equal(row(m1, 2), row(m0, 0)) || !slices.Equal(row(m1, 3), row(m0, 1)) || !slices.Equal(m3, m0) {
		t.Error("multi: the fixed set is not cycled in order")
	}
	if slices.Equal(row(m0, 0), row(m0, 1)) {
		t.Error("multi: set elements repeat")
	}
	// batch: one noise shared within a step, a new one per step; prompts vary per row.
	b0, bp0 := TrainingBatch(NoiseBatch, 5, 0, 8, 8, shape, 10)
	b1, _ := TrainingBatch(NoiseBatch, 5, 1, 8, 8, shape, 10)
	for i := range 8 {
		if !slices.Equal(row(b0, i), row(b0, 0)) {
			t.Fatal("batch: rows of a step differ")
		}
	}
	if slices.Equal(row(b0, 0), row(b1, 0)) {
		t.Error("batch: the shared noise does not change between steps")
	}
	if slices.Min(bp0) == slices.Max(bp0) {
		t.Error("batch: prompts do not vary across rows")
	}
	if _, err := ParseNoiseMode("inf"); err != nil {
		t.Error(err)
	}
	if _, err := ParseNoiseMode("sometimes"); err == nil || !strings.Contains(err.Error(), "fresh, one, multi, batch") {
		t.Errorf("bad noise mode error %v should list the modes", err)
	}
}

// hyperProblem is a HyperNoise problem on the small nonlinear generator with prompts and the MLP
// modulator.
func hyperProblem(t *testing.T) (*mlpGen, *Problem) {
	gen := &mlpGen{prompts: []string{"a", "b", "c"}}
	mod, err := NewMLP(gen.NoiseShape(), 3, 16, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProblem(gen, mod, Objective{Reward: linearReward(1, 0.5), Reg: RegKL, Beta: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	return gen, p
}

// TestResumeMatchesUninterrupted: 6 steps, a checkpoint, then 6 more from a fresh context, equals
// 12 uninterrupted steps (AdamW with warm-up, so the optimizer state and the schedule matter).
func TestResumeMatchesUninterrupted(t *testing.T) {
	b := testutil.Backend(t)
	cfg := DefaultAdamW()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps, cfg.Seed = 12, 8, 1e-2, 5, 9

	fresh := func() (*context.Context, *Problem) {
		gen, p := hyperProblem(t)
		ctx := testgen.Seeded(4)
		initGen(t, b, ctx, gen)
		return ctx, p
	}
	ctxA, pA := fresh()
	resA, err := Train(b, ctxA, pA, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	half := cfg
	half.Steps, half.CheckpointDir, half.CheckpointEvery = 6, dir, 4
	ctxB, pB := fresh()
	if _, err := Train(b, ctxB, pB, half, nil); err != nil {
		t.Fatal(err)
	}
	var state checkpointState
	if err := ckpt.ReadJSON(filepath.Join(dir, CheckpointJSON), &state); err != nil || state.Step != 6 {
		t.Fatalf("checkpoint state %+v, %v; want step 6", state, err)
	}
	rest := cfg
	rest.CheckpointDir, rest.Resume = dir, true
	ctxC, pC := fresh()
	resC, err := Train(b, ctxC, pC, rest, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The history covers the whole run, the steps before the resume included (issue 12 case 2:
	// it covered only the resumed steps).
	if resC.StartStep != 6 || resC.Steps != 12 || len(resC.Loss) != 12 || len(resC.Metrics["reward"]) != 12 {
		t.Fatalf("resumed run: start %d, steps %d, %d losses, %d rewards; want 6, 12, 12, 12",
			resC.StartStep, resC.Steps, len(resC.Loss), len(resC.Metrics["reward"]))
	}
	for i, l := range resC.Loss {
		if math.Abs(l-resA.Loss[i]) > 1e-6*math.Max(1, math.Abs(l)) {
			t.Errorf("step %d: resumed run's loss %g, uninterrupted %g", i, l, resA.Loss[i])
		}
	}
	va, vc := values(ctxA, pA.Scope), values(ctxC, pC.Scope)
	if len(va) == 0 || len(va) != len(vc) {
		t.Fatalf("modulator variables: %d vs %d", len(va), len(vc))
	}
	for name, a := range va {
		c := vc[name]
		for i := range a {
			if math.Abs(float64(a[i]-c[i])) > 1e-6 {
				t.Fatalf("%s differs after resume: %g vs %g", name, a[i], c[i])
			}
		}
	}
	// Resuming with another configuration is refused, naming the field.
	other := rest
	other.LR = 0.5
	ctxD, pD := fresh()
	if _, err := Train(b, ctxD, pD, other, nil); err == nil || !strings.Contains(err.Error(), "lr") {
		t.Errorf("resume with another lr: %v", err)
	}
	// No temporary files are left in the checkpoint directory.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != CheckpointWeights && e.Name() != CheckpointJSON {
			t.Errorf("unexpected file %s in the checkpoint directory", e.Name())
		}
	}
}

// TestSeeded: the same seed gives the same trained modulator, another seed another one.
func TestSeeded(t *testing.T) {
	b := testutil.Backend(t)
	run := func(seed int64) map[string][]float32 {
		gen, p := hyperProblem(t)
		ctx := testgen.Seeded(4)
		initGen(t, b, ctx, gen)
		cfg := DefaultAdamW()
		cfg.Steps, cfg.BatchSize, cfg.LR, cfg.Seed = 5, 8, 1e-2, seed
		if _, err := Train(b, ctx, p, cfg, nil); err != nil {
			t.Fatal(err)
		}
		return values(ctx, p.Scope)
	}
	a, a2, c := run(1), run(1), run(2)
	same := func(x, y map[string][]float32) bool {
		for k, v := range x {
			if !slices.Equal(v, y[k]) {
				return false
			}
		}
		return len(x) == len(y)
	}
	if !same(a, a2) {
		t.Error("the same seed gave different weights")
	}
	if same(a, c) {
		t.Error("different seeds gave identical weights")
	}
}

func TestTrainConfigErrors(t *testing.T) {
	b := testutil.Backend(t)
	base := plainSGD(3, 0.1)
	for _, c := range []struct {
		mod  func(*TrainConfig)
		want string
	}{
		{func(c *TrainConfig) { c.Steps = 0 }, "steps must be positive"},
		{func(c *TrainConfig) { c.BatchSize = -1 }, "batch size must be positive"},
		// Issue 12 case 3: non-finite or absurd values trained, then failed writing JSON.
		{func(c *TrainConfig) { c.LR = 1e300 }, "learning rate must be in"},
		{func(c *TrainConfig) { c.LR = math.NaN() }, "learning rate must be positive"},
		{func(c *TrainConfig) { c.ClipNorm = math.NaN() }, "clip norm (0 disables) must be a finite number"},
		{func(c *TrainConfig) { c.Momentum = math.NaN() }, "momentum must be a finite number"},
		{func(c *TrainConfig) { c.WeightDecay = math.Inf(1) }, "weight decay must be a finite number"},
		{func(c *TrainConfig) { c.BatchSize = 100000 }, "batch size must be positive and at most 4096"},
		{func(c *TrainConfig) { c.Optimizer = "lion" }, "allowed: sgd, adamw"},
		{func(c *TrainConfig) { c.LR = 0 }, "learning rate must be positive"},
		{func(c *TrainConfig) { c.Noise = "often" }, "allowed: fresh, one, multi, batch"},
		{func(c *TrainConfig) { c.Resume = true }, "checkpoint directory"},
	} {
		cfg := base
		c.mod(&cfg)
		_, err := Train(b, context.New(), linearProblem(1, []float32{1, 1}, []float32{0, 0}, nil), cfg, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one mentioning %q", err, c.want)
		}
	}
	// A problem whose scope has no variables is an error, not a panic.
	p := linearProblem(1, []float32{1, 1}, []float32{0, 0}, nil)
	p.Scope = "/elsewhere"
	if _, err := Train(b, context.New(), p, base, nil); err == nil || !strings.Contains(err.Error(), "no trainable variables") {
		t.Errorf("empty scope: %v", err)
	}
	p.Scope = "/"
	if _, err := Train(b, context.New(), p, base, nil); err == nil {
		t.Error("training the root scope was accepted")
	}
}

// TestModulatorsStartAsIdentity: both modulators output exactly zero at initialization, so
// HyperNoise sampling equals base sampling.
func TestModulatorsStartAsIdentity(t *testing.T) {
	b := testutil.Backend(t)
	gen := &mlpGen{prompts: []string{"a", "b"}}
	ctx := testgen.Seeded(2)
	initGen(t, b, ctx, gen)
	lora, err := NewLoRA(gen, 4, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	mlp, err := NewMLP(gen.NoiseShape(), 2, 8, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	eps := NoiseTensor(3, 1, 16, gen.NoiseShape())
	prompts := tensors.FromFlatDataAndDimensions(PromptIDs(3, 2, 16, 2), 16)
	base, err := NewSampler(b, ctx, gen, nil)
	if err != nil {
		t.Fatal(err)
	}
	xBase, _, costBase, err := base.Sample(eps, prompts)
	if err != nil {
		t.Fatal(err)
	}
	want := tensors.MustCopyFlatData[float32](xBase)
	for _, mod := range []interface {
		Name() string
		Residual(*context.Context, *Node, *Node) *Node
	}{lora, mlp} {
		f, err := context.ExecOnce(b, ctx, func(ctx *context.Context, e, p *Node) *Node { return mod.Residual(ctx, e, p) }, eps, prompts)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range tensors.MustCopyFlatData[float32](f) {
			if v != 0 {
				t.Fatalf("%s residual is %g at init, want exactly 0", mod.Name(), v)
			}
		}
		s, err := NewSampler(b, ctx, gen, mod)
		if err != nil {
			t.Fatal(err)
		}
		x, _, cost, err := s.Sample(eps, prompts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tensors.MustCopyFlatData[float32](x), want) {
			t.Errorf("%s: HyperNoise samples differ from base samples at init", mod.Name())
		}
		if cost.Forward != 2 || costBase.Forward != 1 {
			t.Errorf("cost: hypernoise %v, base %v; want 2 and 1 forward passes", cost, costBase)
		}
	}
	// The LoRA adapters sit under /hypernet, the MLP under /hypernet_mlp.
	for v := range ctx.IterVariables() {
		if v.Name() == "lora_a" && !strings.HasPrefix(v.Scope(), "/hypernet/") {
			t.Errorf("adapter outside /hypernet: %s", v.ScopeAndName())
		}
	}
	if ctx.InspectVariable("/hypernet_mlp/out", "weights") == nil {
		t.Error("MLP modulator variables not under /hypernet_mlp")
	}
}

// TestHyperNoiseLearnsTiltOfGaussian: with g(eps) = eps and r(x) = a.x the tilted noise law is
// N(a/beta, I), reached by the constant residual f = a/beta; both the surrogate and the exact KL
// have it as their optimum. The MLP modulator must find it.
func TestHyperNoiseLearnsTiltOfGaussian(t *testing.T) {
	b := testutil.Backend(t)
	beta := 0.5
	a := []float32{0.6, -0.3}
	for _, reg := range []Regularizer{RegKL, RegExactKL} {
		ctx := testgen.Seeded(1)
		testgen.SetIdentity(ctx)
		gen := identityGen{}
		mod, err := NewMLP(gen.NoiseShape(), 0, 16, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProblem(gen, mod, Objective{Reward: linearReward(a[0], a[1]), Reg: reg, Beta: beta})
		if err != nil {
			t.Fatal(err)
		}
		res := trainTilt(t, b, ctx, p, 1000)
		mean := meanResidual(t, b, ctx, gen, mod, 2000)
		for j := range 2 {
			want := float64(a[j]) / beta
			if math.Abs(mean[j]-want) > 0.05 {
				t.Errorf("%s: mean residual[%d] = %.3f, want a/beta = %.3f (final loss %.4f)", reg, j, mean[j], want, res.Loss[len(res.Loss)-1])
			}
		}
	}
}

func TestConstructorErrors(t *testing.T) {
	gen := &mlpGen{}
	if _, err := NewLoRA(gen, 0, 0, ""); err == nil || !strings.Contains(err.Error(), "rank must be positive") {
		t.Errorf("rank 0: %v", err)
	}
	if _, err := NewLoRA(nil, 4, 0, ""); err == nil {
		t.Error("nil backbone accepted")
	}
	if _, err := NewMLP([]int{2}, 0, 0, 2, ""); err == nil {
		t.Error("zero width accepted")
	}
	if _, err := NewProblem(gen, struct{ identityModulator }{}, Objective{Reward: linearReward(1, 0), Reg: RegKL, Beta: 1}); err == nil || !strings.Contains(err.Error(), "scope") {
		t.Errorf("unscoped modulator: %v", err)
	}
	b := testutil.Backend(t)
	s, err := NewSampler(b, context.New(), gen, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := tensors.FromShape(shapes.Make(dtypes.Float32, 3, 5))
	if _, _, _, err := s.Sample(bad, tensors.FromFlatDataAndDimensions(make([]int32, 3), 3)); err == nil || !strings.Contains(err.Error(), "want [B [2]]") {
		t.Errorf("wrong noise shape: %v", err)
	}
}

type identityModulator struct{}

func (identityModulator) Name() string { return "none" }
func (identityModulator) Residual(ctx *context.Context, eps, prompts *Node) *Node {
	return ZerosLike(eps)
}

func TestSaveLoadWeights(t *testing.T) {
	b := testutil.Backend(t)
	gen, p := hyperProblem(t)
	ctx := testgen.Seeded(4)
	initGen(t, b, ctx, gen)
	cfg := DefaultAdamW()
	cfg.Steps, cfg.BatchSize, cfg.LR = 3, 8, 1e-2
	if _, err := Train(b, ctx, p, cfg, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mod.safetensors")
	type conf struct{ Arch string }
	if err := SaveWeights(ctx, p.Scope, path, conf{"mlp"}); err != nil {
		t.Fatal(err)
	}
	ctx2 := context.New()
	var got conf
	if err := LoadWeights(ctx2, path, &got); err != nil {
		t.Fatal(err)
	}
	if got.Arch != "mlp" {
		t.Errorf("config %+v", got)
	}
	want := values(ctx, p.Scope)
	have := values(ctx2, p.Scope)
	if len(want) == 0 || len(have) != len(want) {
		t.Fatalf("loaded %d variables, want %d", len(have), len(want))
	}
	for k, v := range want {
		if !slices.Equal(v, have[k]) {
			t.Errorf("%s differs after reload", k)
		}
	}
	if err := LoadWeights(context.New(), path+".missing", nil); err == nil {
		t.Error("loading a missing file succeeded")
	}
}
