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
	px := size(rs.shape)
	var images []float32
	var rewards []float64
	err := rs.resample(beta, perPrompt, func(p, i int) {
		images = append(images, rs.images[p][i*px:(i+1)*px]...)
		rewards = append(rewards, rs.rewards[p][i])
	})
	return images, rewards, err
}

// ReferenceNoise draws perPrompt samples per prompt from the tilt at beta like ReferenceSet (the
// same draws) and returns their noises (prompt-major, d values each; d is one noise's size).
func (rs *Resampler) ReferenceNoise(beta float64, perPrompt, d int) ([]float32, error) {
	var out []float32
	noise := make([][]float32, len(rs.rewards))
	err := rs.resample(beta, perPrompt, func(p, i int) {
		if noise[p] == nil {
			noise[p] = rs.Noise(p, d)
		}
		out = append(out, noise[p][i*d:(i+1)*d]...)
	})
	return out, err
}

// resample calls take(p, i) for perPrompt pool indices i per prompt p, drawn with replacement with
// probability ∝ exp(r_i/beta), seeded by the resampler's seed and beta.
func (rs *Resampler) resample(beta float64, perPrompt int, take func(p, i int)) error {
	if !(beta > 0) || math.IsInf(beta, 0) || perPrompt < 1 {
		return fmt.Errorf("tilt reference set: beta must be a positive number and the set non-empty, got beta %g, %d per prompt", beta, perPrompt)
	}
	rng := rand.New(rand.NewPCG(rs.seed^0x5bd1e995, math.Float64bits(beta)))
	for p := range rs.rewards {
		cum := rs.cumWeights(p, beta)
		for range perPrompt {
			take(p, draw(cum, rng))
		}
	}
	return nil
}

// cumWeights returns the running sums of prompt p's weights at beta (Weights); the last is their
// total.
func (rs *Resampler) cumWeights(p int, beta float64) []float64 {
	w, _ := rs.Weights(p, beta)
	acc := 0.0
	for i, v := range w {
		acc += v
		w[i] = acc
	}
	return w
}

// draw returns a pool index drawn with probability ∝ its weight, from the running sums cum.
func draw(cum []float64, rng *rand.Rand) int {
	return min(sort.SearchFloat64s(cum, rng.Float64()*cum[len(cum)-1]), len(cum)-1)
}

// Mean is the tilt's mean reward at beta in the evaluation's units (the scores of NewScored, else
// the rewards), computed from the whole pool: per prompt the self-normalized importance-sampling
// estimate Σ_i w_i s_i, averaged over prompts. Unlike the mean of a resampled reference set, it
// has no resampling noise.
func (rs *Resampler) Mean(beta float64) float64 {
	return rs.promptMean(func(p int) []float64 { w, _ := rs.Weights(p, beta); return w })
}

// promptMean is the evaluation's per-prompt mean over the pool (the scores of NewScored, else the
// rewards), weighted by weights(p) (nil: uniform), over its finite values, averaged over prompts.
func (rs *Resampler) promptMean(weights func(p int) []float64) float64 {
	s := rs.values()
	var m float64
	for p := range s {
		var w []float64
		if weights != nil {
			w = weights(p)
		}
		var sum, wsum float64
		for i, v := range s[p] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			wi := 1.0
			if w != nil {
				wi = w[i]
			}
			sum += wi * v
			wsum += wi
		}
		if wsum > 0 {
			m += sum / wsum
		}
	}
	return m / float64(len(s))
}

// values are the pool's per-prompt values in the evaluation's units: the scores of NewScored,
// else the rewards.
func (rs *Resampler) values() [][]float64 {
	if rs.scores != nil {
		return rs.scores
	}
	return rs.rewards
}

// GainSE is the standard error of the tilt's reward gain Mean(beta) - BaseMean(), both averaged
// over prompts, to first order (the delta method). A pool of base samples gives both means from the
// same samples: prompt p's gain moves by (1/n) Σ_i ψ_i with ψ_i = n w_i (s_i - m_w) - (s_i - m),
// w the tilt's normalized weights, s the scores, m_w and m the weighted and plain means, so its
// variance is Σ_i ψ_i² / n². An SMC pool's tilt mean, Σ_i w_i (s_i - m_w)² of variance, is
// independent of its separate base pool's (whose variance is added): its particles are correlated
// by resampling and moves, so there the figure is a lower bound. The result is
// sqrt(Σ_p var_p)/P over the P prompts.
func (rs *Resampler) GainSE(beta float64) float64 {
	s := rs.values()
	var v2 float64
	for p := range s {
		w, _ := rs.Weights(p, beta)
		mw, m, n := 0.0, 0.0, 0
		for i, x := range s[p] {
			if finite(x) {
				mw += w[i] * x
				m += x
				n++
			}
		}
		if n == 0 {
			continue
		}
		m /= float64(n)
		for i, x := range s[p] {
			if !finite(x) {
				continue
			}
			psi := float64(n) * w[i] * (x - mw)
			if rs.baseVar == nil {
				psi -= x - m
			}
			v2 += psi * psi / float64(n*n)
		}
	}
	if rs.baseVar != nil {
		v2 += *rs.baseVar * float64(len(s)*len(s))
	}
	return math.Sqrt(v2) / float64(len(s))
}

// baseMeanVar is the squared standard error of BaseMean: Σ_p u_p/n_p / P², u_p and n_p the
// variance and count of prompt p's finite scores.
func (rs *Resampler) baseMeanVar() float64 {
	if rs.baseVar != nil {
		return *rs.baseVar
	}
	s := rs.values()
	var v float64
	for p := range s {
		var sum, sq float64
		n := 0
		for _, x := range s[p] {
			if finite(x) {
				sum += x
				sq += x * x
				n++
			}
		}
		if n > 0 {
			m := sum / float64(n)
			v += max(sq/float64(n)-m*m, 0) / float64(n)
		}
	}
	return v / float64(len(s)*len(s))
}

// BaseMean is the base model's mean reward in the evaluation's units (the scores of NewScored,
// else the rewards): per prompt the plain mean over the pool, averaged over prompts. It is E[r]
// under the base with the pool's precision (pool x prompts samples). An SMC pool, whose samples
// are the tilt's, returns the mean of the base pool it measured (SMCConfig.BasePool).
func (rs *Resampler) BaseMean() float64 {
	if rs.baseMean != nil {
		return *rs.baseMean
	}
	return rs.promptMean(nil)
}

// PairedMean estimates a method's population mean reward E[r_m] from its rewards m[i] and the
// base's b[i] on the same evaluation noises, using the base's population mean baseMean (from a
// larger pool) as a control variate: mean(m) - c (mean(b) - baseMean), with c = cov(m, b)/var(b)
// the regression slope of m on b. An evaluation set whose noises happen to score above or below
// the base's average moves mean(m) by about c times that deviation; this takes it back out. It
// is the plain mean when the evaluation set is representative (mean(b) = baseMean), baseMean
// itself for the base (c = 1), and about mean(m) for a method whose reward no longer depends on
// the noise (c = 0). NaN if the lengths differ or fewer than two samples are given.
func PairedMean(m, b []float64, baseMean float64) float64 {
	n := len(m)
	if n < 2 || len(b) != n {
		return math.NaN()
	}
	var mm, mb float64
	for i := range m {
		mm += m[i]
		mb += b[i]
	}
	mm /= float64(n)
	mb /= float64(n)
	var cov, vb float64
	for i := range m {
		cov += (m[i] - mm) * (b[i] - mb)
		vb += (b[i] - mb) * (b[i] - mb)
	}
	c := 0.0
	if vb > 0 {
		c = cov / vb
	}
	return mm - c*(mb-baseMean)
}
