package fashion

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
)

// alignScores is the reward r on images [n,28,28,1] (flat pixels) for the prompts, in m's context.
func alignScores(t *testing.T, m *Model, r hypernoise.Reward, pixels []float32, prompts []int32) []float32 {
	t.Helper()
	out, err := context.ExecOnce(backendForTest(t), m.Context().Reuse(), r.Score,
		tensors.FromFlatDataAndDimensions(pixels, len(prompts), 28, 28, 1), tensors.FromValue(prompts))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out)
}

func TestRegistrySpecs(t *testing.T) {
	reg := Rewards(nil)
	if got := strings.Join(reg.Names(), ","); got != "align,brightness,contrast,realism" {
		t.Errorf("names = %s", got)
	}
	if _, err := reg.Parse("brightness=2,contrast=-1"); err != nil {
		t.Errorf("valid spec: %v", err)
	}
	for spec, want := range map[string]string{
		"sharpness=1":     "available rewards: align, brightness, contrast, realism",
		"brightness=abc":  "not a number",
		"brightness=1,":   "empty term",
		"brightness=0":    "brightness",
		"brightness=NaN":  "brightness",
		"":                "empty reward spec",
		"align=1,align=2": "twice",
	} {
		_, err := reg.Parse(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("spec %q: err = %v, want it to mention %q", spec, err, want)
		}
	}
}

func TestAlignIsLogProbOfPrompt(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Skipf("embedded fashion weights not available: %v", err)
	}
	r, err := AlignReward(m)
	if err != nil {
		t.Fatal(err)
	}
	px := make([]float32, 10*784)
	for i := range px {
		px[i] = float32((i*7919)%255) / 255
	}
	prompts := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	// Same image for every prompt: sum_c p(c|x) must be 1, and every log p <= 0.
	for i := 1; i < 10; i++ {
		copy(px[i*784:(i+1)*784], px[:784])
	}
	got := alignScores(t, m, r, px, prompts)
	var total float64
	for _, lp := range got {
		if lp > 0 {
			t.Errorf("log-probability %g > 0", lp)
		}
		total += math.Exp(float64(lp))
	}
	if math.Abs(total-1) > 1e-4 {
		t.Errorf("sum over prompts of p(c|x) = %g, want 1", total)
	}
}
