package tilt

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Distances between a method's samples and the tilt reference's, for model families without a
// feature space for FD (documented in docs/convergence.md).

// W1 is the 1-Wasserstein distance between the empirical distributions of a and b (e.g. the
// rewards of a method's samples and of the tilt reference's): the integral of |F_a(t) - F_b(t)|
// over t, computed exactly by merging the sorted samples. Non-finite values are left out; with an
// empty side it is NaN.
func W1(a, b []float64) float64 {
	sa, sb := finiteSorted(a), finiteSorted(b)
	if len(sa) == 0 || len(sb) == 0 {
		return math.NaN()
	}
	na, nb := float64(len(sa)), float64(len(sb))
	var i, j int
	var dist, prev float64
	prev = math.Min(sa[0], sb[0])
	for i < len(sa) || j < len(sb) {
		var t float64
		if j >= len(sb) || (i < len(sa) && sa[i] <= sb[j]) {
			t = sa[i]
		} else {
			t = sb[j]
		}
		dist += math.Abs(float64(i)/na-float64(j)/nb) * (t - prev)
		prev = t
		for i < len(sa) && sa[i] == t {
			i++
		}
		for j < len(sb) && sb[j] == t {
			j++
		}
	}
	return dist
}

func finiteSorted(x []float64) []float64 {
	out := make([]float64, 0, len(x))
	for _, v := range x {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, v)
		}
	}
	sort.Float64s(out)
	return out
}

// MMD is the (biased, V-statistic) maximum mean discrepancy between two sets of samples x and y,
// each a flat array of rows of dim values, with the Gaussian kernel exp(-||u - v||^2 / (2 h^2)),
// h^2 the median of the squared distances between the pooled rows (the median heuristic):
//
//	MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y),
//
// returned as its square root. It is 0 for identical sets and grows as the sets' laws differ.
func MMD(x, y []float32, dim int) (float64, error) {
	if dim < 1 || len(x) == 0 || len(y) == 0 || len(x)%dim != 0 || len(y)%dim != 0 {
		return 0, fmt.Errorf("MMD: %d and %d values are not non-empty sets of rows of %d", len(x), len(y), dim)
	}
	rows := func(v []float32) [][]float32 {
		out := make([][]float32, len(v)/dim)
		for i := range out {
			out[i] = v[i*dim : (i+1)*dim]
		}
		return out
	}
	xs, ys := rows(x), rows(y)
	all := append(slices.Clone(xs), ys...)
	sq := func(u, v []float32) float64 {
		var s float64
		for k := range u {
			d := float64(u[k] - v[k])
			s += d * d
		}
		return s
	}
	var dists []float64
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			dists = append(dists, sq(all[i], all[j]))
		}
	}
	h2 := 1.0
	if len(dists) > 0 {
		sort.Float64s(dists)
		if m := dists[len(dists)/2]; m > 0 {
			h2 = m
		}
	}
	mean := func(a, b [][]float32) float64 {
		var s float64
		for _, u := range a {
			for _, v := range b {
				s += math.Exp(-sq(u, v) / (2 * h2))
			}
		}
		return s / float64(len(a)*len(b))
	}
	return math.Sqrt(math.Max(0, mean(xs, xs)+mean(ys, ys)-2*mean(xs, ys))), nil
}
