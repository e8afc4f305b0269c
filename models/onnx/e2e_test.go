package onnx

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestHyperNoiseOnImportedModel trains the paper's LoRA hypernetwork on the imported fixture
// generator and reward: at step 0 the modulated samples are exactly the base's (f = 0), and after
// training the mean reward on held-out noises is higher than the base's.
func TestHyperNoiseOnImportedModel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	be := testutil.Backend(t)
	m, err := Load(fixtureSpec, be)
	if err != nil {
		t.Fatal(err)
	}
	gen := m.Generator()
	bb, ok := gen.(hypernoise.Backbone)
	if !ok {
		t.Fatal("fixture generator is not a Backbone")
	}
	reward, _ := m.Reward("score")
	mod, err := hypernet.NewLoRA(bb, 4, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	obj := hypernet.Objective{Reward: reward, Reg: hypernet.RegMeanSquare, Weight: 0.5} // the reference code's objective
	prob, err := hypernet.NewProblem(gen, mod, obj)
	if err != nil {
		t.Fatal(err)
	}

	// held-out noises and prompts
	const n = 24
	rng := rand.New(rand.NewPCG(7, 8))
	eps := make([]float32, n*4*8*8)
	for i := range eps {
		eps[i] = float32(rng.NormFloat64())
	}
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i % 3)
	}
	epsT := tensors.FromFlatDataAndDimensions(eps, n, 4, 8, 8)
	idsT := tensors.FromFlatDataAndDimensions(ids, n)

	meanReward := func(mod hypernoise.Modulator) (float64, []float32) {
		s, err := hypernet.NewSampler(be, m.Context(), gen, mod)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Finalize()
		x, _, _, err := s.Sample(epsT, idsT)
		if err != nil {
			t.Fatal(err)
		}
		r := execIn(t, be, m.Context(), func(ctx *context.Context, x, p *Node) []*Node {
			return []*Node{ReduceAllMean(reward.Score(ctx, x, p))}
		}, x, idsT)
		return float64(tensors.ToScalar[float32](r[0])), tensors.MustCopyFlatData[float32](x)
	}
	base, baseX := meanReward(nil) // the base generator, no hypernetwork
	before, beforeX := meanReward(mod)
	for i := range baseX {
		if baseX[i] != beforeX[i] {
			t.Fatalf("at step 0 the hypernetwork changes the samples (pixel %d: %g vs %g): f is not 0", i, beforeX[i], baseX[i])
		}
	}
	if base != before {
		t.Fatalf("reward at step 0 %g differs from the base's %g", before, base)
	}

	cfg := hypernet.DefaultAdamW()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps = 15, 8, 1e-2, 2
	res, err := hypernet.Train(be, m.Context(), prob, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := meanReward(mod)
	t.Logf("mean reward on %d held-out noises: base %.6f, after %d steps %.6f (%.1f s of training)", n, base, cfg.Steps, after, res.Seconds)
	if !(after > base) || math.IsNaN(after) {
		t.Fatalf("the reward did not rise: base %.4f, after training %.4f", base, after)
	}
}
