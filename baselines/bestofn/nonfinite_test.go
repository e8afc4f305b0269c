package bestofn

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestNonFiniteCandidatesSkipped: with r(x) = x_0 below a threshold and NaN, +Inf or 1e39 (which
// overflows float32 to +Inf) above it, best-of-N keeps the best candidate among those with a finite
// reward and counts the others; a reward that is never finite is an error naming the model file,
// never the base sample.
func TestNonFiniteCandidatesSkipped(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	const B, N, thr = 6, 8, 0.5
	eps := hypernet.NoiseTensor(3, 1, B*N, []int{2})
	flat := tensors.MustCopyFlatData[float32](eps)
	prompts := tensors.FromFlatDataAndDimensions(make([]int32, B), B)
	for _, bad := range []float64{math.NaN(), math.Inf(1), 1e39} {
		s, err := New(b, ctx, testgen.IdentityGen{}, testgen.Poisoned(thr, bad), N)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.SampleCandidates(tensors.FromFlatDataAndDimensions(flat, B, N, 2), prompts)
		skipped, complete := 0, true
		for i := range B {
			best, found := float32(0), false
			for n := range N {
				v := flat[2*(i*N+n)]
				if v > thr {
					skipped++
					continue
				}
				if !found || v > best {
					best, found = v, true
				}
			}
			complete = complete && found
			if err == nil && res.Reward[i] != best {
				t.Errorf("bad=%g sample %d: kept reward %g, want the best finite %g", bad, i, res.Reward[i], best)
			}
		}
		if !complete || skipped == 0 {
			t.Fatalf("vacuous: %d skipped, every sample has a finite candidate: %v", skipped, complete)
		}
		if err != nil || res.Skipped != skipped || res.Cost.Skipped != skipped {
			t.Errorf("bad=%g: err %v, skipped %d (cost %d), want %d", bad, err, res.Skipped, res.Cost.Skipped, skipped)
		}
		s.Finalize()
		never, _ := New(b, ctx, testgen.IdentityGen{}, testgen.Poisoned(-100, bad), N)
		_, err = never.SampleCandidates(tensors.FromFlatDataAndDimensions(flat, B, N, 2), prompts)
		if err == nil || !strings.Contains(err.Error(), "poisoned.onnx") || !strings.Contains(err.Error(), "no candidate with a finite reward") {
			t.Errorf("bad=%g, never finite: err %v", bad, err)
		}
		never.Finalize()
	}
}
