package hypernet

import (
	"fmt"
	"slices"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
)

// Sampler is HyperNoise inference: x = g(eps + f(eps, c), c), one modulator forward then the base
// generator; with a nil modulator it is plain base sampling x = g(eps, c). The graph is compiled
// once per batch shape and reused.
type Sampler struct {
	gen  hypernoise.Generator
	mod  hypernoise.Modulator
	exec *context.Exec
}

// NewSampler returns a sampler over ctx (which holds the generator's and modulator's variables).
func NewSampler(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, mod hypernoise.Modulator) (s *Sampler, err error) {
	if gen == nil {
		return nil, fmt.Errorf("sampler: nil generator")
	}
	s = &Sampler{gen: gen, mod: mod}
	s.exec, err = context.NewExec(backend, ctx, func(ctx *context.Context, eps, prompts *Node) []*Node {
		ep := eps
		if mod != nil {
			ep = Add(eps, mod.Residual(ctx, eps, prompts))
		}
		return []*Node{gen.Generate(ctx, ep, prompts), ep}
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Sample generates from noise eps [B, NoiseShape...] and prompt ids [B] (int32), returning the
// samples x, the modulated noise eps' and the cost per sample.
func (s *Sampler) Sample(eps, prompts *tensors.Tensor) (x, epsPrime *tensors.Tensor, cost Cost, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sampling: %v", r)
		}
	}()
	if err := CheckNoise(s.gen, eps, prompts); err != nil {
		return nil, nil, Cost{}, err
	}
	t0 := time.Now()
	outs, err := s.exec.Exec(eps, prompts)
	if err != nil {
		return nil, nil, Cost{}, err
	}
	cost = Cost{Forward: 1}
	if s.mod != nil {
		cost.Forward = 2
	}
	cost.Seconds = time.Since(t0).Seconds() / float64(eps.Shape().Dim(0))
	return outs[0], outs[1], cost, nil
}

// Finalize releases the compiled graphs.
func (s *Sampler) Finalize() { s.exec.Finalize() }

// CheckNoise checks that eps is [B, gen.NoiseShape()...] and prompts int32 [B] with ids in range
// (any id if the generator is unconditional).
func CheckNoise(gen hypernoise.Generator, eps, prompts *tensors.Tensor) error {
	if eps == nil {
		return fmt.Errorf("nil noise")
	}
	return CheckNoiseShape(gen, eps.Shape().Dimensions, prompts)
}

// CheckNoiseShape is CheckNoise for noise of dimensions dims.
func CheckNoiseShape(gen hypernoise.Generator, dims []int, prompts *tensors.Tensor) error {
	if prompts == nil {
		return fmt.Errorf("nil prompts")
	}
	want := gen.NoiseShape()
	if len(dims) != len(want)+1 || !slices.Equal(dims[1:], want) {
		return fmt.Errorf("noise has shape %v, want [B %v] for generator %s", dims, want, gen.Name())
	}
	pd := prompts.Shape().Dimensions
	if len(pd) != 1 || pd[0] != dims[0] {
		return fmt.Errorf("prompts have shape %v, want [%d]", pd, dims[0])
	}
	ids, err := tensors.CopyFlatData[int32](prompts)
	if err != nil {
		return fmt.Errorf("prompts must be int32 ids: %w", err)
	}
	if n := len(gen.Prompts()); n > 0 {
		for _, id := range ids {
			if id < 0 || int(id) >= n {
				return fmt.Errorf("prompt id %d out of range [0, %d)", id, n)
			}
		}
	}
	return nil
}
