package hypernet

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/rewards"
)

// TestTiltBetaRoundTrip: the mean-sq weight made from beta gives back beta, for noise of several
// sizes, and every regularizer reports the beta its loss targets (none for chi and none).
func TestTiltBetaRoundTrip(t *testing.T) {
	for _, shape := range [][]int{{2}, {7, 7, 4}, {3, 8, 8}} {
		for _, beta := range []float64{1e-3, 0.05, 0.2, 1, 30} {
			o := Objective{Reg: RegMeanSquare, Weight: MeanSquareWeight(beta, shape)}
			if got := o.TiltBeta(shape); math.Abs(got-beta) > 1e-12*beta {
				t.Errorf("shape %v: mean-sq weight for beta %g gives back beta %g", shape, beta, got)
			}
		}
	}
	for _, r := range []Regularizer{RegKL, RegExactKL, RegLogDet} {
		if got := (Objective{Reg: r, Beta: 0.3}).TiltBeta([]int{2}); got != 0.3 || !r.HasTilt() {
			t.Errorf("%s: TiltBeta = %g, HasTilt %v; want 0.3, true", r, got, r.HasTilt())
		}
	}
	for _, r := range []Regularizer{RegChi, RegNone} {
		if got := (Objective{Reg: r, Beta: 0.3, Weight: 1}).TiltBeta([]int{2}); got != 0 || r.HasTilt() {
			t.Errorf("%s: TiltBeta = %g, HasTilt %v; want 0, false", r, got, r.HasTilt())
		}
	}
}

// TestMeanSquareHonoursBeta: trained with AdamW (no clipping, which is the one step that sees the
// loss's scale), mean-sq at MeanSquareWeight(beta) and kl at beta move the weights the same way
// (their losses differ by the constant factor beta), and mean-sq at another beta does not.
func TestMeanSquareHonoursBeta(t *testing.T) {
	b := testutil.Backend(t)
	cfg := DefaultAdamW()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps, cfg.ClipNorm, cfg.AdamEps, cfg.Seed = 10, 8, 1e-2, 2, 0, 1e-12, 3
	train := func(obj Objective) map[string][]float32 {
		gen := &mlpGen{prompts: []string{"a", "b"}}
		mod, err := NewMLP(gen.NoiseShape(), 2, 8, 1, "")
		if err != nil {
			t.Fatal(err)
		}
		obj.Reward = linearReward(1, 0.5)
		p, err := NewProblem(gen, mod, obj)
		if err != nil {
			t.Fatal(err)
		}
		ctx := testgen.Seeded(4)
		initGen(t, b, ctx, gen)
		if _, err := Train(b, ctx, p, cfg, nil); err != nil {
			t.Fatal(err)
		}
		return values(ctx, mod.Scope())
	}
	shape := []int{2}
	kl := train(Objective{Reg: RegKL, Beta: 0.2})
	ms := train(Objective{Reg: RegMeanSquare, Weight: MeanSquareWeight(0.2, shape)})
	other := train(Objective{Reg: RegMeanSquare, Weight: MeanSquareWeight(5, shape)})
	diff := func(a, c map[string][]float32) float64 {
		d := 0.0
		for k, v := range a {
			for i := range v {
				d = math.Max(d, math.Abs(float64(v[i]-c[k][i])))
			}
		}
		return d
	}
	if d := diff(kl, ms); d > 1e-4 {
		t.Errorf("mean-sq at the weight of beta 0.2 and kl at beta 0.2 trained to weights %g apart", d)
	}
	if d := diff(kl, other); d < 1e-3 {
		t.Errorf("mean-sq at beta 5 trained like kl at beta 0.2 (weights %g apart): beta is ignored", d)
	}
}

// TestRewardSpread: for g(eps) = eps and r(x) = x_1 + 2 x_2 the spread under the base is
// sqrt(5) (within sampling error), the normalized reward's spread is 1, and a constant reward is
// refused by name.
func TestRewardSpread(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	sum, err := rewards.NewSum(rewards.Term{Reward: linearReward(1, 2), Weight: 3})
	if err != nil {
		t.Fatal(err)
	}
	const n = 4096
	s, err := RewardSpread(b, ctx, identityGen{}, sum, n, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := math.Sqrt(5) // the weight is not part of the spread
	if tol := 4 * want / math.Sqrt(2*n); math.Abs(s[0]-want) > tol {
		t.Errorf("spread %g, want %g ± %g", s[0], want, tol)
	}
	norm, err := NormalizedReward(sum, s)
	if err != nil {
		t.Fatal(err)
	}
	if w := norm.Terms()[0].Weight; math.Abs(w-3/s[0]) > 1e-12 {
		t.Errorf("normalized weight %g, want 3/%g", w, s[0])
	}
	// The normalized sum, scored as one reward on the same samples: its spread is the weight, 3.
	whole, _ := rewards.NewSum(rewards.Term{Reward: norm, Weight: 1})
	s1, err := RewardSpread(b, ctx, identityGen{}, whole, n, 7, 0)
	if err != nil || math.Abs(s1[0]-3) > 1e-4 {
		t.Errorf("spread of the normalized reward on the same samples = %v, %v; want 3", s1, err)
	}

	constant := rewards.Func{RewardName: "flat", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		return AddScalar(MulScalar(ReduceSum(Reshape(x, x.Shape().Dim(0), -1), -1), 0), 2)
	}}
	two, _ := rewards.NewSum(rewards.Term{Reward: linearReward(1, 0), Weight: 1}, rewards.Term{Reward: constant, Weight: 1})
	_, err = RewardSpread(b, ctx, identityGen{}, two, 256, 7, 0)
	var zs *ZeroSpreadError
	if !errors.As(err, &zs) || zs.Reward != "flat" || !strings.Contains(err.Error(), `"flat"`) {
		t.Errorf("constant reward: err = %v; want a zero-spread error naming \"flat\"", err)
	}
	if _, err := ParseRewardNorm("max"); err == nil {
		t.Error("unknown normalization accepted")
	}
}

// TestRewardSpreadChunks: the spread is the same, bit for bit, whatever the chunk its samples run
// in, and no compiled call runs more rows than the chunk.
func TestRewardSpreadChunks(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	var mu sync.Mutex
	maxRows := 0
	rows := rewards.Func{RewardName: "linear", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		mu.Lock()
		maxRows = max(maxRows, x.Shape().Dim(0))
		mu.Unlock()
		return linearReward(1, 2).Score(ctx, x, prompts)
	}}
	sum, _ := rewards.NewSum(rewards.Term{Reward: rows, Weight: 1})
	whole, err := RewardSpread(b, ctx, identityGen{}, sum, 1000, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	if maxRows != SpreadChunk {
		t.Errorf("default chunk: calls of up to %d rows, want %d", maxRows, SpreadChunk)
	}
	maxRows = 0
	chunked, err := RewardSpread(b, ctx, identityGen{}, sum, 1000, 7, 7)
	if err != nil {
		t.Fatal(err)
	}
	if maxRows > 7 {
		t.Errorf("chunk 7: a call of %d rows", maxRows)
	}
	if chunked[0] != whole[0] {
		t.Errorf("spread in chunks of 7: %v, in chunks of %d: %v", chunked, SpreadChunk, whole)
	}
}

// promptedIdentity is identityGen with four prompts.
type promptedIdentity struct{ identityGen }

func (promptedIdentity) Prompts() []string { return []string{"a", "b", "c", "d"} }

// TestRewardSpreadWithin: for g(eps) = eps and r(x, c) = x_1 + 10·c over four uniform prompts c,
// the spread over all samples is sqrt(1 + 100·1.25) and the pooled within-prompt spread is 1
// (within sampling error); a reward that depends on the prompt only has a nonzero spread but is
// refused by the within-prompt one, naming it; "std-within" parses.
func TestRewardSpreadWithin(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	offset := func(a float32) rewards.Func {
		return rewards.Func{RewardName: "offset", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
			first := Reshape(Slice(Reshape(x, x.Shape().Dim(0), 2), AxisRange(), AxisRange(0, 1)), -1)
			return Add(MulScalar(first, float64(a)), MulScalar(ConvertDType(prompts, x.DType()), 10))
		}}
	}
	sum, err := rewards.NewSum(rewards.Term{Reward: offset(1), Weight: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 4096
	all, err := RewardSpread(b, ctx, promptedIdentity{}, sum, n, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	within, err := RewardSpreadWithin(b, ctx, promptedIdentity{}, sum, n, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Sqrt(1 + 100*1.25); math.Abs(all[0]-want) > 0.05*want {
		t.Errorf("spread over all samples %g, want about %g", all[0], want)
	}
	if tol := 4 / math.Sqrt(2*n); math.Abs(within[0]-1) > tol {
		t.Errorf("within-prompt spread %g, want 1 ± %g", within[0], tol)
	}
	only, _ := rewards.NewSum(rewards.Term{Reward: offset(0), Weight: 1})
	if _, err := RewardSpread(b, ctx, promptedIdentity{}, only, 256, 7, 0); err != nil {
		t.Errorf("a prompt-only reward has a spread over all samples, got %v", err)
	}
	_, err = RewardSpreadWithin(b, ctx, promptedIdentity{}, only, 256, 7, 0)
	var zs *ZeroSpreadError
	if !errors.As(err, &zs) || !zs.Within || !strings.Contains(err.Error(), `"offset"`) || !strings.Contains(err.Error(), "within a prompt") {
		t.Errorf("prompt-only reward: err = %v; want a within-prompt zero-spread error naming \"offset\"", err)
	}
	if got, err := ParseRewardNorm("std-within"); err != nil || got != NormStdWithin {
		t.Errorf("ParseRewardNorm(std-within) = %q, %v", got, err)
	}
}
