// Package metrics computes the sample-quality figures used by the evaluation: the Fréchet
// distance between two feature sets, diversity, and accuracy.
package metrics

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/mat"
)

// Moments returns the mean vector and the (unbiased, n-1) covariance matrix of the rows of x.
func Moments(x [][]float64) (mean []float64, cov *mat.SymDense, err error) {
	n := len(x)
	if n < 2 {
		return nil, nil, fmt.Errorf("need at least 2 feature vectors, got %d", n)
	}
	d := len(x[0])
	mean = make([]float64, d)
	for i, row := range x {
		if len(row) != d {
			return nil, nil, fmt.Errorf("feature vector %d has %d dims, expected %d", i, len(row), d)
		}
		for j, v := range row {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	c := mat.NewSymDense(d, nil)
	centered := make([]float64, d)
	for _, row := range x {
		for j, v := range row {
			centered[j] = v - mean[j]
		}
		c.SymRankOne(c, 1, mat.NewVecDense(d, centered))
	}
	c.ScaleSym(1/float64(n-1), c)
	return mean, c, nil
}

// FrechetDistance is the squared 2-Wasserstein distance between the Gaussians fitted to a and b:
//
//	FD = ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^{1/2} S_b S_a^{1/2})^{1/2}),
//
// the quantity behind FID. It is computed with symmetric eigendecompositions (so it is exact for
// positive semi-definite covariances, with tiny negative eigenvalues from round-off clamped to 0).
func FrechetDistance(a, b [][]float64) (float64, error) {
	ma, sa, err := Moments(a)
	if err != nil {
		return 0, err
	}
	mb, sb, err := Moments(b)
	if err != nil {
		return 0, err
	}
	return FrechetFromMoments(ma, sa, mb, sb)
}

// FrechetFromMoments is FrechetDistance given the two Gaussians' means and covariances (for
// example a reference set's moments computed once and stored).
func FrechetFromMoments(ma []float64, sa *mat.SymDense, mb []float64, sb *mat.SymDense) (float64, error) {
	if len(ma) != len(mb) || sa.SymmetricDim() != len(ma) || sb.SymmetricDim() != len(mb) {
		return 0, fmt.Errorf("feature dims differ: means %d and %d, covariances %d and %d",
			len(ma), len(mb), sa.SymmetricDim(), sb.SymmetricDim())
	}
	var dmu float64
	for i := range ma {
		dmu += (ma[i] - mb[i]) * (ma[i] - mb[i])
	}
	rootA, err := sqrtSym(sa)
	if err != nil {
		return 0, err
	}
	d := len(ma)
	var m mat.Dense
	m.Mul(rootA, sb)
	m.Mul(&m, rootA)
	msym := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			msym.SetSym(i, j, (m.At(i, j)+m.At(j, i))/2)
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(msym, false) {
		return 0, fmt.Errorf("eigendecomposition failed")
	}
	var trRoot float64
	for _, v := range eig.Values(nil) {
		trRoot += math.Sqrt(math.Max(v, 0))
	}
	fd := dmu + mat.Trace(sa) + mat.Trace(sb) - 2*trRoot
	return math.Max(fd, 0), nil
}

// sqrtSym returns the symmetric PSD square root V diag(sqrt(max(l,0))) V^T.
func sqrtSym(s *mat.SymDense) (*mat.Dense, error) {
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		return nil, fmt.Errorf("eigendecomposition failed")
	}
	vals := eig.Values(nil)
	var v mat.Dense
	eig.VectorsTo(&v)
	d := len(vals)
	scaled := mat.NewDense(d, d, nil)
	for j := 0; j < d; j++ {
		r := math.Sqrt(math.Max(vals[j], 0))
		for i := 0; i < d; i++ {
			scaled.Set(i, j, v.At(i, j)*r)
		}
	}
	var out mat.Dense
	out.Mul(scaled, v.T())
	return &out, nil
}

// Diversity is the mean Euclidean distance between distinct pairs of rows of x
// (0 when every sample is the same; larger is more varied).
func Diversity(x [][]float64) float64 {
	n := len(x)
	if n < 2 {
		return 0
	}
	var sum float64
	var pairs int
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			var d float64
			for k := range x[i] {
				diff := x[i][k] - x[j][k]
				d += diff * diff
			}
			sum += math.Sqrt(d)
			pairs++
		}
	}
	return sum / float64(pairs)
}

// Accuracy is the fraction of i with argmax(logits[i]) == labels[i].
func Accuracy(logits [][]float64, labels []int) float64 {
	if len(logits) == 0 {
		return 0
	}
	correct := 0
	for i, row := range logits {
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if best == labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(len(logits))
}

// Figure is a figure that a report may lack (NaN: not measured, e.g. a held-out metric of a model
// without a held-out evaluator); JSON writes it as null and reads null back as NaN.
type Figure float64

// NA is the absent figure.
var NA = Figure(math.NaN())

// Valid reports whether the figure was measured (is not NaN).
func (f Figure) Valid() bool { return !math.IsNaN(float64(f)) }

// MarshalJSON writes the figure as a JSON number, or null when absent.
func (f Figure) MarshalJSON() ([]byte, error) {
	if !f.Valid() {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// UnmarshalJSON reads a JSON number, or null as the absent figure.
func (f *Figure) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = NA
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Figure(v)
	return nil
}

// Rows converts a float32 tensor [n, d] to n rows of float64 (features, logits).
func Rows(t *tensors.Tensor) [][]float64 {
	flat := tensors.MustCopyFlatData[float32](t)
	n := t.Shape().Dim(0)
	d := len(flat) / max(n, 1)
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, d)
		for j := range out[i] {
			out[i][j] = float64(flat[i*d+j])
		}
	}
	return out
}
