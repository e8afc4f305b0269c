// Package reno is the ReNO baseline (Eyring et al., NeurIPS 2024): test-time optimization of each
// sample's initial noise. For every sample independently (batched), it minimizes
//
//	L(eps) = -r(g(eps, c), c) + w * (1/2 ||eps||^2 - (D-1) log ||eps||)
//
// (the second term is the chi-norm prior, the negative log-density of ||eps|| under N(0, I_D),
// computed in float32) by SGD with Nesterov momentum, the gradient of each sample clipped to norm
// ClipNorm, and returns the iterate with the highest reward seen. Defaults are ReNO's: lr 5,
// momentum 0.9, 50 steps, clip 0.1, w = 0.01. Each step costs one forward and one backward pass
// of the generator (and the reward), so 50 steps are 100 network evaluations per sample.
package reno

import (
	"fmt"
	"math"
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

// Config holds ReNO's hyper-parameters.
type Config struct {
	Steps       int     `json:"steps"`        // optimization steps (reward evaluations) per sample
	LR          float64 `json:"lr"`           // SGD learning rate
	Momentum    float64 `json:"momentum"`     // SGD momentum
	Nesterov    bool    `json:"nesterov"`     // Nesterov momentum
	ClipNorm    float64 `json:"clip_norm"`    // per-sample gradient-norm clip (0 disables)
	PriorWeight float64 `json:"prior_weight"` // weight w of the chi-norm prior
	KeepBest    bool    `json:"keep_best"`    // return the best iterate (else the last evaluated one)
}

// DefaultConfig returns ReNO's published settings.
func DefaultConfig() Config {
	return Config{Steps: 50, LR: 5, Momentum: 0.9, Nesterov: true, ClipNorm: 0.1, PriorWeight: 0.01, KeepBest: true}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Steps <= 0:
		return fmt.Errorf("ReNO: steps must be positive, got %d", c.Steps)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("ReNO: learning rate must be positive, got %g", c.LR)
	case c.Momentum < 0 || c.Momentum >= 1:
		return fmt.Errorf("ReNO: momentum must be in [0, 1), got %g", c.Momentum)
	case c.ClipNorm < 0:
		return fmt.Errorf("ReNO: clip norm must be >= 0, got %g", c.ClipNorm)
	case !(c.PriorWeight >= 0):
		return fmt.Errorf("ReNO: prior weight must be >= 0, got %g", c.PriorWeight)
	}
	return nil
}

// Optimizer runs ReNO for a generator and a reward, in chunks of at most Chunk samples (each
// optimized independently, so chunking changes nothing but memory); its graph is compiled once
// per chunk shape. It is safe for concurrent use.
type Optimizer struct {
	gen    hypernoise.Generator
	reward hypernoise.Reward
	cfg    Config
	chunk  int
	exec   *hypernet.SharedExec
}

// New returns a ReNO optimizer over ctx (which holds the generator's and reward's variables),
// with a private lock and hypernoise.DefaultChunk samples per call.
func New(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, reward hypernoise.Reward, cfg Config) (*Optimizer, error) {
	return NewShared(backend, ctx, nil, hypernoise.DefaultChunk, gen, reward, cfg)
}

// NewShared is New with the context's shared lock (see hypernet.SharedExec) and a chunk size.
func NewShared(backend backends.Backend, ctx *context.Context, lock *sync.RWMutex, chunk int, gen hypernoise.Generator, reward hypernoise.Reward, cfg Config) (o *Optimizer, err error) {
	if gen == nil || reward == nil {
		return nil, fmt.Errorf("ReNO needs a generator and a reward")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o = &Optimizer{gen: gen, reward: reward, cfg: cfg, chunk: max(chunk, 1)}
	o.exec, err = hypernet.NewSharedExec(backend, ctx, lock, func(ctx *context.Context, eps, buf, prompts *Node) []*Node {
		x := gen.Generate(ctx, eps, prompts)
		r := reward.Score(ctx, x, prompts)
		loss := Neg(r)
		if cfg.PriorWeight > 0 {
			loss = Add(loss, ConvertDType(MulScalar(hypernet.ChiPrior(eps), cfg.PriorWeight), loss.DType()))
		}
		// Samples are independent, so the gradient of the batch sum is each sample's own gradient.
		grad := Gradient(ReduceAllSum(loss), eps)[0]
		if cfg.ClipNorm > 0 {
			b := eps.Shape().Dim(0)
			norm := Sqrt(ReduceSum(Square(Reshape(grad, b, -1)), -1)) // [B]
			scale := MinScalar(Div(Scalar(eps.Graph(), norm.DType(), cfg.ClipNorm), AddScalar(norm, 1e-6)), 1.0)
			grad = Mul(grad, Reshape(scale, append([]int{b}, make1s(eps.Rank()-1)...)...))
		}
		newBuf := Add(MulScalar(buf, cfg.Momentum), grad)
		dir := newBuf
		if cfg.Nesterov {
			dir = Add(grad, MulScalar(newBuf, cfg.Momentum))
		}
		newEps := Sub(eps, MulScalar(dir, cfg.LR))
		return []*Node{x, ConvertDType(r, dtypes.Float32), newEps, newBuf}
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

func make1s(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// Result is ReNO's outcome for a batch.
type Result struct {
	X, Eps        *tensors.Tensor // the kept samples and their noises
	Reward        []float32       // reward of each kept sample
	InitialReward []float32       // reward at the initial noise
	BestStep      []int           // 0-based step at which each kept iterate was evaluated
	// Skipped counts the iterates whose reward was not finite (NaN or ±Inf): never kept, and
	// counted here and in Cost.Skipped. A sample none of whose iterates had a finite reward is an
	// error naming the reward.
	Skipped int
	Cost    hypernet.Cost
}

// Run optimizes the noises eps [B, NoiseShape...] for prompt ids [B].
func (o *Optimizer) Run(eps, prompts *tensors.Tensor) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("ReNO: %v", r)
		}
	}()
	if err := hypernet.CheckNoise(o.gen, eps, prompts); err != nil {
		return res, fmt.Errorf("ReNO: %w", err)
	}
	b := eps.Shape().Dim(0)
	if b == 0 {
		return res, fmt.Errorf("ReNO: empty batch")
	}
	t0 := time.Now()
	flat := tensors.MustCopyFlatData[float32](eps)
	ids := tensors.MustCopyFlatData[int32](prompts)
	noise := eps.Shape().Dimensions[1:]
	d := len(flat) / b
	var xs, es []float32
	var xDims []int
	err = hypernet.Chunks(b, o.chunk, func(lo, hi int) error {
		p := hypernet.PaddedRows(hi-lo, o.chunk)
		r, err := o.runChunk(tensors.FromFlatDataAndDimensions(hypernet.PadRows(flat, d, lo, hi, p), append([]int{p}, noise...)...),
			tensors.FromFlatDataAndDimensions(hypernet.PadRows(ids, 1, lo, hi, p), p), hi-lo)
		if err != nil {
			return err
		}
		n := hi - lo
		xDims = r.X.Shape().Dimensions[1:]
		dx := r.X.Shape().Size() / p
		xs = append(xs, tensors.MustCopyFlatData[float32](r.X)[:n*dx]...)
		es = append(es, tensors.MustCopyFlatData[float32](r.Eps)[:n*d]...)
		res.Reward = append(res.Reward, r.Reward[:n]...)
		res.InitialReward = append(res.InitialReward, r.InitialReward[:n]...)
		res.BestStep = append(res.BestStep, r.BestStep[:n]...)
		res.Skipped += r.Skipped
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	res.X = tensors.FromFlatDataAndDimensions(xs, append([]int{b}, xDims...)...)
	res.Eps = tensors.FromFlatDataAndDimensions(es, eps.Shape().Dimensions...)
	steps := float64(o.cfg.Steps)
	res.Cost = hypernet.Cost{Forward: steps, Backward: steps, Seconds: time.Since(t0).Seconds() / float64(b), Skipped: res.Skipped}
	return res, nil
}

// runChunk optimizes one chunk of noises (all at once). Only the first n rows are real samples
// (the rest pad the chunk); iterates with a non-finite reward are never kept.
func (o *Optimizer) runChunk(eps, prompts *tensors.Tensor, n int) (res Result, err error) {
	b := eps.Shape().Dim(0)
	cur := eps
	buf := tensors.FromShape(eps.Shape()) // zeros
	var bestX, bestE []float32
	var xDims []int
	res.Reward = make([]float32, b)
	res.BestStep = make([]int, b)
	kept := make([]bool, b)
	first, genBad := math.NaN(), 0
	for step := range o.cfg.Steps {
		outs, err := o.exec.Exec(cur, buf, prompts)
		if err != nil {
			return res, fmt.Errorf("ReNO step %d: %w", step, err)
		}
		r := tensors.MustCopyFlatData[float32](outs[1])
		xs := tensors.MustCopyFlatData[float32](outs[0])
		es := tensors.MustCopyFlatData[float32](cur)
		if step == 0 {
			xDims = outs[0].Shape().Dimensions
			bestX, bestE = make([]float32, len(xs)), make([]float32, len(es))
			res.InitialReward = r
		}
		dx, de := len(xs)/b, len(es)/b
		for i := range b {
			v := float64(r[i])
			if math.IsNaN(v) || math.IsInf(v, 0) {
				if i < n {
					if res.Skipped == 0 {
						first = v
					}
					if !hypernoise.AllFinite(xs[i*dx : (i+1)*dx]) {
						genBad++
					}
					res.Skipped++
				}
				continue
			}
			if !kept[i] || !o.cfg.KeepBest || r[i] > res.Reward[i] {
				kept[i] = true
				res.Reward[i] = r[i]
				res.BestStep[i] = step
				copy(bestX[i*dx:(i+1)*dx], xs[i*dx:(i+1)*dx])
				copy(bestE[i*de:(i+1)*de], es[i*de:(i+1)*de])
			}
		}
		cur, buf = outs[2], outs[3]
	}
	if none := countFalse(kept[:n]); none > 0 {
		what := "the reward " + hypernoise.Describe(o.reward)
		if genBad == res.Skipped {
			what = "the generator " + hypernoise.Describe(o.gen) // every left-out iterate's image was not finite
		}
		return res, &hypernoise.NonFiniteError{What: what, Count: res.Skipped, Samples: none, Of: n,
			First: first, Context: "ReNO", Remedy: fmt.Sprintf("%d sample(s) had no iterate with a finite reward", none)}
	}
	res.X = tensors.FromFlatDataAndDimensions(bestX, xDims...)
	res.Eps = tensors.FromFlatDataAndDimensions(bestE, eps.Shape().Dimensions...)
	return res, nil
}

func countFalse(bs []bool) int {
	n := 0
	for _, b := range bs {
		if !b {
			n++
		}
	}
	return n
}

// Finalize releases the compiled graphs.
func (o *Optimizer) Finalize() { o.exec.Finalize() }
