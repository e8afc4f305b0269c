package tilt

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Share is the share of a reference's gain over the base that a method reaches,
// (m - base)/(ref - base): 1 when the method gains as much as the reference, 0 when it gains
// nothing, above 1 when it overshoots. NaN when the reference gains nothing (ref == base).
func Share(m, base, ref float64) float64 {
	if ref == base {
		return math.NaN()
	}
	return (m - base) / (ref - base)
}

// ReferenceSet draws perPrompt samples per prompt from the tilt at beta (prompt-major: sample
// p*perPrompt + k belongs to prompt p), seeded by the resampler's seed and beta, and returns them
// (flat, SampleShape each) with their rewards.
func (rs *Resampler) ReferenceSet(beta float64, perPrompt int) ([]float32, []float64, error) {
	if !(beta > 0) || math.IsInf(beta, 0) || perPrompt < 1 {
		return nil, nil, fmt.Errorf("tilt reference set: beta must be a positive number and the set non-empty, got beta %g, %d per prompt", beta, perPrompt)
	}
	px := size(rs.shape)
	rng := rand.New(rand.NewPCG(rs.seed^0x5bd1e995, math.Float64bits(beta)))
	var images []float32
	var rewards []float64
	for p := range rs.rewards {
		w, _ := rs.weights(p, beta)
		cum := make([]float64, len(w))
		acc := 0.0
		for i, v := range w {
			acc += v
			cum[i] = acc
		}
		for range perPrompt {
			i := min(sort.SearchFloat64s(cum, rng.Float64()*acc), len(cum)-1)
			images = append(images, rs.images[p][i*px:(i+1)*px]...)
			rewards = append(rewards, rs.rewards[p][i])
		}
	}
	return images, rewards, nil
}

// Mean is the tilt's mean reward at beta in the evaluation's units (the scores of NewScored, else
// the rewards), computed from the whole pool: per prompt the self-normalized importance-sampling
// estimate Σ_i w_i s_i, averaged over prompts. Unlike the mean of a resampled reference set, it
// has no resampling noise.
func (rs *Resampler) Mean(beta float64) float64 {
	s := rs.scores
	if s == nil {
		s = rs.rewards
	}
	var m float64
	for p := range s {
		w, _ := rs.weights(p, beta)
		var tilted, wsum float64
		for i, v := range s[p] {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				tilted += w[i] * v
				wsum += w[i]
			}
		}
		if wsum > 0 {
			m += tilted / wsum
		}
	}
	return m / float64(len(s))
}
