package hypernet

import (
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/nn"
	"github.com/hypernoise/hypernoise/rewards"
)

// mlpGen is a small nonlinear generator g(eps) for eps [B, 2] (or [B, 2, 1] with shape3), built
// from nn layers, unconditional or with prompts (an embedding added to the hidden layer).
type mlpGen struct {
	prompts []string
	shape   []int
}

func (g *mlpGen) Name() string { return "test-mlp" }
func (g *mlpGen) NoiseShape() []int {
	if g.shape != nil {
		return g.shape
	}
	return []int{2}
}
func (g *mlpGen) Prompts() []string { return g.prompts }
func (g *mlpGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return g.Backbone(ctx, eps, prompts)
}
func (g *mlpGen) Backbone(ctx *context.Context, eps, prompts *Node) *Node {
	ctx = ctx.In("gen")
	b := eps.Shape().Dim(0)
	h := activations.Swish(nn.Dense(ctx.In("d0"), Reshape(eps, b, -1), 16))
	if len(g.prompts) > 0 {
		h = Add(h, nn.Embedding(ctx.In("emb"), prompts, len(g.prompts), 16))
	}
	h = activations.Swish(nn.Dense(ctx.In("d1"), h, 16))
	return Reshape(nn.OutputDense(ctx.In("out"), h, 2), eps.Shape().Dimensions...)
}

// identityGen is g(eps) = eps, a single output layer whose weights testgen.SetIdentity sets to the
// identity (testgen.IdentityGen with a Backbone).
type identityGen struct{}

func (identityGen) Name() string      { return "identity" }
func (identityGen) NoiseShape() []int { return []int{2} }
func (identityGen) Prompts() []string { return nil }
func (g identityGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return g.Backbone(ctx, eps, prompts)
}
func (identityGen) Backbone(ctx *context.Context, eps, prompts *Node) *Node {
	return nn.OutputDense(ctx.In("id"), eps, 2)
}

// linearReward is r(x) = a . x for x [B, 2].
func linearReward(a0, a1 float32) hypernoise.Reward {
	return rewards.Func{RewardName: "linear", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		a := Const(x.Graph(), []float32{a0, a1})
		return ReduceSum(Mul(Reshape(x, x.Shape().Dim(0), 2), ExpandAxes(a, 0)), -1)
	}}
}

// initGen builds the generator once so that its (random, seeded) weights exist in ctx.
func initGen(t *testing.T, b backends.Backend, ctx *context.Context, g hypernoise.Generator) {
	t.Helper()
	eps := NoiseTensor(1, 1, 4, g.NoiseShape())
	prompts := tensors.FromFlatDataAndDimensions(make([]int32, 4), 4)
	if _, err := context.ExecOnce(b, ctx, func(ctx *context.Context, e, p *Node) *Node {
		return g.Generate(ctx, e, p)
	}, eps, prompts); err != nil {
		t.Fatal(err)
	}
}

// trainTilt trains p, a problem that learns the tilt of a Gaussian under the identity generator,
// for steps AdamW steps of batch 64 (learning rate 1e-2 after 10 warm-up steps, no weight decay),
// failing the test on an error.
func trainTilt(t *testing.T, b backends.Backend, ctx *context.Context, p *Problem, steps int) *TrainResult {
	t.Helper()
	cfg := DefaultAdamW()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps, cfg.WeightDecay = steps, 64, 1e-2, 10, 0
	res, err := Train(b, ctx, p, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// meanResidual samples n noises through mod and returns the mean of eps' - eps.
func meanResidual(t *testing.T, b backends.Backend, ctx *context.Context, gen hypernoise.Generator, mod hypernoise.Modulator, n int) [2]float64 {
	t.Helper()
	s, err := NewSampler(b, ctx, gen, mod)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Finalize()
	eps := NoiseTensor(2, 3, n, []int{2})
	_, ep, _, err := s.Sample(eps, tensors.FromFlatDataAndDimensions(make([]int32, n), n))
	if err != nil {
		t.Fatal(err)
	}
	e0, e1 := tensors.MustCopyFlatData[float32](eps), tensors.MustCopyFlatData[float32](ep)
	var mean [2]float64
	for i := range n {
		for j := range 2 {
			mean[j] += float64(e1[2*i+j]-e0[2*i+j]) / float64(n)
		}
	}
	return mean
}

// values copies the float32 variables under scope, by path.
func values(ctx *context.Context, scope string) map[string][]float32 {
	out := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if v.DType().IsFloat() && (v.Scope() == scope || len(v.Scope()) > len(scope) && v.Scope()[:len(scope)+1] == scope+"/") {
			out[v.ScopeAndName()] = tensors.MustCopyFlatData[float32](v.MustValue())
		}
	}
	return out
}
