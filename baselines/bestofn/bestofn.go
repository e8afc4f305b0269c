// Package bestofn is the best-of-N baseline: for each sample draw N noises eps_1..eps_N, generate
// x_n = g(eps_n, c), and keep the x_n with the highest reward r(x_n, c). It costs N generator
// forward passes (and N reward evaluations) per sample.
package bestofn

import (
	"fmt"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/hypernet"
)

// Sampler runs best-of-N for a generator and a reward.
type Sampler struct {
	gen  hypernoise.Generator
	n    int
	exec *context.Exec
}

// New returns a best-of-n sampler; n must be positive.
func New(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, reward hypernoise.Reward, n int) (s *Sampler, err error) {
	if gen == nil || reward == nil {
		return nil, fmt.Errorf("best-of-N needs a generator and a reward")
	}
	if n <= 0 {
		return nil, fmt.Errorf("best-of-N: N must be positive, got %d", n)
	}
	s = &Sampler{gen: gen, n: n}
	s.exec, err = context.NewExec(backend, ctx, func(ctx *context.Context, eps, prompts *Node) []*Node {
		b := eps.Shape().Dim(0)
		noiseDims := eps.Shape().Dimensions[2:]
		flatEps := Reshape(eps, append([]int{b * n}, noiseDims...)...)
		rep := Reshape(BroadcastToDims(ExpandAxes(prompts, 1), b, n), b*n)
		x := gen.Generate(ctx, flatEps, rep)
		r := Reshape(ConvertDType(reward.Score(ctx, x, rep), dtypes.Float32), b, n)
		best := OneHot(ArgMax(r, 1), n, x.DType()) // [B, N]
		pick := func(v *Node) *Node {
			vd := v.Shape().Dimensions[1:]
			flat := Reshape(v, b, n, -1)
			sel := ReduceSum(Mul(flat, ExpandAxes(best, -1)), 1)
			return Reshape(sel, append([]int{b}, vd...)...)
		}
		bestR := ReduceSum(Mul(r, ConvertDType(best, dtypes.Float32)), 1)
		return []*Node{pick(x), pick(flatEps), bestR}
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Result is the outcome for a batch: the kept samples, their noises and rewards, and the cost.
type Result struct {
	X, Eps *tensors.Tensor
	Reward []float32
	Cost   hypernet.Cost
}

// Sample runs best-of-N on candidate noises eps [B, N, NoiseShape...] and prompt ids [B].
func (s *Sampler) Sample(eps, prompts *tensors.Tensor) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("best-of-N: %v", r)
		}
	}()
	dims := eps.Shape().Dimensions
	if len(dims) < 2 || dims[1] != s.n {
		return res, fmt.Errorf("best-of-N: noise has shape %v, want [B, %d, %v]", dims, s.n, s.gen.NoiseShape())
	}
	b := dims[0]
	if err := hypernet.CheckNoiseShape(s.gen, append([]int{b}, dims[2:]...), prompts); err != nil {
		return res, fmt.Errorf("best-of-N: %w", err)
	}
	t0 := time.Now()
	outs, err := s.exec.Exec(eps, prompts)
	if err != nil {
		return res, err
	}
	res.X, res.Eps = outs[0], outs[1]
	res.Reward = tensors.MustCopyFlatData[float32](outs[2])
	res.Cost = hypernet.Cost{Forward: float64(s.n), Seconds: time.Since(t0).Seconds() / float64(b)}
	return res, nil
}

// Finalize releases the compiled graphs.
func (s *Sampler) Finalize() { s.exec.Finalize() }
