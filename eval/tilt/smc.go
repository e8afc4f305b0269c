package tilt

// A reference for tilts the base pool cannot resample: sequential Monte Carlo in noise space.
//
// SIR (New) reweights base samples, so its effective sample size collapses when the tilt is far
// from the base (a small beta, a reward with a wide spread): at the imported fixtures' default
// beta a pool of 1024 keeps an ESS of 1-2, and its E_tilt[r] is the pool's best sample. SMC moves
// the samples instead. With the generator g and the reward r it follows the tempered path
//
//	π_t(eps | c) ∝ N(eps; 0, I) exp(t r(g(eps, c), c)/beta),   t from 0 (the base) to 1 (the tilt),
//
// carrying Particles noises per prompt. Each stage raises t to the largest t' whose incremental
// weights w_i = exp((t' - t) r_i/beta) keep an effective sample size (Σw)²/Σw² of at least
// ESSFrac·Particles for every prompt (bisection), resamples each prompt's particles by those
// weights (systematic resampling) and moves every particle by Moves steps of the
// Metropolis-adjusted Langevin algorithm (MALA), which leaves π_t' invariant:
//
//	eps' = eps + h ∇log π(eps) + sqrt(2h) ξ,   ∇log π(eps) = -eps + (t'/beta) ∇_eps r,   ξ ~ N(0, I),
//
// accepted with probability min(1, π(eps') q(eps | eps') / (π(eps) q(eps' | eps))), q the
// proposal's Gaussian density. The step h is per prompt, adapted after each move toward an
// acceptance rate of 0.574 (MALA's optimum in high dimension). At t = 1 the particles are
// equally weighted samples of the tilt. Each move costs one forward and one backward pass of
// the generator and the reward per particle, as a ReNO step does.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
)

// SMCConfig sets the tempered sampler's size and schedule.
type SMCConfig struct {
	Particles int     // particles per prompt: the reference's sample size
	Moves     int     // MALA moves after each resampling
	ESSFrac   float64 // each stage keeps an ESS of at least ESSFrac·Particles, in (0, 1)
	MaxStages int     // more stages than this is an error (the tilt is too far for the moves)
	Seed      uint64  // initial noises, resampling and proposals
	Chunk     int     // the most rows one compiled call runs (<= 0: PoolChunk)
	// BasePool is how many base samples per prompt measure the base's mean reward, the zero of
	// every share (a forward pass each; SIR's pool noises of the same seed, so an SIR pool of
	// that size has the same base mean). Fewer than Particles: Particles.
	BasePool int
	// Progress, when not nil, is called after each stage with the stage's number (from 1), its
	// temperature t and the mean MALA acceptance rate of its moves.
	Progress func(stage int, t, accept float64)
}

// DefaultSMC is 256 particles per prompt, 10 moves per stage, stages at half the particles' ESS,
// the base's mean over 2048 samples per prompt.
func DefaultSMC() SMCConfig {
	return SMCConfig{Particles: 256, Moves: 10, ESSFrac: 0.5, MaxStages: 500, BasePool: 2048}
}

// Validate checks the configuration.
func (c SMCConfig) Validate() error {
	switch {
	case c.Particles < 2:
		return fmt.Errorf("SMC tilt reference: particles must be >= 2 per prompt, got %d", c.Particles)
	case c.Moves < 1:
		return fmt.Errorf("SMC tilt reference: moves must be >= 1 per stage, got %d", c.Moves)
	case !(c.ESSFrac > 0 && c.ESSFrac < 1):
		return fmt.Errorf("SMC tilt reference: the ESS fraction must be in (0, 1), got %g", c.ESSFrac)
	case c.MaxStages < 1:
		return fmt.Errorf("SMC tilt reference: max stages must be >= 1, got %d", c.MaxStages)
	}
	return nil
}

// SMCStats describes a run of the sampler: it took 1 + Stages·Moves forward and backward passes
// of the generator and the reward per particle.
type SMCStats struct {
	Stages int     // tempering stages from t = 0 to 1
	Accept float64 // mean MALA acceptance rate over all moves
}

// smcTarget evaluates r(g(eps, c), c) and ∇_eps r for chunks of rows.
type smcTarget struct {
	exec  *context.Exec
	noise []int
	d     int
	chunk int
}

func newSMCTarget(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, reward hypernoise.Reward, chunk int) (*smcTarget, error) {
	exec, err := context.NewExec(backend, ctx.Reuse(), func(ctx *context.Context, eps, prompts *Node) []*Node {
		r := reward.Score(ctx, gen.Generate(ctx, eps, prompts), prompts)
		// Rows are independent, so the gradient of the sum is each row's own gradient.
		g := Gradient(ReduceAllSum(r), eps)[0]
		return []*Node{ConvertDType(r, dtypes.Float32), ConvertDType(g, dtypes.Float32)}
	})
	if err != nil {
		return nil, err
	}
	noise := gen.NoiseShape()
	return &smcTarget{exec: exec, noise: noise, d: size(noise), chunk: chunk}, nil
}

// eval returns r and ∇r for the rows of eps (flat, n rows) with prompt ids.
func (s *smcTarget) eval(eps []float32, ids []int32) (r []float64, grad []float32, err error) {
	n := len(ids)
	grad = make([]float32, 0, len(eps))
	err = hypernet.Chunks(n, s.chunk, func(lo, hi int) error {
		p := hypernet.PaddedRows(hi-lo, s.chunk)
		outs, err := s.exec.Exec(tensors.FromFlatDataAndDimensions(hypernet.PadRows(eps, s.d, lo, hi, p), append([]int{p}, s.noise...)...),
			tensors.FromFlatDataAndDimensions(hypernet.PadRows(ids, 1, lo, hi, p), p))
		if err != nil {
			return err
		}
		for _, v := range tensors.MustCopyFlatData[float32](outs[0])[:hi-lo] {
			r = append(r, float64(v))
		}
		grad = append(grad, tensors.MustCopyFlatData[float32](outs[1])[:(hi-lo)*s.d]...)
		return nil
	})
	return r, grad, err
}

// SMC draws cfg.Particles samples per prompt of the tilt of gen at beta under reward (see the
// comment at the top of this file) and returns them as a pool that is already the tilt: its
// Weights at beta are uniform, at another beta' they are exp(r (1/beta' - 1/beta)), and its
// BaseMean is that of cfg.BasePool base samples per prompt (NewScored's noises for the same
// seed). score, when not nil, is the reward the evaluation reports (as in NewScored).
func SMC(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, reward, score hypernoise.Reward, beta float64, cfg SMCConfig) (rs *Resampler, stats SMCStats, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("SMC tilt reference: %v", r)
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, stats, err
	}
	if !(beta > 0) || math.IsInf(beta, 0) {
		return nil, stats, fmt.Errorf("SMC tilt reference: beta must be a positive number, got %g", beta)
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = PoolChunk
	}
	tg, err := newSMCTarget(backend, ctx, gen, reward, cfg.Chunk)
	if err != nil {
		return nil, stats, err
	}
	defer tg.exec.Finalize()
	np, n, d := max(1, len(gen.Prompts())), cfg.Particles, tg.d
	rows := np * n
	ids := make([]int32, rows)
	eps := make([]float32, 0, rows*d)
	for p := range np {
		for i := range n {
			ids[p*n+i] = int32(p)
		}
		eps = append(eps, hypernet.Normal(int64(cfg.Seed), uint64(17000+p), n*d)...)
	}
	r, grad, err := tg.eval(eps, ids)
	if err != nil {
		return nil, stats, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x736d63))
	step := make([]float64, np)
	for p := range step {
		step[p] = 0.5 / math.Cbrt(float64(d)) // MALA's scaling for N(0, I) in d dimensions, adapted below
	}
	var acceptSum float64
	t := 0.0
	for t < 1 {
		if stats.Stages == cfg.MaxStages {
			return nil, stats, fmt.Errorf("SMC tilt reference: reached t = %.3g of 1 after %d stages (max); the tilt at beta %g is too far from the base for %d particles", t, stats.Stages, beta, n)
		}
		next := nextTemperature(r, np, n, t, beta, cfg.ESSFrac)
		if err := resampleStage(eps, grad, r, np, n, d, (next-t)/beta, rng); err != nil {
			return nil, stats, fmt.Errorf("%w (%s)", err, hypernoise.Describe(reward))
		}
		t = next
		stats.Stages++
		var stageAcc float64
		for range cfg.Moves {
			acc, err := malaMove(tg, eps, grad, r, ids, np, n, t/beta, step, rng)
			if err != nil {
				return nil, stats, err
			}
			stageAcc += acc / float64(cfg.Moves)
		}
		acceptSum += stageAcc
		if cfg.Progress != nil {
			cfg.Progress(stats.Stages, t, stageAcc)
		}
	}
	stats.Accept = acceptSum / float64(stats.Stages)
	// The pool: the final particles' images, rewards and scores; the base's mean from a pool of
	// base samples whose images are not kept.
	sc, err := newScorer(backend, ctx, gen, reward, score)
	if err != nil {
		return nil, stats, err
	}
	defer sc.exec.Finalize()
	pool, err := sc.pool(eps, n, cfg.Chunk, true)
	if err != nil {
		return nil, stats, err
	}
	nb := max(cfg.BasePool, n)
	base, err := sc.pool(basePoolNoise(gen, nb, cfg.Seed), nb, cfg.Chunk, false)
	if err != nil {
		return nil, stats, err
	}
	bm := base.BaseMean()
	bv := base.baseMeanVar()
	pool.Pool, pool.seed, pool.invBeta0, pool.noise, pool.baseMean, pool.baseVar = n, cfg.Seed, 1/beta, eps, &bm, &bv
	return pool, stats, nil
}

// resampleStage resamples each prompt's n particles (rows of eps and grad, d values each, and
// their rewards r) in place by the incremental weights exp(k·r_i) (systematic resampling); an
// error when every particle of a prompt has a non-finite reward.
func resampleStage(eps, grad []float32, r []float64, np, n, d int, k float64, rng *rand.Rand) error {
	for p := range np {
		rp := r[p*n : (p+1)*n]
		if !slices.ContainsFunc(rp, finite) {
			return fmt.Errorf("SMC tilt reference: every particle of prompt %d has a non-finite reward", p)
		}
		idx := systematic(expWeights(rp, k), rng.Float64())
		resampleRows(eps[p*n*d:(p+1)*n*d], grad[p*n*d:(p+1)*n*d], rp, idx, d)
	}
	return nil
}

// NewSMC is SMC for model m (its context and generator) with particles per prompt, moves per
// stage (0: DefaultSMC's) and seed, in chunks that m's memory estimate allows for a gradient
// pass; progress, when not nil, is called after each stage (SMCConfig.Progress).
func NewSMC(backend backends.Backend, m *family.Model, reward, score hypernoise.Reward, beta float64, particles, moves int, seed uint64, progress func(stage int, t, accept float64)) (*Resampler, SMCStats, error) {
	cfg := DefaultSMC()
	cfg.Particles, cfg.Seed, cfg.Chunk, cfg.Progress = particles, seed, m.ChunkRows(true, PoolChunk), progress
	if moves > 0 {
		cfg.Moves = moves
	}
	return SMC(backend, m.Context, m.Generator, reward, score, beta, cfg)
}

// nextTemperature is the largest t' in (t, 1] whose incremental weights exp((t'-t) r/beta) keep
// every prompt's ESS at or above frac·n (found by bisection on t'; 1 when that holds at 1).
func nextTemperature(r []float64, np, n int, t, beta, frac float64) float64 {
	ok := func(next float64) bool {
		for p := range np {
			if essOf(r[p*n:(p+1)*n], (next-t)/beta) < frac*float64(n) {
				return false
			}
		}
		return true
	}
	if ok(1) {
		return 1
	}
	lo, hi := t, 1.0
	for range 60 {
		mid := (lo + hi) / 2
		if ok(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	// Always advance: a step so small that no bisection point passes still moves t forward.
	return math.Max(lo, t+1e-9*(1-t))
}

// essOf is the ESS (Σw)²/Σw² of the weights exp(k r_i) (0 for a non-finite r_i).
func essOf(r []float64, k float64) float64 {
	var s, s2 float64
	for _, w := range expWeights(r, k) {
		s += w
		s2 += w * w
	}
	if s2 == 0 {
		return 0
	}
	return s * s / s2
}

// systematic returns n indices drawn by systematic resampling from the weights w (not
// normalized), with the offset u in [0, 1).
func systematic(w []float64, u float64) []int {
	n := len(w)
	var total float64
	for _, v := range w {
		total += v
	}
	idx := make([]int, n)
	acc, j := w[0], 0
	for i := range n {
		pos := (float64(i) + u) / float64(n) * total
		for acc < pos && j < n-1 {
			j++
			acc += w[j]
		}
		idx[i] = j
	}
	return idx
}

// resampleRows replaces rows i of eps, grad (d values each) and r by rows idx[i].
func resampleRows(eps, grad []float32, r []float64, idx []int, d int) {
	e0, g0, r0 := slices.Clone(eps), slices.Clone(grad), slices.Clone(r)
	for i, j := range idx {
		copy(eps[i*d:(i+1)*d], e0[j*d:(j+1)*d])
		copy(grad[i*d:(i+1)*d], g0[j*d:(j+1)*d])
		r[i] = r0[j]
	}
}

// malaMove moves every particle by one MALA step on log π(eps) = -|eps|²/2 + k r(eps) (k = t/beta),
// in place, with prompt p's step size step[p] (adapted toward an acceptance of 0.574), and
// returns the mean acceptance probability.
func malaMove(tg *smcTarget, eps, grad []float32, r []float64, ids []int32, np, n int, k float64, step []float64, rng *rand.Rand) (float64, error) {
	d := tg.d
	prop := make([]float32, len(eps))
	for row := range ids {
		h := step[ids[row]]
		s := math.Sqrt(2 * h)
		for j := row * d; j < (row+1)*d; j++ {
			e := float64(eps[j])
			prop[j] = float32(e + h*(-e+k*float64(grad[j])) + s*rng.NormFloat64())
		}
	}
	pr, pg, err := tg.eval(prop, ids)
	if err != nil {
		return 0, err
	}
	accP := make([]float64, np)
	var accAll float64
	for row := range ids {
		p := ids[row]
		h := step[p]
		a := 0.0
		if finite(pr[row]) {
			// log π(eps') - log π(eps) + log q(eps | eps') - log q(eps' | eps)
			var lp, lq float64
			for j := row * d; j < (row+1)*d; j++ {
				x, y := float64(eps[j]), float64(prop[j])
				lp += -0.5*y*y + 0.5*x*x
				fwd := y - x - h*(-x+k*float64(grad[j]))
				bwd := x - y - h*(-y+k*float64(pg[j]))
				lq += (fwd*fwd - bwd*bwd) / (4 * h)
			}
			lp += k * (pr[row] - r[row])
			if !finite(r[row]) {
				a = 1
			} else {
				a = math.Min(1, math.Exp(lp+lq))
			}
		}
		if rng.Float64() < a {
			copy(eps[row*d:(row+1)*d], prop[row*d:(row+1)*d])
			copy(grad[row*d:(row+1)*d], pg[row*d:(row+1)*d])
			r[row] = pr[row]
		}
		accP[p] += a / float64(n)
		accAll += a / float64(len(ids))
	}
	for p := range np {
		step[p] = math.Min(100, math.Max(1e-8, step[p]*math.Exp(1.5*(accP[p]-0.574))))
	}
	return accAll, nil
}
