package hypernet

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/rewards"
)

// Reward normalizations (TrainOptions / hypernet.json "reward_norm").
const (
	NormNone      = "none"       // rewards as given: beta is in the reward's own units
	NormStd       = "std"        // each reward divided by its standard deviation under the base generator
	NormStdWithin = "std-within" // each reward divided by its pooled standard deviation within a prompt
)

// ParseRewardNorm checks a reward normalization name.
func ParseRewardNorm(s string) (string, error) {
	switch s {
	case NormNone, NormStd, NormStdWithin:
		return s, nil
	case "":
		return NormNone, nil
	}
	return "", fmt.Errorf("unknown reward normalization %q; allowed: %s, %s, %s", s, NormNone, NormStd, NormStdWithin)
}

// SpreadSamples is how many base samples RewardSpread draws by default.
const SpreadSamples = 1024

// SpreadChunk is the most base samples one compiled call of RewardSpread generates and scores by
// default (a model's memory estimate may lower it: family.Model.ChunkRows).
const SpreadChunk = 128

// streamSpread is the random stream of the spread's base samples (see Normal).
const streamSpread uint64 = 3 << 40

// ZeroSpreadError says that a reward does not vary under the base generator, so it cannot be
// normalized by its spread.
type ZeroSpreadError struct {
	Reward string
	Within bool // the within-prompt spread (RewardSpreadWithin)
}

func (e *ZeroSpreadError) Error() string {
	if e.Within {
		return fmt.Sprintf("reward %q has zero spread within a prompt under the base model (it is constant on each prompt's samples), so it cannot be normalized by it; train it with --reward-norm none", e.Reward)
	}
	return fmt.Sprintf("reward %q has zero spread under the base model (it is constant on its samples), so it cannot be normalized by it; train it with --reward-norm none", e.Reward)
}

// RewardSpread measures, for each term r_k of the sum (unweighted), its standard deviation under
// the base generator: s_k = std of r_k(g(eps, c), c) over n samples with eps ~ N(0, I) and c
// uniform over the prompts, drawn from seed (a pure function of it, whatever the chunk: the noises
// and prompts are drawn for all n at once, and each sample is scored on its own). ctx holds the
// generator's and the rewards' variables. Each compiled call runs at most chunk samples (<= 0:
// SpreadChunk). A term whose spread is 0 (or not finite) is a *ZeroSpreadError.
func RewardSpread(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, sum *rewards.Sum, n int, seed int64, chunk int) (spread []float64, err error) {
	return rewardSpread(backend, ctx, gen, sum, n, seed, chunk, false)
}

// RewardSpreadWithin is RewardSpread with each term's pooled within-prompt standard deviation,
// s_k² = Σ_c Σ_{i: c_i = c} (r_k,i - m_k,c)² / (n - P), m_k,c the mean of term k over the samples of
// prompt c and P the number of prompts drawn: the spread the tilt p(x|c)·exp(r(x,c)/beta) sees, one
// prompt at a time. A reward that varies between prompts but hardly within one (a prompt-dependent
// offset) has a large RewardSpread and a small RewardSpreadWithin, so that beta 1 in the first's
// units can be a nearly flat tilt. On the same samples as RewardSpread (the same seed).
func RewardSpreadWithin(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, sum *rewards.Sum, n int, seed int64, chunk int) (spread []float64, err error) {
	return rewardSpread(backend, ctx, gen, sum, n, seed, chunk, true)
}

func rewardSpread(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, sum *rewards.Sum, n int, seed int64, chunk int, within bool) (spread []float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("measuring the reward spread: %v", r)
		}
	}()
	if n < 2 {
		return nil, fmt.Errorf("the reward spread needs at least 2 samples, got %d", n)
	}
	terms := sum.Terms()
	exec, err := context.NewExec(backend, ctx.Reuse(), func(ctx *context.Context, eps, prompts *Node) []*Node {
		x := gen.Generate(ctx, eps, prompts)
		outs := make([]*Node, len(terms))
		for i, t := range terms {
			outs[i] = ConvertDType(t.Reward.Score(ctx, x, prompts), eps.DType())
		}
		return outs
	})
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	shape := gen.NoiseShape()
	d := size(shape)
	eps := Normal(seed, streamSpread, n*d)
	numPrompts := len(gen.Prompts())
	ids := PromptIDs(seed, streamSpread+1, n, numPrompts)
	groups := 1 // the sums are kept per prompt for the within-prompt spread
	if within {
		groups = max(1, numPrompts)
	}
	sums, sqs := make([]float64, len(terms)*groups), make([]float64, len(terms)*groups)
	counts := make([]int, groups)
	for _, id := range ids {
		if within {
			counts[id]++
		} else {
			counts[0]++
		}
	}
	if chunk <= 0 {
		chunk = SpreadChunk
	}
	for lo := 0; lo < n; lo += chunk {
		b := min(chunk, n-lo)
		et := tensors.FromFlatDataAndDimensions(eps[lo*d:(lo+b)*d], append([]int{b}, shape...)...)
		outs, err := exec.Exec(et, tensors.FromFlatDataAndDimensions(ids[lo:lo+b], b))
		if err != nil {
			return nil, err
		}
		for k, o := range outs {
			for i, v := range tensors.MustCopyFlatData[float32](o) {
				j := k * groups
				if within {
					j += int(ids[lo+i])
				}
				sums[j] += float64(v)
				sqs[j] += float64(v) * float64(v)
			}
		}
	}
	drawn := 0 // prompts with at least one sample: the degrees of freedom the means take
	for _, c := range counts {
		if c > 0 {
			drawn++
		}
	}
	if n-drawn < 1 {
		return nil, fmt.Errorf("the within-prompt reward spread needs more samples (%d) than prompts drawn (%d)", n, drawn)
	}
	spread = make([]float64, len(terms))
	for k, t := range terms {
		var ss, total float64 // Σ (r - m_c)² over the samples, Σ r
		for c, cnt := range counts {
			if cnt == 0 {
				continue
			}
			j := k*groups + c
			m := sums[j] / float64(cnt)
			ss += sqs[j] - float64(cnt)*m*m
			total += sums[j]
		}
		v := ss / float64(n-drawn)
		spread[k] = math.Sqrt(math.Max(v, 0))
		if !(spread[k] > 1e-12*math.Max(1, math.Abs(total/float64(n)))) || math.IsInf(spread[k], 0) {
			return nil, &ZeroSpreadError{Reward: t.Reward.Name(), Within: within}
		}
	}
	return spread, nil
}

// NormalizedReward returns the sum Σ_k (w_k/s_k) r_k: each term divided by its spread s_k (as
// measured by RewardSpread), so that one unit of the result is one base-model standard deviation
// of each reward, and beta means the same for every reward and model.
func NormalizedReward(sum *rewards.Sum, spread []float64) (*rewards.Sum, error) {
	terms := sum.Terms()
	if len(spread) != len(terms) {
		return nil, fmt.Errorf("reward normalization: %d spreads for %d rewards", len(spread), len(terms))
	}
	for k := range terms {
		if !(spread[k] > 0) || math.IsInf(spread[k], 0) {
			return nil, &ZeroSpreadError{Reward: terms[k].Reward.Name()}
		}
		terms[k].Weight /= spread[k]
	}
	return rewards.NewSum(terms...)
}
