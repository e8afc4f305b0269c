package metrics

import "math"

// MeanStd is the mean of xs and their sample standard deviation (n-1 in the denominator; 0 for a
// single value): the spread of a figure over training seeds. Non-finite values are left out; NaN,
// NaN when none is left.
func MeanStd(xs []float64) (mean, std float64) {
	var n float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			mean += x
			n++
		}
	}
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	mean /= n
	if n == 1 {
		return mean, 0
	}
	var ss float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			ss += (x - mean) * (x - mean)
		}
	}
	return mean, math.Sqrt(ss / (n - 1))
}
