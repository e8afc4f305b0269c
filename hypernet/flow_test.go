package hypernet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/rewards"
	"gonum.org/v1/gonum/mat"
)

// flowOutputs runs the flow on eps [n, shape...] with prompts and returns f (flat), its log-det
// [n] and the autodiff Jacobian of f, [n, D, D] flat (JacobianRows).
func flowOutputs(t *testing.T, b backends.Backend, ctx *context.Context, m *Flow, eps, prompts *tensors.Tensor) (f, logDet, jac []float32) {
	t.Helper()
	outs, err := context.ExecOnceN(b, ctx, func(ctx *context.Context, e, p *Node) []*Node {
		f, ld := m.ResidualLogDet(ctx, e, p)
		return []*Node{f, ld, JacobianRows(e, f)}
	}, eps, prompts)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1]),
		tensors.MustCopyFlatData[float32](outs[2])
}

// TestFlowIsIdentityAtInit: a fresh flow maps every noise to itself (f = 0, log-det 0 exactly).
func TestFlowIsIdentityAtInit(t *testing.T) {
	m, err := NewFlow([]int{2, 3}, 3, 16, 2, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	eps := NoiseTensor(1, 2, 5, m.NoiseShape)
	f, ld, _ := flowOutputs(t, testutil.Backend(t), context.New(), m, eps, tensors.FromFlatDataAndDimensions([]int32{0, 1, 2, 1, 0}, 5))
	for i, v := range f {
		if v != 0 {
			t.Fatalf("f[%d] = %g at initialization, want 0", i, v)
		}
	}
	for i, v := range ld {
		if v != 0 {
			t.Fatalf("log-det[%d] = %g at initialization, want 0", i, v)
		}
	}
}

// TestFlowLogDetIsExact: with random weights (far from the identity) the flow's log-determinant
// equals log|det(I + J_f)| of the autodiff Jacobian, computed by LU, on every sample and prompt,
// and Inverse undoes the map with the same log-determinant; with MLP conditioners (with and
// without prompts) and with LoRA copies of a generator's backbone as conditioners.
func TestFlowLogDetIsExact(t *testing.T) {
	b := testutil.Backend(t)
	const n = 6
	ids := tensors.FromFlatDataAndDimensions([]int32{0, 1, 2, 0, 1, 2}, n)
	for _, prompts := range []int{0, 3} {
		m, err := NewFlow([]int{2, 3}, prompts, 16, 2, 4, "")
		if err != nil {
			t.Fatal(err)
		}
		p := ids
		if prompts == 0 {
			p = tensors.FromFlatDataAndDimensions(make([]int32, n), n)
		}
		checkFlowExact(t, b, context.New(), m, NoiseTensor(3, 4, n, m.NoiseShape), p, fmt.Sprintf("mlp, %d prompts", prompts))
	}
	gen := &mlpGen{prompts: []string{"a", "b", "c"}}
	ctx := testgen.Seeded(2)
	initGen(t, b, ctx, gen)
	m, err := NewLoRAFlow(gen, gen.NoiseShape(), 3, 2, 0, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	eps := NoiseTensor(3, 4, n, m.NoiseShape)
	f, ld, _ := flowOutputs(t, b, ctx, m, eps, ids)
	for i := range f {
		if f[i] != 0 || ld[i%n] != 0 {
			t.Fatalf("lora conditioners: f = %v, log-det %v at initialization, want 0", f, ld)
		}
	}
	checkFlowExact(t, b, ctx, m, eps, ids, "lora")
	if _, err := NewLoRAFlow(gen, []int{3}, 0, 2, 0, 2, ""); err == nil || !strings.Contains(err.Error(), "must be even") {
		t.Errorf("LoRA conditioners on 3 channels: %v", err)
	}
}

// checkFlowExact randomizes m's weights in ctx (its variables are created first) and checks its
// log-det against the brute-force determinant of the autodiff Jacobian, and its inverse.
func checkFlowExact(t *testing.T, b backends.Backend, ctx *context.Context, m *Flow, eps, ids *tensors.Tensor, what string) {
	t.Helper()
	n, d := eps.Shape().Dim(0), size(m.NoiseShape)
	flowOutputs(t, b, ctx, m, eps, ids) // creates the variables
	r := rand.New(rand.NewPCG(5, 6))
	for v := range ctx.IterVariables() {
		if !v.DType().IsFloat() || !strings.HasPrefix(v.Scope(), m.Scope()) {
			continue // the RNG state, the generator
		}
		data := tensors.MustCopyFlatData[float32](v.MustValue())
		for i := range data {
			data[i] = float32(0.4 * r.NormFloat64())
		}
		v.MustSetValue(tensors.FromFlatDataAndDimensions(data, v.Shape().Dimensions...))
	}
	_, ld, jac := flowOutputs(t, b, ctx, m, eps, ids)
	inv, err := context.ExecOnceN(b, ctx, func(ctx *context.Context, e, p *Node) []*Node {
		f, _ := m.ResidualLogDet(ctx, e, p)
		back, ld := m.Inverse(ctx, Add(e, f), p)
		return []*Node{back, ld}
	}, eps, ids)
	if err != nil {
		t.Fatal(err)
	}
	back, e0 := tensors.MustCopyFlatData[float32](inv[0]), tensors.MustCopyFlatData[float32](eps)
	for i := range back {
		if math.Abs(float64(back[i]-e0[i])) > 1e-4 {
			t.Fatalf("%s: T^-1(T(eps))[%d] = %g, eps %g", what, i, back[i], e0[i])
		}
	}
	for i, v := range tensors.MustCopyFlatData[float32](inv[1]) {
		if math.Abs(float64(v-ld[i])) > 1e-4*(1+math.Abs(float64(v))) {
			t.Errorf("%s, sample %d: the inverse's log-det %g, the forward's %g", what, i, v, ld[i])
		}
	}
	var spread float64
	for k := range n {
		a := mat.NewDense(d, d, nil)
		for i := range d {
			for j := range d {
				v := float64(jac[(k*d+i)*d+j])
				if i == j {
					v++
				}
				a.Set(i, j, v)
			}
		}
		want, sign := mat.LogDet(a)
		if sign <= 0 {
			t.Fatalf("%s, sample %d: det(dT/deps) has sign %g; a coupling flow's is positive", what, k, sign)
		}
		if got := float64(ld[k]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
			t.Errorf("%s, sample %d: log-det %.6f, brute force %.6f", what, k, got, want)
		}
		spread += math.Abs(want)
	}
	if spread/float64(n) < 0.1 {
		t.Fatalf("%s: mean |log-det| %.3g: the random weights left the map near a volume-preserving one, the test proves nothing", what, spread/float64(n))
	}
}

// eyeGen is g(eps) = eps on noise of shape [6], without variables.
type eyeGen struct{}

func (eyeGen) Name() string                                            { return "eye" }
func (eyeGen) NoiseShape() []int                                       { return []int{6} }
func (eyeGen) Prompts() []string                                       { return nil }
func (eyeGen) Generate(ctx *context.Context, eps, prompts *Node) *Node { return eps }

// TestFlowLearnsTheTiltsWidth: under g = identity with r(x) = -c/2 ||x||^2 the tilt of N(0, I) at
// beta is N(0, 1/(1 + c/beta) I). On 6-dimensional noise (past the Jacobian-row exact KL's limit)
// a flow trained on the exact KL (its own log-det) lands on the tilt's standard deviation, 0.5
// for c/beta = 3; the surrogate 1/2||f||^2 (RegKL), which drops the log-det, contracts to
// 1/(1 + c/beta) = 0.25.
func TestFlowLearnsTheTiltsWidth(t *testing.T) {
	b := testutil.Backend(t)
	const c, beta = 0.75, 0.25
	reward := rewards.Func{RewardName: "quad", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		return MulScalar(ReduceSum(Square(x), -1), -c/2)
	}}
	gen := eyeGen{}
	for _, tc := range []struct {
		reg  Regularizer
		want float64
	}{{RegExactKL, 0.5}, {RegKL, 0.25}} {
		m, err := NewFlow(gen.NoiseShape(), 0, 16, 1, 2, "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewProblem(gen, m, Objective{Reward: reward, Reg: tc.reg, Beta: beta})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.New()
		cfg := DefaultAdamW()
		cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps, cfg.WeightDecay = 400, 64, 2e-2, 10, 0
		if _, err := Train(b, ctx, p, cfg, nil); err != nil {
			t.Fatal(err)
		}
		s, err := NewSampler(b, ctx, gen, m)
		if err != nil {
			t.Fatal(err)
		}
		const n = 4000
		_, ep, _, err := s.Sample(NoiseTensor(7, 8, n, gen.NoiseShape()), tensors.FromFlatDataAndDimensions(make([]int32, n), n))
		s.Finalize()
		if err != nil {
			t.Fatal(err)
		}
		var sq float64
		for _, v := range tensors.MustCopyFlatData[float32](ep) {
			sq += float64(v) * float64(v)
		}
		if std := math.Sqrt(sq / (n * 6)); math.Abs(std-tc.want) > 0.04 {
			t.Errorf("%s: std of T(eps) %.3f, want %.3f", tc.reg, std, tc.want)
		}
	}
}

// TestFlowObjectiveValidation: the exact KL is refused at 6 noise elements for a modulator
// without a log-det, accepted with one; a flow needs 2 noise elements and positive sizes.
func TestFlowObjectiveValidation(t *testing.T) {
	o := Objective{Reward: rewards.Func{RewardName: "z", Fn: func(ctx *context.Context, x, p *Node) *Node { return ReduceSum(x, -1) }},
		Reg: RegExactKL, Beta: 1}
	if err := o.Validate([]int{6}); err == nil || !strings.Contains(err.Error(), "exact log-determinant (flow)") {
		t.Errorf("exact-kl without a log-det at D=6: %v", err)
	}
	o.ExactLogDet = true
	if err := o.Validate([]int{6}); err != nil {
		t.Errorf("exact-kl with the flow's log-det at D=6: %v", err)
	}
	var _ hypernoise.Modulator = (*Flow)(nil)
	var _ LogDetModulator = (*Flow)(nil)
	for _, bad := range []struct {
		shape              []int
		hidden, layers, cp int
		want               string
	}{
		{[]int{1}, 8, 1, 2, "fewer than 2 elements"},
		{[]int{4}, 8, 1, 0, "coupling count must be positive"},
		{[]int{4}, 0, 1, 2, "hidden width"},
	} {
		if _, err := NewFlow(bad.shape, 0, bad.hidden, bad.layers, bad.cp, ""); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("NewFlow(%v, %d, %d, %d): %v, want %q", bad.shape, bad.hidden, bad.layers, bad.cp, err, bad.want)
		}
	}
}

// TestPathKLGradientIsUnbiased: on a flow with random weights, the path gradient of PathKL and
// the plain reparameterized gradient of FlowKL agree in the mean over many noises (they differ
// only by the score term, zero in expectation), and PathKL's value is FlowKL's.
func TestPathKLGradientIsUnbiased(t *testing.T) {
	b := testutil.Backend(t)
	m, err := NewFlow([]int{4}, 2, 8, 1, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	const n = 20000
	eps := NoiseTensor(9, 1, n, m.NoiseShape)
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i % 2)
	}
	prompts := tensors.FromFlatDataAndDimensions(ids, n)
	flowOutputs(t, b, ctx, m, NoiseTensor(1, 1, 2, m.NoiseShape), tensors.FromFlatDataAndDimensions([]int32{0, 1}, 2))
	r := rand.New(rand.NewPCG(11, 12))
	for v := range ctx.IterVariables() {
		if !v.DType().IsFloat() || !strings.HasPrefix(v.Scope(), m.Scope()) {
			continue
		}
		data := tensors.MustCopyFlatData[float32](v.MustValue())
		for i := range data {
			data[i] = float32(0.3 * r.NormFloat64())
		}
		v.MustSetValue(tensors.FromFlatDataAndDimensions(data, v.Shape().Dimensions...))
	}
	outs, err := context.ExecOnceN(b, ctx, func(ctx *context.Context, e, p *Node) []*Node {
		f, ld := m.ResidualLogDet(ctx, e, p)
		plain, path := FlowKL(e, f, ld), PathKL(ctx, m, e, f, ld, p)
		var vals []*Node
		for v := range ctx.IterVariables() {
			if v.DType().IsFloat() && strings.HasPrefix(v.Scope(), m.Scope()) {
				vals = append(vals, v.ValueGraph(e.Graph()))
			}
		}
		flat := func(gs []*Node) *Node {
			for i := range gs {
				gs[i] = Reshape(gs[i], -1)
			}
			return Concatenate(gs, 0)
		}
		return []*Node{flat(Gradient(ReduceAllMean(plain), vals...)), flat(Gradient(ReduceAllMean(path), vals...)),
			ReduceAllMax(Abs(Sub(plain, path)))}
	}, eps, prompts)
	if err != nil {
		t.Fatal(err)
	}
	g1, g2 := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
	var dot, n1, n2, diff float64
	for i := range g1 {
		dot += float64(g1[i] * g2[i])
		n1 += float64(g1[i] * g1[i])
		n2 += float64(g2[i] * g2[i])
		diff += float64((g1[i] - g2[i]) * (g1[i] - g2[i]))
	}
	if rel := math.Sqrt(diff / n1); rel > 0.1 || n1 == 0 {
		t.Errorf("mean gradients differ: |g_plain - g_path| / |g_plain| = %.3f (|g_plain| %.3g, |g_path| %.3g, cosine %.4f)",
			rel, math.Sqrt(n1), math.Sqrt(n2), dot/math.Sqrt(n1*n2))
	}
	if d := tensors.MustCopyFlatData[float32](outs[2])[0]; d > 1e-4 {
		t.Errorf("PathKL's value differs from FlowKL's by %g", d)
	}
}
