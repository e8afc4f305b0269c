package tilt

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGainSE: the standard error of the tilt's reward gain matches the spread of the gain over
// independent pools, for a pool of base samples (both means from the same samples) and for a
// pool of tilt samples with a separate base pool (SMC's form).
func TestGainSE(t *testing.T) {
	const n, reps, beta = 400, 400, 1.0
	rng := rand.New(rand.NewPCG(7, 11))
	normal := func(mu float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = mu + rng.NormFloat64()
		}
		return v
	}
	// r ~ N(mu_p, 1) under the base: the tilt at beta 1 is N(mu_p + 1, 1), so the gain is 1.
	spread := func(draw func() *Resampler) (sd, meanSE, meanGain float64) {
		var g, g2 float64
		for range reps {
			rs := draw()
			gain := rs.Mean(beta) - rs.BaseMean()
			g += gain
			g2 += gain * gain
			meanSE += rs.GainSE(beta) / reps
		}
		g /= reps
		return math.Sqrt(g2/reps - g*g), meanSE, g
	}
	sir := func() *Resampler { return &Resampler{Pool: n, rewards: [][]float64{normal(0), normal(3)}} }
	sd, se, gain := spread(sir)
	t.Logf("base pool: GainSE %.4f, spread over %d pools %.4f", se, reps, sd)
	if math.Abs(gain-1) > 0.1 || math.Abs(se/sd-1) > 0.15 {
		t.Errorf("base pool: gain %.3f (want about 1), GainSE %.4f against the spread over pools %.4f", gain, se, sd)
	}
	smc := func() *Resampler {
		base := &Resampler{Pool: n, rewards: [][]float64{normal(0), normal(3)}}
		bm, bv := base.BaseMean(), base.baseMeanVar()
		return &Resampler{Pool: n, rewards: [][]float64{normal(1), normal(4)}, invBeta0: 1 / beta, baseMean: &bm, baseVar: &bv}
	}
	sd, se, gain = spread(smc)
	if math.Abs(gain-1) > 0.05 || math.Abs(se/sd-1) > 0.15 {
		t.Errorf("tilt pool and base pool: gain %.3f (want 1), GainSE %.4f against the spread over pools %.4f", gain, se, sd)
	}
	t.Logf("tilt pool and base pool: GainSE %.4f, spread over %d pools %.4f", se, reps, sd)
}
