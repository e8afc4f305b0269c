package reno

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestNonFiniteIterates: ReNO climbs r(x) = x_0 until x_0 passes a threshold where the reward
// becomes NaN (or +Inf, or 1e39, an overflow of float32); those iterates are counted and never
// kept (the kept reward is finite and at most the threshold). A reward that is never finite is an
// error naming the model file, not the initial noise's sample.
func TestNonFiniteIterates(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	const B, thr = 4, 3.0
	eps := hypernet.NoiseTensor(5, 1, B, []int{2})
	prompts := tensors.FromFlatDataAndDimensions(make([]int32, B), B)
	cfg := DefaultConfig()
	cfg.Steps, cfg.PriorWeight = 30, 0
	for _, bad := range []float64{math.NaN(), math.Inf(1), 1e39} {
		o, err := New(b, ctx, testgen.IdentityGen{}, testgen.Poisoned(thr, bad), cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := o.Run(eps, prompts)
		if err != nil {
			t.Fatalf("bad=%g: %v", bad, err)
		}
		if res.Skipped == 0 || res.Cost.Skipped != res.Skipped {
			t.Errorf("bad=%g: %d iterates skipped (cost %d); the climb must pass the threshold", bad, res.Skipped, res.Cost.Skipped)
		}
		for i, r := range res.Reward {
			if math.IsNaN(float64(r)) || math.IsInf(float64(r), 0) || r > thr {
				t.Errorf("bad=%g sample %d: kept reward %g", bad, i, r)
			}
		}
		o.Finalize()
		never, _ := New(b, ctx, testgen.IdentityGen{}, testgen.Poisoned(-100, bad), cfg)
		if _, err := never.Run(eps, prompts); err == nil || !strings.Contains(err.Error(), "poisoned.onnx") ||
			!strings.Contains(err.Error(), "no iterate with a finite reward") {
			t.Errorf("bad=%g, never finite: err %v", bad, err)
		}
		never.Finalize()
	}
}
