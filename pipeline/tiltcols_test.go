package pipeline

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/eval/imageeval"
)

// TestTiltWarning: the tilt columns warn when a resampled pool's ESS is below MinTiltESS and when
// the tilt's gain over the base is within MinGainSEs standard errors of zero (or zero), and not
// otherwise.
func TestTiltWarning(t *testing.T) {
	for _, c := range []struct {
		name string
		cols TiltColumns
		want []string // substrings; none: no warning
	}{
		{"clear", TiltColumns{Sampler: TiltSIR, ESSMin: 50, ReferenceMean: 1, BaseMean: 0.5, GainSE: 0.1}, nil},
		{"low ESS", TiltColumns{Sampler: TiltSIR, ESSMin: 2, ReferenceMean: 1, BaseMean: 0.5, GainSE: 0.1}, []string{"effective sample size of 2.0"}},
		{"SMC, low ESS not applicable", TiltColumns{Sampler: TiltSMC, ESSMin: 2, ReferenceMean: 1, BaseMean: 0.5, GainSE: 0.1}, nil},
		{"gain in the noise", TiltColumns{Sampler: TiltSMC, ESSMin: 8, ReferenceMean: 0.52, BaseMean: 0.5, GainSE: 0.01}, []string{"gain over the base, 0.02, is within 3 standard errors (0.01 each)"}},
		{"no gain", TiltColumns{Sampler: TiltSIR, ESSMin: 50, ReferenceMean: 0.5, BaseMean: 0.5}, []string{"gain over the base, 0, is within 3"}},
		{"both", TiltColumns{Sampler: TiltSIR, ESSMin: 1, ReferenceMean: 0.5, BaseMean: 0.5, GainSE: 0.2}, []string{"effective sample size of 1.0", "; the tilt's reward gain"}},
	} {
		got := c.cols.warning()
		if len(c.want) == 0 && got != "" {
			t.Errorf("%s: warning %q, want none", c.name, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: warning %q, want it to contain %q", c.name, got, w)
			}
		}
	}
}

// TestTiltDistance: a method's distance to the tilt reference is the FD between the two sets'
// held-out feature Gaussians when both have features (two 2-D Gaussians whose means are 3 apart
// and covariances equal: FD 9), else the W1 distance of their rewards (rewards shifted by 0.5:
// W1 0.5).
func TestTiltDistance(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	feats := func(shift float64) [][]float64 {
		f := make([][]float64, 4000)
		for i := range f {
			f[i] = []float64{rng.NormFloat64() + shift, rng.NormFloat64()}
		}
		return f
	}
	rewards := func(shift float64) []float64 {
		r := make([]float64, 200)
		for i := range r {
			r[i] = float64(i)/200 + shift
		}
		return r
	}
	a := &imageeval.Result{Rewards: rewards(0.5), Features: feats(3)}
	ref := &imageeval.Result{Rewards: rewards(0), Features: feats(0)}
	if d := float64(distance(a, ref)); math.Abs(d-9) > 0.5 {
		t.Errorf("with features: distance %.3f, want the FD, about 9", d)
	}
	a.Features, ref.Features = nil, nil
	if d := float64(distance(a, ref)); math.Abs(d-0.5) > 1e-9 {
		t.Errorf("without features: distance %.6f, want the rewards' W1, 0.5", d)
	}
}
