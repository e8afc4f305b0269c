// Package imagerewards holds the pixel rewards, usable by every family whose samples are images
// x [B, H, W, C] in [0,1]; each is differentiable in x and ignores the prompt:
//
//	brightness  mean_ij x_ij: the mean pixel value (the analogue of the paper's "redness")
//	contrast    sqrt(mean_ij (x_ij - mean x)^2 + 1e-6): the pixel standard deviation
//
// and the soft ink statistics the compositional rewards are built from. The rewards that need a
// family's own networks (the embedded model's align and realism) live with that family.
package imagerewards

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/rewards"
)

// Names of the rewards in the registry.
const (
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

// Pixel adds the pixel rewards (brightness, contrast) to r: they read nothing but the samples'
// values, so every family whose samples are images [B, H, W, C] in [0, 1] can offer them.
func Pixel(r *rewards.Registry) error {
	if err := r.Register(Brightness, "mean pixel value in [0,1]",
		func() (hypernoise.Reward, error) { return BrightnessReward(), nil }); err != nil {
		return err
	}
	return r.Register(Contrast, "standard deviation of the pixels",
		func() (hypernoise.Reward, error) { return ContrastReward(), nil })
}
