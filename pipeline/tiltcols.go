package pipeline

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/eval/imageeval"
	"github.com/hypernoise/hypernoise/eval/tilt"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/metrics"
	"github.com/hypernoise/hypernoise/progress"
)

// DefaultTiltPool is how many base samples per prompt the tilt reference of an evaluation
// resamples (see eval/tilt).
const DefaultTiltPool = 2048

// Names of the distance to the tilt reference set (TiltColumns.Distance).
const (
	// DistanceFD is the Fréchet distance between the Gaussians of the held-out features of a
	// method's samples and of the reference's, for families with a held-out evaluator.
	DistanceFD = "fd-heldout-features"
	// DistanceW1 is the 1-Wasserstein distance between the per-sample rewards of a method and of
	// the reference (the reward the hypernetwork was evaluated with), for the other families.
	DistanceW1 = "w1-reward"
)

// TiltColumns are the evaluation's figures against the two targets of a trained sampler: the
// exact tilt at the hypernetwork's beta (resampled, eval/tilt) and ReNO.
type TiltColumns struct {
	Beta float64 `json:"beta"` // the tilt temperature, in the units of the reward trained on
	// Sampler is how the reference was drawn (TiltSIR or TiltSMC); Pool its base samples (SIR)
	// or particles (SMC) per prompt.
	Sampler string `json:"sampler"`
	Pool    int    `json:"pool_per_prompt"`
	// SMCStages and SMCAccept are the SMC sampler's tempering stages and mean MALA acceptance
	// rate (TiltSMC only).
	SMCStages int     `json:"smc_stages,omitempty"`
	SMCAccept float64 `json:"smc_accept,omitempty"`
	// ESSMin and ESSMean are the effective sample sizes of the resampling weights over prompts.
	ESSMin  float64 `json:"ess_min"`
	ESSMean float64 `json:"ess_mean"`
	// Reference is the resampled tilt scored like the methods (same evaluation noises and prompts).
	Reference *imageeval.Result `json:"reference"`
	// ReferenceMean is the tilt's mean reward E_tilt[r] from the whole pool (tilt.Resampler.Mean,
	// in the evaluation reward's units, no resampling noise): the target of every method's share.
	ReferenceMean float64 `json:"reference_mean"`
	// BaseMean is the base's mean reward E[r] over the same pool (tilt.Resampler.BaseMean): the
	// zero of every share.
	BaseMean float64 `json:"base_mean"`
	// GainSE is the standard error of the tilt's gain ReferenceMean - BaseMean
	// (tilt.Resampler.GainSE; a lower bound for SMC).
	GainSE   float64 `json:"gain_se"`
	Distance string  `json:"distance"` // DistanceFD or DistanceW1
	// Warning, when not empty, says why the reference's figures are not the tilt's (a resampled
	// pool whose ESS is below MinTiltESS on some prompt) or why its shares are noise (a gain
	// within MinGainSEs standard errors of zero).
	Warning string `json:"warning,omitempty"`
	// Methods: per method, the shares of the tilt's and of ReNO's reward gain over the base and
	// the distance of its samples to the reference set. The tilt share is
	// (E[r] - BaseMean)/(ReferenceMean - BaseMean), all three population means: E[r] is the
	// method's mean on the evaluation noises corrected for how those noises score under the base
	// (tilt.PairedMean, the base's per-image rewards as a control variate), so an evaluation set
	// that happens to be hard or easy for the base moves neither a partial tilt's share nor a
	// method at the reward's ceiling (which reads about 1). ReNO's share is
	// (r - r_base)/(r_reno - r_base), all three on the evaluation noises.
	Methods map[string]TiltRow `json:"methods"`
}

// TiltRow is one method's figures against the targets.
type TiltRow struct {
	TiltShare metrics.Figure `json:"tilt_gain_share"`
	RenoShare metrics.Figure `json:"reno_gain_share"`
	Distance  metrics.Figure `json:"distance_to_tilt"`
}

// trainedReward is the reward hn was trained on: its spec over the model's rewards, each term
// divided by its stored spread when it was trained with reward normalization.
func trainedReward(p *infer.Pipeline, hn *infer.Hypernet) (hypernoise.Reward, error) {
	sum, err := p.Model().Rewards.Parse(hn.Config.RewardSpec)
	if err != nil {
		return nil, err
	}
	if len(hn.Config.RewardScale) == 0 {
		return sum, nil
	}
	var spread []float64
	for _, t := range sum.Terms() {
		s, ok := hn.Config.RewardScale[t.Reward.Name()]
		if !ok {
			return nil, fmt.Errorf("hypernetwork %s: no stored spread for reward %q", hn.Name, t.Reward.Name())
		}
		spread = append(spread, s)
	}
	return hypernet.NormalizedReward(sum, spread)
}

// tiltColumns scores the tilt reference at hn's beta with ev (pool base samples per prompt,
// resampled with weights exp(r_trained/beta), or as many SMC particles) and fills in every
// method's shares and distance. Without a beta (a regularizer that targets no tilt) only ReNO's
// share is given.
func tiltColumns(p *infer.Pipeline, hn *infer.Hypernet, ev *imageeval.Evaluator, res map[string]*imageeval.Result, opts EvalOptions, prog progress.Func) (*TiltColumns, error) {
	beta := hn.Config.Beta
	if opts.Beta > 0 {
		beta = opts.Beta
	}
	cols := &TiltColumns{Beta: beta, Sampler: TiltSIR, Pool: opts.TiltPool, Methods: map[string]TiltRow{}, Distance: DistanceW1}
	if opts.TiltSampler == TiltSMC {
		cols.Sampler = TiltSMC
	}
	if p.Model().HeldOut != nil {
		cols.Distance = DistanceFD
	}
	base, reno := res[MethodBase], res[MethodReno]
	if beta > 0 && opts.TiltPool > 0 {
		reward, err := trainedReward(p, hn)
		if err != nil {
			return nil, err
		}
		var score hypernoise.Reward // the evaluation's reward, when training normalized it
		if len(hn.Config.RewardScale) > 0 {
			score = hn.Reward
		}
		m := p.Model()
		key := tiltKey{model: m.Hash, reward: hn.Config.RewardSpec, scale: fmt.Sprint(hn.Config.RewardScale), beta: beta,
			sampler: cols.Sampler, pool: opts.TiltPool, moves: opts.TiltMoves, seed: opts.Seed}
		rs, stats, err := opts.tiltCache.get(key, func() (*tilt.Resampler, tilt.SMCStats, error) {
			return drawTilt(p, reward, score, beta, cols.Sampler, opts, prog)
		})
		if err != nil {
			return nil, err
		}
		cols.SMCStages, cols.SMCAccept = stats.Stages, stats.Accept
		ref, err := rs.Method("tilt", beta)
		if err != nil {
			return nil, err
		}
		out, err := ev.Evaluate([]hypernoise.Method{ref}, imageevalOptions(opts), nil)
		if err != nil {
			return nil, err
		}
		cols.Reference = out["tilt"]
		cols.ReferenceMean = rs.Mean(beta)
		cols.BaseMean = rs.BaseMean()
		cols.ESSMin = math.Inf(1)
		ess := rs.ESS(beta)
		for _, e := range ess {
			cols.ESSMin = math.Min(cols.ESSMin, e)
			cols.ESSMean += e / float64(len(ess))
		}
		cols.GainSE = rs.GainSE(beta)
		cols.Warning = cols.warning()
	}
	for name, r := range res {
		row := TiltRow{TiltShare: metrics.NA, RenoShare: metrics.NA, Distance: metrics.NA}
		if base != nil && cols.Reference != nil {
			row.TiltShare = figure(tiltShare(r, base, cols))
			row.Distance = distance(r, cols.Reference)
		}
		if base != nil && reno != nil {
			row.RenoShare = figure(tilt.Share(r.Reward, base.Reward, reno.Reward))
		}
		cols.Methods[name] = row
	}
	return cols, nil
}

// warning says why the reference's figures are not to be trusted, "" when they are: a resampled
// pool whose ESS is below MinTiltESS on some prompt, a tilt's gain within MinGainSEs standard
// errors of zero (or exactly zero).
func (c *TiltColumns) warning() string {
	var warn []string
	if c.Sampler == TiltSIR && c.ESSMin < MinTiltESS {
		warn = append(warn, fmt.Sprintf("the resampled tilt reference has an effective sample size of %.1f on some prompt (below %d): its mean reward is about the pool's best sample, not the tilt's, and the tilt shares compare with that; --tilt-sampler smc draws the tilt itself", c.ESSMin, MinTiltESS))
	}
	if gain := c.ReferenceMean - c.BaseMean; !(math.Abs(gain) > MinGainSEs*c.GainSE) {
		warn = append(warn, fmt.Sprintf("the tilt's reward gain over the base, %.3g, is within %d standard errors (%.3g each) of zero: the tilt shares divide by noise; a larger --tilt-pool shrinks the error", gain, MinGainSEs, c.GainSE))
	}
	return strings.Join(warn, "; ")
}

// tiltShare is r's share of the tilt's reward gain, (E[r] - BaseMean)/(ReferenceMean - BaseMean)
// with E[r] from tilt.PairedMean; without per-image rewards on the same noises as the base, the
// plain ratio on the evaluation noises, (r - r_base)/(ReferenceMean - r_base).
func tiltShare(r, base *imageeval.Result, cols *TiltColumns) float64 {
	if len(r.Rewards) > 1 && len(r.Rewards) == len(base.Rewards) {
		return tilt.Share(tilt.PairedMean(r.Rewards, base.Rewards, cols.BaseMean), cols.BaseMean, cols.ReferenceMean)
	}
	return tilt.Share(r.Reward, base.Reward, cols.ReferenceMean)
}

// distance is the distance of a method's samples to the reference's: the FD between their
// held-out feature Gaussians when both have features, else the W1 distance of their rewards.
func distance(a, ref *imageeval.Result) metrics.Figure {
	if len(a.Features) > 1 && len(ref.Features) > 1 {
		d, err := metrics.FrechetDistance(a.Features, ref.Features)
		if err != nil {
			return metrics.NA
		}
		return metrics.Figure(d)
	}
	return figure(tilt.W1(a.Rewards, ref.Rewards))
}

func figure(v float64) metrics.Figure {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return metrics.NA
	}
	return metrics.Figure(v)
}

// MinGainSEs is how many standard errors (TiltColumns.GainSE) the tilt's reward gain must be from
// zero for its shares to be reported without a warning.
const MinGainSEs = 3

// MinTiltESS is the least effective sample size per prompt at which a resampled tilt reference is
// reported without a warning (TiltColumns.Warning).
const MinTiltESS = 10

// MaxTiltPool bounds EvalOptions.TiltPool.
const MaxTiltPool = 100_000

// imageevalOptions are the evaluation options of the reference: the methods' noises and
// prompts, no grids.
func imageevalOptions(o EvalOptions) imageeval.Options {
	return imageeval.Options{SeedsPerPrompt: o.SeedsPerPrompt, Seed: o.Seed, Batch: o.Batch}
}

// writeText writes the columns as a plain-text table in method order, then the reference's row
// (nothing for a nil receiver).
func (c *TiltColumns) writeText(b *strings.Builder, order []string) {
	if c == nil {
		return
	}
	f := func(x metrics.Figure, verb string) string {
		if !x.Valid() {
			return "-"
		}
		return fmt.Sprintf(verb, float64(x))
	}
	fmt.Fprintf(b, "%-16s %16s %16s %18s\n", "method", "tilt gain share", "ReNO gain share", "dist. to tilt")
	for _, name := range order {
		r := c.Methods[name]
		fmt.Fprintf(b, "%-16s %16s %16s %18s\n", name, f(r.TiltShare, "%.3f"), f(r.RenoShare, "%.3f"), f(r.Distance, "%.4g"))
	}
	if c.Reference != nil {
		if c.Sampler == TiltSMC {
			fmt.Fprintf(b, "tilt reference at beta %g (SMC: %d particles per prompt, %d stages, MALA acceptance %.2f): reward %.4g", c.Beta, c.Pool, c.SMCStages, c.SMCAccept, c.Reference.Reward)
		} else {
			fmt.Fprintf(b, "tilt reference at beta %g (%d base samples per prompt, ESS min %.0f, mean %.0f): reward %.4g", c.Beta, c.Pool, c.ESSMin, c.ESSMean, c.Reference.Reward)
		}
		if c.Reference.FD.Valid() {
			fmt.Fprintf(b, ", FD %.4g", float64(c.Reference.FD))
		}
		fmt.Fprintf(b, "; distance: %s\n", c.Distance)
		if c.Warning != "" {
			fmt.Fprintf(b, "warning: %s\n", c.Warning)
		}
	} else {
		fmt.Fprintf(b, "no tilt reference (%s)\n", map[bool]string{true: "no beta", false: "--tilt-pool 0"}[c.Beta == 0])
	}
}

// drawTilt draws the tilt reference at beta for p's model under reward (score: the evaluation's
// reward when training normalized it): an SIR pool or SMC particles, opts.TiltPool per prompt.
func drawTilt(p *infer.Pipeline, reward, score hypernoise.Reward, beta float64, sampler string, opts EvalOptions, prog progress.Func) (*tilt.Resampler, tilt.SMCStats, error) {
	m := p.Model()
	tiltReferencesDrawn.Add(1)
	if sampler != TiltSMC {
		rs, err := tilt.NewScored(p.Backend(), m.Context, m.Generator, reward, score, opts.TiltPool, opts.Seed, m.ChunkRows(false, tilt.PoolChunk))
		return rs, tilt.SMCStats{}, err
	}
	return tilt.NewSMC(p.Backend(), m, reward, score, beta, opts.TiltPool, opts.TiltMoves, opts.Seed, func(stage int, t, accept float64) {
		prog.Report(int(1000*t), 1000, fmt.Sprintf("SMC tilt reference: stage %d, t = %.4f of 1, MALA acceptance %.2f", stage, t, accept))
	})
}

// tiltReferencesDrawn counts drawTilt's calls (for tests: a tilt reference is drawn once for all
// the training seeds of EvaluateSeeds that share it).
var tiltReferencesDrawn atomic.Int64

// TiltReferencesDrawn is how many tilt references (SIR pools or SMC runs) this process has drawn.
func TiltReferencesDrawn() int64 { return tiltReferencesDrawn.Load() }

// tiltKey identifies a tilt reference: the same model weights, trained reward (spec and stored
// scales), beta, sampler, size, moves and seed draw the same reference.
type tiltKey struct {
	model, reward, scale, sampler string
	beta                          float64
	pool, moves                   int
	seed                          uint64
}

// tiltCache keeps the tilt references of one EvaluateSeeds call, so that its training seeds,
// which share the model, the reward and beta unless each normalized the reward by its own
// measured spread, are compared with one reference drawn once. A nil cache draws every time.
type tiltCache struct {
	mu      sync.Mutex
	entries map[tiltKey]tiltEntry
}

type tiltEntry struct {
	rs    *tilt.Resampler
	stats tilt.SMCStats
}

// get returns the reference for key, drawing it with draw the first time.
func (c *tiltCache) get(key tiltKey, draw func() (*tilt.Resampler, tilt.SMCStats, error)) (*tilt.Resampler, tilt.SMCStats, error) {
	if c == nil {
		return draw()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		return e.rs, e.stats, nil
	}
	rs, stats, err := draw()
	if err != nil {
		return nil, stats, err
	}
	if c.entries == nil {
		c.entries = map[tiltKey]tiltEntry{}
	}
	c.entries[key] = tiltEntry{rs, stats}
	return rs, stats, nil
}
