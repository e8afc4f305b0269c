package hypernet

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
)

// Sampler is HyperNoise inference: x = g(eps + f(eps, c), c), one modulator forward then the base
// generator; with a nil modulator it is plain base sampling x = g(eps, c). It runs in chunks of at
// most Chunk rows, each graph compiled once per (padded) chunk shape and reused; it is safe for
// concurrent use.
type Sampler struct {
	gen   hypernoise.Generator
	mod   hypernoise.Modulator
	chunk int
	exec  *SharedExec
}

// NewSampler returns a sampler over ctx (which holds the generator's and modulator's variables),
// with a private lock and hypernoise.DefaultChunk rows per call.
func NewSampler(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, mod hypernoise.Modulator) (*Sampler, error) {
	return NewSharedSampler(backend, ctx, nil, 0, gen, mod)
}

// NewSharedSampler is NewSampler with the context's shared lock (see Exec) and a chunk size
// (<= 0: hypernoise.DefaultChunk).
func NewSharedSampler(backend backends.Backend, ctx *context.Context, lock *sync.RWMutex, chunk int, gen hypernoise.Generator, mod hypernoise.Modulator) (s *Sampler, err error) {
	if gen == nil {
		return nil, fmt.Errorf("sampler: nil generator")
	}
	if chunk <= 0 {
		chunk = hypernoise.DefaultChunk
	}
	s = &Sampler{gen: gen, mod: mod, chunk: chunk}
	s.exec, err = NewSharedExec(backend, ctx, lock, func(ctx *context.Context, eps, prompts *Node) []*Node {
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
	b := eps.Shape().Dim(0)
	flat := tensors.MustCopyFlatData[float32](eps)
	ids := tensors.MustCopyFlatData[int32](prompts)
	noise := eps.Shape().Dimensions[1:]
	d := len(flat) / max(b, 1)
	var xs, es []float32
	var xDims []int
	err = Chunks(b, s.chunk, func(lo, hi int) error {
		p := PaddedRows(hi-lo, s.chunk)
		be := tensors.FromFlatDataAndDimensions(PadRows(flat, d, lo, hi, p), append([]int{p}, noise...)...)
		bp := tensors.FromFlatDataAndDimensions(PadRows(ids, 1, lo, hi, p), p)
		outs, err := s.exec.Exec(be, bp)
		if err != nil {
			return err
		}
		xd := outs[0].Shape().Dimensions
		xDims = xd[1:]
		dx := outs[0].Shape().Size() / p
		xs = append(xs, tensors.MustCopyFlatData[float32](outs[0])[:(hi-lo)*dx]...)
		es = append(es, tensors.MustCopyFlatData[float32](outs[1])[:(hi-lo)*d]...)
		return nil
	})
	if err != nil {
		return nil, nil, Cost{}, err
	}
	if b == 0 {
		return nil, nil, Cost{}, fmt.Errorf("sampling: empty batch")
	}
	cost = Cost{Forward: 1}
	if s.mod != nil {
		cost.Forward = 2
	}
	cost.Seconds = time.Since(t0).Seconds() / float64(b)
	return tensors.FromFlatDataAndDimensions(xs, append([]int{b}, xDims...)...),
		tensors.FromFlatDataAndDimensions(es, eps.Shape().Dimensions...), cost, nil
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
