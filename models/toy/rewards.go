package toy

import (
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/rewards"
)

// Rewards returns the toy's rewards, each with a known shape, for samples x [B, 2]:
//
//	right: r(x) = x_1. Under the tilt p*(x) ∝ p(x) exp(x_1/beta) mode k (centre m_k) is reweighted
//	       by exp(m_k1/beta) and, for a Gaussian mode of std s, shifted by s^2/beta along x_1.
//	up:    r(x) = x_2, the same along the other axis.
//	bump:  r(x) = 2 exp(-||x - m_1||^2 / (2 * 0.75^2)), a bounded bump on the second mode
//	       (at angle 2π/Modes), favouring it and its neighbours.
func Rewards(cfg Config) *rewards.Registry {
	reg := rewards.NewRegistry()
	must := func(err error) {
		if err != nil {
			panic(err) // only on a programming error: the names below are fixed and distinct
		}
	}
	must(reg.Register("right", "r(x) = x1: favours the modes on the right", func() (hypernoise.Reward, error) {
		return coordinate("right", 0), nil
	}))
	must(reg.Register("up", "r(x) = x2: favours the modes at the top", func() (hypernoise.Reward, error) {
		return coordinate("up", 1), nil
	}))
	centers := cfg.Centers()
	c := centers[min(1, len(centers)-1)]
	must(reg.Register("bump", "r(x) = 2 exp(-|x - m1|^2 / (2*0.75^2)): favours the second mode", func() (hypernoise.Reward, error) {
		return rewards.Func{RewardName: "bump", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
			center := ConvertDType(Const(x.Graph(), []float32{float32(c[0]), float32(c[1])}), x.DType())
			d2 := ReduceSum(Square(Sub(x, ExpandAxes(center, 0))), -1)
			return MulScalar(Exp(MulScalar(d2, -1/(2*0.75*0.75))), 2)
		}}, nil
	}))
	return reg
}

func coordinate(name string, axis int) hypernoise.Reward {
	return rewards.Func{RewardName: name, Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		onehot := []float32{0, 0}
		onehot[axis] = 1
		e := ConvertDType(Const(x.Graph(), onehot), x.DType())
		return ReduceSum(Mul(x, ExpandAxes(e, 0)), -1)
	}}
}
