package hypernet

import (
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestStratifiedPrompts: k prompts per step in contiguous groups (sizes differing by at most one),
// every prompt once per permutation, a pure function of (seed, step).
func TestStratifiedPrompts(t *testing.T) {
	const np = 5
	// k = 1: the whole batch holds one prompt; steps 0-4 cover all five once, 5-9 again.
	for epoch := range 2 {
		seen := map[int32]int{}
		for s := epoch * np; s < (epoch+1)*np; s++ {
			p := StratifiedPrompts(3, s, 4, np, 1)
			if slices.Min(p) != slices.Max(p) {
				t.Fatalf("k=1, step %d: rows hold different prompts %v", s, p)
			}
			seen[p[0]]++
		}
		if len(seen) != np {
			t.Errorf("k=1, epoch %d: prompts %v, want each of %d once", epoch, seen, np)
		}
	}
	// k = 3 of batch 7: groups of 3, 2, 2 rows; positions 0..14 (steps 0-4) are three permutations.
	var all []int32
	for s := range 5 {
		p := StratifiedPrompts(3, s, 7, np, 3)
		if p[0] != p[1] || p[1] != p[2] || p[3] != p[4] || p[5] != p[6] {
			t.Fatalf("k=3, step %d: rows %v not in groups of 3, 2, 2", s, p)
		}
		all = append(all, p[0], p[3], p[5])
	}
	for e := range 3 {
		perm := slices.Clone(all[e*np : (e+1)*np])
		slices.Sort(perm)
		if !slices.Equal(perm, []int32{0, 1, 2, 3, 4}) {
			t.Errorf("k=3: positions %d-%d are %v, not a permutation", e*np, (e+1)*np-1, all[e*np:(e+1)*np])
		}
	}
	if !slices.Equal(StratifiedPrompts(3, 2, 7, np, 3), StratifiedPrompts(3, 2, 7, np, 3)) {
		t.Error("not a pure function of its arguments")
	}
	same := true
	for s := range 10 {
		same = same && slices.Equal(StratifiedPrompts(3, s, 4, np, 1), StratifiedPrompts(4, s, 4, np, 1))
	}
	if same {
		t.Error("another seed gives the same prompts")
	}
}

// TestStepBatch: PromptsPerStep 0 is TrainingBatch exactly; k > 0 changes only the prompts.
func TestStepBatch(t *testing.T) {
	shape := []int{2, 3}
	cfg := DefaultAdamW()
	cfg.BatchSize, cfg.Seed = 6, 9
	for _, mode := range []NoiseMode{NoiseFresh, NoiseBatch, NoiseOne, NoiseMulti} {
		cfg.Noise = mode
		e, p := StepBatch(cfg, 3, shape, 8)
		we, wp := TrainingBatch(mode, 9, 3, 6, 6, shape, 8)
		if !slices.Equal(e, we) || !slices.Equal(p, wp) {
			t.Errorf("%s: PromptsPerStep 0 differs from TrainingBatch", mode)
		}
	}
	cfg.Noise, cfg.PromptsPerStep = NoiseFresh, 2
	e, p := StepBatch(cfg, 3, shape, 8)
	we, _ := TrainingBatch(NoiseFresh, 9, 3, 6, 6, shape, 8)
	if !slices.Equal(e, we) {
		t.Error("PromptsPerStep changed the noise")
	}
	if !slices.Equal(p, StratifiedPrompts(9, 3, 6, 8, 2)) {
		t.Errorf("prompts %v, want StratifiedPrompts'", p)
	}
}

// TestTrainerPromptsPerStep: with PromptsPerStep 1 every training batch the trainer builds holds
// one prompt (a metric reports each step's max - min prompt id); without it, batches mix prompts.
func TestTrainerPromptsPerStep(t *testing.T) {
	b := testutil.Backend(t)
	p := linearProblem(1, []float32{1, 1}, []float32{0, 0}, nil)
	p.NumPrompts = 8
	loss := p.Loss
	p.Loss = func(ctx *context.Context, eps, prompts *Node) (*Node, []Metric) {
		l, m := loss(ctx, eps, prompts)
		spread := ConvertDType(Sub(ReduceAllMax(prompts), ReduceAllMin(prompts)), dtypes.Float32)
		return l, append(m, Metric{Name: "prompt_spread", Value: spread})
	}
	spreads := func(k int) []float64 {
		cfg := plainSGD(16, 0.01)
		cfg.PromptsPerStep = k
		res, err := Train(b, context.New(), p, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Metrics["prompt_spread"]
	}
	if s := spreads(1); slices.Max(s) != 0 {
		t.Errorf("PromptsPerStep 1: batches mix prompts, spreads %v", s)
	}
	if s := spreads(0); slices.Max(s) == 0 {
		t.Errorf("PromptsPerStep 0: no batch of 4 in 16 steps mixes prompts, spreads %v", s)
	}
}

func TestPromptsPerStepErrors(t *testing.T) {
	cfg := DefaultAdamW()
	cfg.BatchSize = 4
	for _, c := range []struct {
		k    int
		mode NoiseMode
		want string
	}{
		{5, NoiseFresh, "prompts per step"},
		{-1, NoiseFresh, "prompts per step"},
		{1, NoiseOne, "noise modes"},
		{2, NoiseMulti, "noise modes"},
	} {
		cfg.PromptsPerStep, cfg.Noise = c.k, c.mode
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("k=%d, %s: error %v, want one naming %q", c.k, c.mode, err, c.want)
		}
	}
	cfg.PromptsPerStep, cfg.Noise = 4, NoiseBatch
	if err := cfg.Validate(); err != nil {
		t.Errorf("k=4 of batch 4, batch noise: %v", err)
	}
}
