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
	NormNone = "none" // rewards as given: beta is in the reward's own units
	NormStd  = "std"  // each reward divided by its standard deviation under the base generator
)

// ParseRewardNorm checks a reward normalization name.
func ParseRewardNorm(s string) (string, error) {
	switch s {
	case NormNone, NormStd:
		return s, nil
	case "":
		return NormNone, nil
	}
	return "", fmt.Errorf("unknown reward normalization %q; allowed: %s, %s", s, NormNone, NormStd)
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
type ZeroSpreadError struct{ Reward string }

func (e *ZeroSpreadError) Error() string {
	return fmt.Sprintf("reward %q has zero spread under the base model (it is constant on its samples), so it cannot be normalized by it; train it with --reward-norm none", e.Reward)
}

// RewardSpread measures, for each term r_k of the sum (unweighted), its standard deviation under
// the base generator: s_k = std of r_k(g(eps, c), c) over n samples with eps ~ N(0, I) and c
// uniform over the prompts, drawn from seed (a pure function of it, whatever the chunk: the noises
// and prompts are drawn for all n at once, and each sample is scored on its own). ctx holds the
// generator's and the rewards' variables. Each compiled call runs at most chunk samples (<= 0:
// SpreadChunk). A term whose spread is 0 (or not finite) is a *ZeroSpreadError.
func RewardSpread(backend backends.Backend, ctx *context.Context, gen hypernoise.Generator, sum *rewards.Sum, n int, seed int64, chunk int) (spread []float64, err error) {
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
	ids := PromptIDs(seed, streamSpread+1, n, len(gen.Prompts()))
	sums, sqs := make([]float64, len(terms)), make([]float64, len(terms))
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
			for _, v := range tensors.MustCopyFlatData[float32](o) {
				sums[k] += float64(v)
				sqs[k] += float64(v) * float64(v)
			}
		}
	}
	spread = make([]float64, len(terms))
	for k, t := range terms {
		m := sums[k] / float64(n)
		v := (sqs[k] - float64(n)*m*m) / float64(n-1)
		spread[k] = math.Sqrt(math.Max(v, 0))
		if !(spread[k] > 1e-12*math.Max(1, math.Abs(m))) || math.IsInf(spread[k], 0) {
			return nil, &ZeroSpreadError{Reward: t.Reward.Name()}
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
