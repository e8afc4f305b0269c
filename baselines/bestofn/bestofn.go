// Package bestofn is the best-of-N baseline: for each sample draw N noises eps_1..eps_N, generate
// x_n = g(eps_n, c), and keep the x_n with the highest reward r(x_n, c). It costs N generator
// forward passes (and N reward evaluations) per sample.
//
// Candidates: candidate 0 of a sample is the noise it is given (so best-of-N never does worse than
// base sampling on its own reward, and the same seed governs both); candidates 1..N-1 are drawn from
// a N(0, I) stream seeded by a hash of that noise, so they are a pure function of the sample's own
// noise: the same in every command, whatever the batch or chunk it runs in.
//
// Memory is bounded: candidates are generated, scored and discarded in chunks of a fixed number of
// rows; only the best sample of each input is kept.
package bestofn

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/hypernet"
)

// Name is the method's name in the registry.
const Name = "best-of-n"

// Method is the registry entry of best-of-N (needs a reward and N).
var Method = hypernoise.MethodInfo{
	Name:    Name,
	Summary: "N candidate noises per sample (the given one and N-1 derived from it), keep the highest reward",
	Needs:   hypernoise.NeedsReward | hypernoise.NeedsN,
	// N = 16 by default; at most 10000 candidates per sample (they run in chunks).
	Defaults: hypernoise.Knobs{N: 16}, Max: hypernoise.Knobs{N: 10000},
	New: func(env hypernoise.MethodEnv) (hypernoise.Method, error) {
		s, err := NewShared(env.Backend, env.Context, env.Lock, env.ChunkOrDefault(), env.Generator, env.Reward, env.N)
		if err != nil {
			return nil, err
		}
		return method{s}, nil
	},
}

type method struct{ s *Sampler }

// Name is "best-of-<N>".
func (m method) Name() string { return fmt.Sprintf("best-of-%d", m.s.n) }

func (m method) Generate(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernoise.Cost, error) {
	res, err := m.s.Sample(eps, prompts)
	return res.X, res.Cost, err
}

func (m method) Close() { m.s.Finalize() }

// Sampler runs best-of-N for a generator and a reward; safe for concurrent use.
type Sampler struct {
	gen    hypernoise.Generator
	reward hypernoise.Reward
	n      int
	chunk  int
	exec   *hypernet.SharedExec // eps [M, ...], prompts [M] -> x [M, ...], r [M]
}

// New returns a best-of-n sampler with a private lock and hypernoise.DefaultChunk rows per call.
func New(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, reward hypernoise.Reward, n int) (*Sampler, error) {
	return NewShared(backend, ctx, nil, hypernoise.DefaultChunk, gen, reward, n)
}

// NewShared is New with the context's shared lock (see hypernet.SharedExec) and the number of
// candidates generated per compiled call.
func NewShared(backend backends.Backend, ctx *context.Context, lock *sync.RWMutex, chunk int, gen hypernoise.Generator, reward hypernoise.Reward, n int) (s *Sampler, err error) {
	if gen == nil || reward == nil {
		return nil, fmt.Errorf("best-of-N needs a generator and a reward")
	}
	if n <= 0 {
		return nil, fmt.Errorf("best-of-N: N must be positive, got %d", n)
	}
	s = &Sampler{gen: gen, reward: reward, n: n, chunk: max(chunk, 1)}
	s.exec, err = hypernet.NewSharedExec(backend, ctx, lock, func(ctx *context.Context, eps, prompts *Node) []*Node {
		x := gen.Generate(ctx, eps, prompts)
		return []*Node{x, ConvertDType(reward.Score(ctx, x, prompts), dtypes.Float32)}
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Result is the outcome for a batch: the kept samples, their noises and rewards, and the cost.
// Skipped counts the candidates left out because their reward was not finite (NaN or ±Inf; a
// float32 reward beyond ±3.4e38 is +-Inf); it is also in Cost.Skipped.
type Result struct {
	X, Eps  *tensors.Tensor
	Reward  []float32
	Skipped int
	Cost    hypernet.Cost
}

// Candidates fills dst (len (N-1)*len(eps)) with candidates 1..N-1 of a sample whose noise is
// eps: N(0, 1) draws from a stream seeded by the FNV-1a hash of eps's float32 bits.
func Candidates(eps []float32, dst []float32) {
	h := fnv.New64a()
	var b [4]byte
	for _, v := range eps {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	r := rand.New(rand.NewPCG(h.Sum64(), 0xbe57_0f_4))
	for i := range dst {
		dst[i] = float32(r.NormFloat64())
	}
}

// Sample runs best-of-N for noises eps [B, NoiseShape...] and prompt ids [B]: candidate 0 of
// sample i is eps_i, the others come from Candidates(eps_i).
func (s *Sampler) Sample(eps, prompts *tensors.Tensor) (Result, error) {
	if err := hypernet.CheckNoise(s.gen, eps, prompts); err != nil {
		return Result{}, fmt.Errorf("best-of-N: %w", err)
	}
	flat := tensors.MustCopyFlatData[float32](eps)
	b := eps.Shape().Dim(0)
	d := len(flat) / max(b, 1)
	extra := make([]float32, (s.n-1)*d)
	cur := -1
	cand := func(i, k int, dst []float32) {
		if k == 0 {
			copy(dst, flat[i*d:(i+1)*d])
			return
		}
		if cur != i {
			Candidates(flat[i*d:(i+1)*d], extra)
			cur = i
		}
		copy(dst, extra[(k-1)*d:k*d])
	}
	return s.run(b, eps.Shape().Dimensions[1:], prompts, cand)
}

// SampleCandidates runs best-of-N on explicit candidate noises eps [B, N, NoiseShape...] and
// prompt ids [B].
func (s *Sampler) SampleCandidates(eps, prompts *tensors.Tensor) (Result, error) {
	dims := eps.Shape().Dimensions
	if len(dims) < 2 || dims[1] != s.n {
		return Result{}, fmt.Errorf("best-of-N: noise has shape %v, want [B, %d, %v]", dims, s.n, s.gen.NoiseShape())
	}
	b := dims[0]
	if err := hypernet.CheckNoiseShape(s.gen, append([]int{b}, dims[2:]...), prompts); err != nil {
		return Result{}, fmt.Errorf("best-of-N: %w", err)
	}
	flat := tensors.MustCopyFlatData[float32](eps)
	d := len(flat) / max(b*s.n, 1)
	return s.run(b, dims[2:], prompts, func(i, k int, dst []float32) {
		copy(dst, flat[(i*s.n+k)*d:(i*s.n+k+1)*d])
	})
}

// run scores the B*N (sample, candidate) rows in chunks, keeping each sample's best.
func (s *Sampler) run(b int, noise []int, prompts *tensors.Tensor, cand func(i, k int, dst []float32)) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("best-of-N: %v", r)
		}
	}()
	if b == 0 {
		return res, fmt.Errorf("best-of-N: empty batch")
	}
	t0 := time.Now()
	ids := tensors.MustCopyFlatData[int32](prompts)
	d := 1
	for _, v := range noise {
		d *= v
	}
	res.Reward = make([]float32, b)
	for i := range res.Reward {
		res.Reward[i] = float32(math.Inf(-1))
	}
	bestE := make([]float32, b*d)
	var bestX []float32
	var xDims []int
	chosen := make([]bool, b)
	firstBad, genBad := math.NaN(), 0
	rows := b * s.n
	err = hypernet.Chunks(rows, s.chunk, func(lo, hi int) error {
		p := hypernet.PaddedRows(hi-lo, s.chunk)
		e := make([]float32, p*d)
		c := make([]int32, p)
		for r := lo; r < hi; r++ {
			i, k := r/s.n, r%s.n
			cand(i, k, e[(r-lo)*d:(r-lo+1)*d])
			c[r-lo] = ids[i]
		}
		outs, err := s.exec.Exec(tensors.FromFlatDataAndDimensions(e, append([]int{p}, noise...)...),
			tensors.FromFlatDataAndDimensions(c, p))
		if err != nil {
			return err
		}
		xs := tensors.MustCopyFlatData[float32](outs[0])
		rs := tensors.MustCopyFlatData[float32](outs[1])
		dx := len(xs) / p
		if bestX == nil {
			xDims = outs[0].Shape().Dimensions[1:]
			bestX = make([]float32, b*dx)
		}
		for r := lo; r < hi; r++ {
			i := r / s.n
			v := rs[r-lo]
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				if res.Skipped == 0 {
					firstBad = float64(v)
				}
				if !hypernoise.AllFinite(xs[(r-lo)*dx : (r-lo+1)*dx]) {
					genBad++ // the image itself was not finite: the generator's failure
				}
				res.Skipped++ // a non-finite reward ranks nothing: the candidate is left out
				continue
			}
			// Ties keep the earlier candidate.
			if !chosen[i] || v > res.Reward[i] {
				chosen[i] = true
				res.Reward[i] = v
				copy(bestX[i*dx:(i+1)*dx], xs[(r-lo)*dx:(r-lo+1)*dx])
				copy(bestE[i*d:(i+1)*d], e[(r-lo)*d:(r-lo+1)*d])
			}
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	if err := s.checkChosen(chosen, res.Skipped, genBad, firstBad); err != nil {
		return Result{}, err
	}
	res.X = tensors.FromFlatDataAndDimensions(bestX, append([]int{b}, xDims...)...)
	res.Eps = tensors.FromFlatDataAndDimensions(bestE, append([]int{b}, noise...)...)
	res.Cost = hypernet.Cost{Forward: float64(s.n), Seconds: time.Since(t0).Seconds() / float64(b), Skipped: res.Skipped}
	return res, nil
}

// checkChosen fails, naming the reward (or the generator, when the images were not finite), when some sample had no candidate with a finite reward:
// there is nothing to choose from, and returning its first candidate (the base sample) would pass
// the model's failure off as a result.
func (s *Sampler) checkChosen(chosen []bool, skipped, genBad int, first float64) error {
	none := 0
	for _, c := range chosen {
		if !c {
			none++
		}
	}
	if none == 0 {
		return nil
	}
	what := "the reward " + hypernoise.Describe(s.reward)
	if genBad == skipped {
		what = "the generator " + hypernoise.Describe(s.gen) // every left-out candidate's image was not finite
	}
	return &hypernoise.NonFiniteError{What: what, Count: skipped, Samples: none,
		Of: len(chosen), First: first, Context: "best-of-N",
		Remedy: fmt.Sprintf("%d sample(s) had no candidate with a finite reward", none)}
}

// Finalize releases the compiled graphs.
func (s *Sampler) Finalize() { s.exec.Finalize() }
