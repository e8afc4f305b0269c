// Package imagerewards holds the rewards that ship with the embedded Fashion-MNIST default. Each
// scores images x [B,28,28,1] in [0,1] for prompts c [B] and is differentiable in x:
//
//	align       log p_cls(c | x): log-probability of the prompt's class under the reward classifier
//	realism     log D(x) = log sigmoid(d(x)): the discriminator's log-probability that x is real
//	brightness  mean_ij x_ij: the mean pixel value (the analogue of the paper's "redness")
//	contrast    sqrt(mean_ij (x_ij - mean x)^2 + 1e-6): the pixel standard deviation
//
// realism uses log D rather than the raw logit d so that the reward is bounded above by 0 and a
// generator cannot gain without limit by pushing one logit.
package imagerewards

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/rewards"
)

// Names of the rewards in the registry.
const (
	Align      = "align"
	Realism    = "realism"
	Brightness = "brightness"
	Contrast   = "contrast"
)

// flatImages reshapes x [B, ...] to [B, D].
func flatImages(x *Node) *Node { return Reshape(x, x.Shape().Dim(0), -1) }

// BrightnessReward is r(x) = mean pixel value of each image.
func BrightnessReward() hypernoise.Reward {
	return rewards.Func{RewardName: Brightness, Fn: func(_ *context.Context, x, _ *Node) *Node {
		return ReduceMean(flatImages(x), -1)
	}}
}

// ContrastReward is r(x) = standard deviation of each image's pixels (with 1e-6 inside the root so
// the gradient is finite on a flat image).
func ContrastReward() hypernoise.Reward {
	return rewards.Func{RewardName: Contrast, Fn: func(_ *context.Context, x, _ *Node) *Node {
		f := flatImages(x)
		d := Sub(f, ReduceAndKeep(f, ReduceMean, -1))
		return Sqrt(AddScalar(ReduceMean(Square(d), -1), 1e-6))
	}}
}

// SoftInkWidth is the temperature of the soft ink mask sigmoid((x - level)/SoftInkWidth).
const SoftInkWidth = 0.02

// SoftInkStats computes, for images x [B,28,28,1] and an ink level, three differentiable image
// statistics [B,3] on the soft ink mask m = sigmoid((x - level)/SoftInkWidth):
//
//	tone   Σ x m / (Σ m + 1e-3)                        the mean value of the ink
//	area   mean m                                       the fraction of the image that is ink
//	width  sqrt(Σ m (j - j̄)^2 / (Σ m + 1e-3) + 1e-6) / W  the ink's horizontal spread, j the
//	       column index, j̄ = Σ m j / (Σ m + 1e-3), W the image width
//
// They are the smooth counterparts of hard-mask statistics (x > level), for rewards.
func SoftInkStats(x *Node, level float64) *Node {
	b := x.Shape().Dim(0)
	w := x.Shape().Dim(2)
	img := Reshape(x, b, x.Shape().Dim(1), w)
	m := Sigmoid(DivScalar(AddScalar(img, -level), SoftInkWidth))
	mass := AddScalar(ReduceSum(m, 1, 2), 1e-3)
	tone := Div(ReduceSum(Mul(img, m), 1, 2), mass)
	area := ReduceMean(m, 1, 2)
	colMass := ReduceSum(m, 1) // [B,W]
	cols2 := Iota(x.Graph(), shapes.Make(x.DType(), 1, w), 1)
	mean := Div(ReduceSum(Mul(colMass, cols2), 1), mass)
	d := Sub(cols2, ExpandAxes(mean, -1))
	variance := Div(ReduceSum(Mul(colMass, Square(d)), 1), mass)
	width := DivScalar(Sqrt(AddScalar(variance, 1e-6)), float64(w))
	return Stack([]*Node{tone, area, width}, -1)
}

// root is ctx at the root scope, where the fashion models' weights live; the rewards must be
// evaluated in a context holding those weights (the fashion.Model's context).
func root(ctx *context.Context) *context.Context { return ctx.InAbsPath(context.ScopeSeparator) }

// AlignReward is r(x, c) = log softmax(classifier(x))[c], using m's reward classifier
// (Score must run in m.Context(), which holds its weights).
func AlignReward(m *fashion.Model) (hypernoise.Reward, error) {
	if err := m.Need(fashion.ScopeClassifier); err != nil {
		return nil, err
	}
	return rewards.Func{RewardName: Align, Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		logp := LogSoftmax(fashion.ClassifierLogits(root(ctx), x))
		oneHot := OneHot(prompts, logp.Shape().Dim(-1), logp.DType())
		return ReduceSum(Mul(logp, oneHot), -1)
	}}, nil
}

// RealismReward is r(x) = log sigmoid(d(x)), d the realism discriminator of m.
func RealismReward(m *fashion.Model) (hypernoise.Reward, error) {
	if err := m.Need(fashion.ScopeDiscriminator); err != nil {
		return nil, err
	}
	return rewards.Func{RewardName: Realism, Fn: func(ctx *context.Context, x, _ *Node) *Node {
		d := fashion.DiscriminatorLogits(root(ctx), x)
		// log sigmoid(d) = -softplus(-d), computed stably.
		return Neg(Softplus(Neg(d)))
	}}, nil
}

// Registry returns the image rewards for the models in m, ready for specs like "align=1,realism=0.5".
func Registry(m *fashion.Model) *rewards.Registry {
	r := rewards.NewRegistry()
	must := func(err error) {
		if err != nil {
			panic(fmt.Sprintf("imagerewards: %v", err)) // programming error: fixed names
		}
	}
	must(r.Register(Align, "log-probability of the prompt's class under the reward classifier",
		func() (hypernoise.Reward, error) { return AlignReward(m) }))
	must(r.Register(Realism, "log-probability that the image is real under the discriminator",
		func() (hypernoise.Reward, error) { return RealismReward(m) }))
	must(r.Register(Brightness, "mean pixel value in [0,1]",
		func() (hypernoise.Reward, error) { return BrightnessReward(), nil }))
	must(r.Register(Contrast, "standard deviation of the pixels",
		func() (hypernoise.Reward, error) { return ContrastReward(), nil }))
	return r
}
