// Package testgen holds small generators and rewards shared by the tests of the hypernetwork and
// the baselines.
package testgen

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/nn"
	"github.com/hypernoise/hypernoise/rewards"
)

// IdentityGen is g(eps) = eps for eps [B, 2]: one output layer whose weights SetIdentity sets.
type IdentityGen struct{}

func (IdentityGen) Name() string      { return "identity" }
func (IdentityGen) NoiseShape() []int { return []int{2} }
func (IdentityGen) Prompts() []string { return nil }
func (IdentityGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return nn.OutputDense(ctx.In("id"), eps, 2)
}

// SetIdentity stores the identity weights IdentityGen reads.
func SetIdentity(ctx *context.Context) {
	ctx.In("id").VariableWithValue("weights", [][]float32{{1, 0}, {0, 1}})
	ctx.In("id").VariableWithValue("biases", []float32{0, 0})
}

// MLP is a small nonlinear generator R^2 -> R^2 with random (seeded) weights.
type MLP struct{}

func (MLP) Name() string      { return "mlp" }
func (MLP) NoiseShape() []int { return []int{2} }
func (MLP) Prompts() []string { return nil }
func (MLP) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	ctx = ctx.In("mlp")
	h := activations.Swish(nn.Dense(ctx.In("d0"), eps, 16))
	return nn.OutputDense(ctx.In("out"), h, 2)
}

var _ hypernoise.Generator = MLP{}

// Linear is r(x) = a . x for x [B, 2].
func Linear(a0, a1 float32) hypernoise.Reward {
	return rewards.Func{RewardName: "linear", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		a := Const(x.Graph(), []float32{a0, a1})
		return ReduceSum(Mul(x, ExpandAxes(a, 0)), -1)
	}}
}

// Well is r(x) = -(x_0 - c)^2, maximal on the line x_0 = c.
func Well(c float32) hypernoise.Reward {
	return rewards.Func{RewardName: "well", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		first := ReduceSum(Mul(x, ExpandAxes(Const(x.Graph(), []float32{1, 0}), 0)), -1)
		return Neg(Square(AddScalar(first, -float64(c))))
	}}
}

// Seeded returns a context whose initializers are seeded.
func Seeded(seed int64) *context.Context {
	ctx := context.New()
	ctx.SetParam(context.ParamInitialSeed, seed)
	_ = ctx.SetRNGStateFromSeed(seed)
	return ctx
}

// Poisoned is r(x) = x_0 where x_0 <= thr and the value bad (NaN, ±Inf, or a float32 overflow such
// as 1e39) elsewhere: a reward model that fails on part of its inputs.
func Poisoned(thr float32, bad float64) hypernoise.Reward {
	return rewards.Func{RewardName: "poisoned", Src: "poisoned.onnx, output \"score\"", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		first := ReduceSum(Mul(x, ExpandAxes(Const(x.Graph(), []float32{1, 0}), 0)), -1)
		badNode := BroadcastToDims(Scalar(x.Graph(), first.DType(), bad), first.Shape().Dimensions...)
		return Where(GreaterThan(first, Scalar(x.Graph(), first.DType(), thr)), badNode, first)
	}}
}
