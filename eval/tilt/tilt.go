// Package tilt is a learning-free reference for the reward-tilted distribution of a generator
// (a model of any family),
//
//	p*(x | c) ∝ p_g(x | c) exp(r(x, c)/beta),
//
// by sampling-importance-resampling (SIR): for each prompt c, Pool base samples x_i = g(eps_i, c)
// are drawn once; a reference sample for tilt beta is x_I with P(I = i) ∝ exp(r(x_i, c)/beta).
// As Pool grows this converges to p*(. | c); its quality is reported as the effective sample size
// ESS = (Σ w)^2 / Σ w^2 per prompt (a reference set much larger than the ESS repeats images).
// Scored with the same evaluator as the methods, it says where a sampler of the exact tilt lands
// in reward, held-out alignment, FD and diversity. Where the ESS collapses, SMC (smc.go) moves
// the samples to the tilt instead and returns them as a pool of the same type.
package tilt

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/eval/report"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Resampler holds the pool of base samples and their rewards, per prompt.
type Resampler struct {
	Pool  int
	seed  uint64
	shape []int // one sample's shape (e.g. [28, 28, 1])
	// images and rewards per prompt (one entry for an unconditional generator): Pool samples of
	// size(shape) values each, and their rewards (which set the weights).
	images  [][]float32
	rewards [][]float64
	// scores per prompt: each pool sample's score under the evaluation's reward, when it differs
	// from the weighting reward (nil: the rewards themselves). See Gain.
	scores [][]float64
	// invBeta0 is 1/beta0 when the pool's samples are already drawn from the tilt at beta0 (SMC),
	// 0 for base samples; the weights at beta are then exp(r (1/beta - 1/beta0)).
	invBeta0 float64
	// noise holds the pool's noises (prompt-major) when they are not the seed's stream (SMC).
	noise []float32
	// baseMean, when set, is the base's mean reward measured apart from the pool (SMC), and baseVar
	// the squared standard error of that mean (averaged over prompts).
	baseMean, baseVar *float64
}

// NewResampler draws pool base samples per prompt of model m (noise seeded by seed) and scores
// them with reward; see New. Its calls run as many samples as m's memory estimate allows
// (family.Model.ChunkRows, at most PoolChunk).
func NewResampler(backend backends.Backend, m *family.Model, reward hypernoise.Reward, pool int, seed uint64) (*Resampler, error) {
	return NewScored(backend, m.Context, m.Generator, reward, nil, pool, seed, m.ChunkRows(false, PoolChunk))
}

// PoolChunk is the most base samples one compiled call generates and scores (the default chunk).
const PoolChunk = 256

// New draws pool base samples x_i = g(eps_i, c) per prompt c of gen (one set for an unconditional
// generator), eps_i ~ N(0, I) from seed, and scores them with reward. ctx holds the generator's
// and the reward's variables.
func New(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, reward hypernoise.Reward, pool int, seed uint64) (rs *Resampler, err error) {
	return NewScored(backend, ctx, gen, reward, nil, pool, seed, PoolChunk)
}

// NewScored is New that also scores every pool sample with score (the reward an evaluation
// reports, when the weights come from another one, e.g. a normalized reward): Gain is then in
// score's units. A nil score is New. Each compiled call runs at most chunk samples (<= 0:
// PoolChunk); samples are drawn and scored one by one, so the pool is the same for any chunk.
func NewScored(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, reward, score hypernoise.Reward, pool int, seed uint64, chunk int) (rs *Resampler, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tilt reference: %v", r)
		}
	}()
	if pool < 2 {
		return nil, fmt.Errorf("tilt reference: pool must be >= 2 samples per prompt, got %d", pool)
	}
	if chunk <= 0 {
		chunk = PoolChunk
	}
	sc, err := newScorer(backend, ctx, gen, reward, score)
	if err != nil {
		return nil, err
	}
	defer sc.exec.Finalize()
	return sc.basePool(gen, pool, seed, chunk, true)
}

// basePoolNoise is the base pool's noise for every prompt of gen, prompt-major: n noises each.
func basePoolNoise(gen hypernoise.Generator, n int, seed uint64) []float32 {
	np, d := max(1, len(gen.Prompts())), size(gen.NoiseShape())
	eps := make([]float32, 0, np*n*d)
	for p := range np {
		eps = append(eps, poolNoise(seed, p, n*d)...)
	}
	return eps
}

// scorer is the compiled graph that generates x = g(eps, c) and scores it with a reward (and the
// evaluation's score, when not nil).
type scorer struct {
	exec       *context.Exec
	noise      []int
	np         int
	withScores bool
}

func newScorer(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, reward, score hypernoise.Reward) (*scorer, error) {
	exec, err := context.NewExec(backend, ctx.Reuse(), func(ctx *context.Context, eps, prompts *Node) []*Node {
		x := gen.Generate(ctx, eps, prompts)
		outs := []*Node{ConvertDType(x, dtypes.Float32), ConvertDType(reward.Score(ctx, x, prompts), dtypes.Float32)}
		if score != nil {
			outs = append(outs, ConvertDType(score.Score(ctx, x, prompts), dtypes.Float32))
		}
		return outs
	})
	if err != nil {
		return nil, err
	}
	return &scorer{exec: exec, noise: gen.NoiseShape(), np: max(1, len(gen.Prompts())), withScores: score != nil}, nil
}

// pool generates and scores n noises per prompt (eps flat, prompt-major: rows [p·n, (p+1)·n)
// belong to prompt p), at most chunk rows per call: a Resampler's rewards and scores, and its
// images when keepImages (a pool only measured for its mean needs none).
func (sc *scorer) pool(eps []float32, n, chunk int, keepImages bool) (*Resampler, error) {
	d := size(sc.noise)
	rs := &Resampler{images: make([][]float32, sc.np), rewards: make([][]float64, sc.np)}
	if sc.withScores {
		rs.scores = make([][]float64, sc.np)
	}
	for p := range sc.np {
		pe := eps[p*n*d : (p+1)*n*d]
		for lo := 0; lo < n; lo += chunk {
			m := min(chunk, n-lo)
			ids := make([]int32, m)
			for i := range ids {
				ids[i] = int32(p)
			}
			outs, err := sc.exec.Exec(tensors.FromFlatDataAndDimensions(pe[lo*d:(lo+m)*d], append([]int{m}, sc.noise...)...), tensors.FromValue(ids))
			if err != nil {
				return nil, err
			}
			if rs.shape == nil {
				rs.shape = outs[0].Shape().Dimensions[1:]
			}
			for _, v := range tensors.MustCopyFlatData[float32](outs[1]) {
				rs.rewards[p] = append(rs.rewards[p], float64(v))
			}
			if sc.withScores {
				for _, v := range tensors.MustCopyFlatData[float32](outs[2]) {
					rs.scores[p] = append(rs.scores[p], float64(v))
				}
			}
			if keepImages {
				rs.images[p] = append(rs.images[p], tensors.MustCopyFlatData[float32](outs[0])...)
			}
		}
	}
	return rs, nil
}

// poolNoise is the stream of prompt p's pool noise: n standard normal values from seed.
func poolNoise(seed uint64, p, n int) []float32 {
	return hypernet.Normal(int64(seed), uint64(9000+p), n)
}

// Noise returns the noise the pool's samples of prompt p were generated from, [Pool, NoiseShape...]
// flattened (a base pool's recomputed from the seed, an SMC pool's copied); d is the size of one
// noise.
func (rs *Resampler) Noise(p, d int) []float32 {
	if rs.noise != nil {
		return slices.Clone(rs.noise[p*rs.Pool*d : (p+1)*rs.Pool*d])
	}
	return poolNoise(rs.seed, p, rs.Pool*d)
}

// SampleShape is the shape of one sample of the pool.
func (rs *Resampler) SampleShape() []int { return rs.shape }

// Rewards returns the pool's rewards of prompt p (not a copy).
func (rs *Resampler) Rewards(p int) []float64 { return rs.rewards[p] }

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Weights returns the normalized SIR weights of prompt p's pool at beta, w_i ∝ exp(r_i/beta) (0 for
// a non-finite reward), and their effective sample size 1/Σ w_i². For a pool drawn from the tilt at
// beta0 (SMC) they are w_i ∝ exp(r_i (1/beta - 1/beta0)): uniform at beta0.
func (rs *Resampler) Weights(p int, beta float64) ([]float64, float64) {
	w := expWeights(rs.rewards[p], 1/beta-rs.invBeta0)
	var s, s2 float64
	for _, v := range w {
		s += v
	}
	for i := range w {
		w[i] /= s
		s2 += w[i] * w[i]
	}
	return w, 1 / s2
}

// expWeights returns the unnormalized weights exp(k·r_i), scaled so that the largest is 1
// (0 for a non-finite r_i).
func expWeights(r []float64, k float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range r {
		if finite(v) {
			mx = math.Max(mx, k*v)
		}
	}
	w := make([]float64, len(r))
	for i, v := range r {
		if finite(v) {
			w[i] = math.Exp(k*v - mx)
		}
	}
	return w
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// ESS returns the effective sample size of the pool at beta, per prompt.
func (rs *Resampler) ESS(beta float64) []float64 {
	out := make([]float64, len(rs.rewards))
	for p := range out {
		_, out[p] = rs.Weights(p, beta)
	}
	return out
}

// Method returns the reference sampler of the tilt at beta as an evaluation method: each call
// returns, for every row's prompt, an image drawn from that prompt's pool with probability
// ∝ exp(r/beta) (the noise is ignored; draws are seeded, so a run is reproducible). Its cost is
// reported as zero: it is a reference, not a method (it needs the whole pool per prompt).
func (rs *Resampler) Method(name string, beta float64) (hypernoise.Method, error) {
	if !(beta > 0) || math.IsInf(beta, 0) {
		return nil, fmt.Errorf("tilt reference: beta must be a positive number, got %g", beta)
	}
	np := len(rs.rewards)
	cum := make([][]float64, np)
	for p := range np {
		cum[p] = rs.cumWeights(p, beta)
	}
	rng := rand.New(rand.NewPCG(rs.seed, math.Float64bits(beta)))
	px := size(rs.shape)
	var mu sync.Mutex
	return &refMethod{name: name, run: func(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernet.Cost, error) {
		mu.Lock()
		defer mu.Unlock()
		ids, err := tensors.CopyFlatData[int32](prompts)
		if err != nil {
			return nil, hypernet.Cost{}, err
		}
		out := make([]float32, 0, len(ids)*px)
		for _, id := range ids {
			if np == 1 {
				id = 0 // an unconditional pool serves every prompt id
			}
			if id < 0 || int(id) >= np {
				return nil, hypernet.Cost{}, fmt.Errorf("prompt id %d out of range", id)
			}
			i := draw(cum[id], rng)
			out = append(out, rs.images[id][i*px:(i+1)*px]...)
		}
		return tensors.FromFlatDataAndDimensions(out, append([]int{len(ids)}, rs.shape...)...), hypernet.Cost{}, nil
	}}, nil
}

// Curve is one line of a plot against beta.
type Curve struct {
	Name string
	Beta []float64 // x, > 0 (log axis)
	Y    []float64
}

// PlotPNG draws the curves against beta (log axis), points joined by lines, one colour each, with
// the legend in the left corner (top or bottom), and returns the PNG bytes.
func PlotPNG(title, yLabel string, curves []Curve, legendTop bool) ([]byte, error) {
	if len(curves) == 0 {
		return nil, fmt.Errorf("no curves to plot")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "beta (tilt temperature)"
	p.Y.Label.Text = yLabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = legendTop, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), vg.Points(4)
	if legendTop {
		p.Legend.YOffs = -vg.Points(4)
	}
	for i, c := range curves {
		if len(c.Beta) != len(c.Y) || len(c.Beta) == 0 {
			return nil, fmt.Errorf("curve %q: %d betas for %d values", c.Name, len(c.Beta), len(c.Y))
		}
		xys := make(plotter.XYs, len(c.Beta))
		for j := range c.Beta {
			if !(c.Beta[j] > 0) {
				return nil, fmt.Errorf("curve %q: beta %g is not positive", c.Name, c.Beta[j])
			}
			xys[j] = plotter.XY{X: c.Beta[j], Y: c.Y[j]}
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		col := plotutil.Color(i)
		line.Color, points.Color = col, col
		points.Shape = plotutil.Shape(i)
		line.Width = vg.Points(1.5)
		p.Add(line, points)
		p.Legend.Add(c.Name, line, points)
	}
	return report.PlotPNG(p, 6*vg.Inch, 4*vg.Inch)
}

// refMethod is the reference sampler as a hypernoise.Method.
type refMethod struct {
	name string
	run  func(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernet.Cost, error)
}

func (m *refMethod) Name() string { return m.name }
func (m *refMethod) Generate(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernet.Cost, error) {
	return m.run(eps, prompts)
}
func (m *refMethod) Close() {}

// DrawReference draws the tilt reference set of model m at beta without holding the pool's images:
// pool base samples per prompt (noise seeded by seed, as NewResampler's) are generated and scored
// with reward, perPrompt indices per prompt are drawn with probability ∝ exp(r_i/beta) (the draws
// of ReferenceSet), and only the drawn samples are generated again from their noises. It returns
// them [prompts·perPrompt, SampleShape...] flat (prompt-major, the same values as ReferenceSet's)
// with the pool's effective sample size at beta per prompt. Memory: the pool's rewards and the set,
// not the pool's images; cost: perPrompt more generations per prompt.
func DrawReference(backend backends.Backend, m *family.Model, reward hypernoise.Reward, pool int, seed uint64, beta float64, perPrompt int) (images []float32, ess []float64, err error) {
	err = withScorer(backend, m, reward, func(sc *scorer, chunk int) error {
		rs, err := sc.basePool(m.Generator, pool, seed, chunk, false)
		if err != nil {
			return err
		}
		noise, err := rs.ReferenceNoise(beta, perPrompt, size(sc.noise))
		if err != nil {
			return err
		}
		set, err := sc.pool(noise, perPrompt, chunk, true)
		if err != nil {
			return err
		}
		images, ess = slices.Concat(set.images...), rs.ESS(beta)
		return nil
	})
	return images, ess, err
}

// NewRewards is NewResampler without the pool's images: its rewards, weights, effective sample
// sizes and ReferenceNoise, in the memory of the rewards alone.
func NewRewards(backend backends.Backend, m *family.Model, reward hypernoise.Reward, pool int, seed uint64) (rs *Resampler, err error) {
	err = withScorer(backend, m, reward, func(sc *scorer, chunk int) (err error) {
		rs, err = sc.basePool(m.Generator, pool, seed, chunk, false)
		return err
	})
	return rs, err
}

// withScorer runs fn with m's generator and reward compiled (scorer) and m's chunk of rows,
// turning a panic of the graph into an error.
func withScorer(backend backends.Backend, m *family.Model, reward hypernoise.Reward, fn func(sc *scorer, chunk int) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tilt reference: %v", r)
		}
	}()
	sc, err := newScorer(backend, m.Context, m.Generator, reward, nil)
	if err != nil {
		return err
	}
	defer sc.exec.Finalize()
	return fn(sc, m.ChunkRows(false, PoolChunk))
}

// basePool generates and scores pool base samples per prompt of gen (noise from seed), keeping
// their images when keepImages, else their rewards only.
func (sc *scorer) basePool(gen hypernoise.Generator, pool int, seed uint64, chunk int, keepImages bool) (*Resampler, error) {
	if pool < 2 {
		return nil, fmt.Errorf("tilt reference: pool must be >= 2 samples per prompt, got %d", pool)
	}
	rs, err := sc.pool(basePoolNoise(gen, pool, seed), pool, chunk, keepImages)
	if err != nil {
		return nil, err
	}
	rs.Pool, rs.seed = pool, seed
	return rs, nil
}
