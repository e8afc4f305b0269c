package hypernet

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"gonum.org/v1/gonum/mat"
)

// residualMap is f(x) = s W2 tanh(W1 x + b) on x [M, D], its parameters given as graph inputs.
func residualMap(x, w1, b1, w2 *Node, s float64) *Node {
	h := Tanh(Add(Dot(x, w1), ExpandAxes(b1, 0)))
	return MulScalar(Dot(h, w2), s)
}

// logDetCase holds one random residual map at one point.
type logDetCase struct {
	d, h      int
	s         float64
	x         []float64 // [D]
	w1, b, w2 []float64
}

func newLogDetCase(d int, seed uint64, lip float64) logDetCase {
	r := rand.New(rand.NewPCG(seed, 7))
	h := max(d, 8)
	c := logDetCase{d: d, h: h, x: make([]float64, d), w1: make([]float64, d*h), b: make([]float64, h), w2: make([]float64, h*d)}
	for i := range c.x {
		c.x[i] = r.NormFloat64()
	}
	for i := range c.w1 {
		c.w1[i] = r.NormFloat64() / math.Sqrt(float64(d))
	}
	for i := range c.b {
		c.b[i] = 0.3 * r.NormFloat64()
	}
	// W2 = W1^T + noise: J = s W1 diag(tanh') W1^T + ..., mostly symmetric with positive
	// eigenvalues, so that every power tr(J^k) matters (a fully random J has a tiny spectral radius).
	for k := range h {
		for i := range d {
			c.w2[k*d+i] = c.w1[i*h+k] + 0.3*r.NormFloat64()/math.Sqrt(float64(h))
		}
	}
	// Scale so that the Jacobian at x, J_ij = s Σ_k W2[k,i] tanh'_k W1[j,k], has ||J||_2 = lip.
	pre := make([]float64, h)
	for k := range h {
		a := c.b[k]
		for j := range d {
			a += c.x[j] * c.w1[j*h+k]
		}
		pre[k] = 1 - math.Tanh(a)*math.Tanh(a)
	}
	J := mat.NewDense(d, d, nil)
	for i := range d {
		for j := range d {
			var v float64
			for k := range h {
				v += c.w2[k*d+i] * pre[k] * c.w1[j*h+k]
			}
			J.Set(i, j, v)
		}
	}
	c.s = lip / mat.Norm(J, 2)
	return c
}

// bruteForce builds J_f(x) row by row (JacobianRows), then in float64 with gonum:
// value = tr J - log det(I + J), and M = I - (I+J)^{-1}, so that
// d value/dθ = tr(M dJ/dθ) = ∂/∂θ Σ_ij M_ij J_ji (M held fixed).
// It returns the value and the gradient of that value with respect to (W1, b, W2).
func (c logDetCase) bruteForce(t *testing.T) (float64, []float64) {
	t.Helper()
	b := testutil.Backend(t)
	jac, err := NewExec(b, func(x, w1, b1, w2 *Node) *Node {
		return JacobianRows(x, residualMap(x, w1, b1, w2, c.s))
	})
	if err != nil {
		t.Fatal(err)
	}
	in := c.inputs(1)
	out, err := jac.Exec(in...)
	if err != nil {
		t.Fatal(err)
	}
	jv := tensors.MustCopyFlatData[float64](out[0])
	d := c.d
	J := mat.NewDense(d, d, jv)
	A := mat.NewDense(d, d, nil)
	A.Add(mat.NewDiagDense(d, ones(d)), J)
	var lu mat.LU
	lu.Factorize(A)
	logDet, sign := lu.LogDet()
	if sign <= 0 {
		t.Fatalf("det(I+J) <= 0 for a map with Lip < 1")
	}
	value := mat.Trace(J) - logDet
	var inv mat.Dense
	if err := inv.Inverse(A); err != nil {
		t.Fatal(err)
	}
	M := mat.NewDense(d, d, nil)
	M.Sub(mat.NewDiagDense(d, ones(d)), &inv)
	mflat := make([]float64, d*d)
	for i := range d {
		for j := range d {
			mflat[i*d+j] = M.At(i, j)
		}
	}
	grad, err := NewExec(b, func(x, w1, b1, w2, m *Node) []*Node {
		jr := Reshape(JacobianRows(x, residualMap(x, w1, b1, w2, c.s)), d, d)
		s := ReduceAllSum(Mul(m, Transpose(jr, 0, 1)))
		return Gradient(s, w1, b1, w2)
	})
	if err != nil {
		t.Fatal(err)
	}
	gout, err := grad.Exec(append(in, tensors.FromFlatDataAndDimensions(mflat, d, d))...)
	if err != nil {
		t.Fatal(err)
	}
	return value, flatAll(gout)
}

func (c logDetCase) inputs(m int) []any {
	xs := make([]float64, 0, m*c.d)
	for range m {
		xs = append(xs, c.x...)
	}
	return []any{tensors.FromFlatDataAndDimensions(xs, m, c.d), tensors.FromFlatDataAndDimensions(c.w1, c.d, c.h),
		tensors.FromFlatDataAndDimensions(c.b, c.h), tensors.FromFlatDataAndDimensions(c.w2, c.h, c.d)}
}

// estimate runs LogDetSeries on m copies of the point, one probe each (so the m per-sample values
// are independent estimates), and returns them with the gradient of their mean.
func (c logDetCase) estimate(t *testing.T, m int, cfg LogDet, seed uint64) (vals, grad []float64, s Series0) {
	t.Helper()
	b := testutil.Backend(t)
	r := rand.New(rand.NewPCG(seed, 11))
	probes := make([]float64, m*c.d)
	for i := range probes {
		probes[i] = float64(2*r.IntN(2) - 1)
	}
	e, err := NewExec(b, func(x, w1, b1, w2, v *Node) []*Node {
		sr := LogDetSeries(x, residualMap(x, w1, b1, w2, c.s), v, cfg)
		gs := Gradient(ReduceAllMean(sr.Loss), w1, b1, w2)
		return append([]*Node{sr.Value, sr.Diverged, sr.Gain, sr.Bound, sr.Loss}, gs...)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(append(c.inputs(m), tensors.FromFlatDataAndDimensions(probes, 1, m, c.d))...)
	if err != nil {
		t.Fatal(err)
	}
	vals = tensors.MustCopyFlatData[float64](out[0])
	s.diverged = tensors.MustCopyFlatData[float64](out[1])
	s.gain = tensors.MustCopyFlatData[float64](out[2])
	s.bound = tensors.MustCopyFlatData[float64](out[3])
	s.loss = tensors.MustCopyFlatData[float64](out[4])
	return vals, flatAll(out[5:]), s
}

// Series0 holds a Series' per-sample outputs as Go slices.
type Series0 struct{ diverged, gain, bound, loss []float64 }

func flatAll(ts []*tensors.Tensor) []float64 {
	var out []float64
	for _, t := range ts {
		out = append(out, tensors.MustCopyFlatData[float64](t)...)
	}
	return out
}

func ones(n int) []float64 {
	o := make([]float64, n)
	for i := range o {
		o[i] = 1
	}
	return o
}

func meanSE(xs []float64) (float64, float64) {
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	v /= float64(len(xs) - 1)
	return m, math.Sqrt(v / float64(len(xs)))
}

func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}

// TestLogDetSeriesMatchesBruteForce: for random residual maps with ||J_f(x)||_2 = 0.5 at the
// point, at D = 2, 8, 32, the probe mean of the estimate matches tr J - log det(I + J) from the
// row-by-row Jacobian within 3 standard errors (plus the 10-term truncation bound
// D Σ_{k>11} 0.5^k/k <= 7e-4 at D = 32), and the gradient of the probe-averaged loss has cosine
// > 0.95 with the brute-force gradient.
func TestLogDetSeriesMatchesBruteForce(t *testing.T) {
	const m = 1000
	cfg := LogDet{Probes: 1, Terms: 10, GuardMax: 0.9, GuardWeight: 0}
	for i, d := range []int{2, 8, 32} {
		c := newLogDetCase(d, uint64(10+i), 0.5)
		want, wantGrad := c.bruteForce(t)
		vals, grad, s := c.estimate(t, m, cfg, uint64(20+i))
		mean, se := meanSE(vals)
		bound, _ := meanSE(s.bound)
		diverged, _ := meanSE(s.diverged)
		t.Logf("D=%d: estimate %.5f ± %.5f (SE), brute force %.5f, truncation bound (estimated) %.2g, gain %.3f, cosine %.4f",
			d, mean, se, want, bound, s.gain[0], cosine(grad, wantGrad))
		if diverged != 0 {
			t.Errorf("D=%d: %.0f%% of samples flagged as diverging for ||J|| = 0.5", d, 100*diverged)
		}
		if math.Abs(mean-want) > 3*se+bound {
			t.Errorf("D=%d: estimate %.5f ± %.5f, brute force %.5f: off by %.1f standard errors", d, mean, se, want, math.Abs(mean-want)/se)
		}
		if cs := cosine(grad, wantGrad); !(cs > 0.95) {
			t.Errorf("D=%d: gradient cosine %.4f with the brute-force gradient, want > 0.95", d, cs)
		}
	}
}

// TestLogDetSeriesFlagsDivergence: a map with gain well above 1 is flagged, and its loss is only
// the guard penalty (the series is not trained on).
func TestLogDetSeriesFlagsDivergence(t *testing.T) {
	c := newLogDetCase(8, 3, 3) // ||J||_2 = 3 at the point
	cfg := LogDet{Probes: 2, Terms: 3, GuardMax: 0.8, GuardWeight: 10}
	_, grad, s := c.estimate(t, 16, cfg, 5)
	for i := range s.diverged {
		if s.diverged[i] == 1 {
			pen := cfg.GuardWeight * math.Pow(math.Max(0, s.gain[i]-cfg.GuardMax), 2)
			if math.Abs(s.loss[i]-pen) > 1e-9*math.Max(1, pen) {
				t.Errorf("sample %d diverged but its loss %.6g is not the guard penalty %.6g", i, s.loss[i], pen)
			}
		} else if s.gain[i] >= 1 {
			t.Errorf("sample %d: gain %.3f >= 1 not flagged", i, s.gain[i])
		}
	}
	flagged, _ := meanSE(s.diverged)
	if flagged == 0 {
		t.Fatalf("no sample flagged for a map with gains %v", s.gain)
	}
	for _, g := range grad {
		if math.IsNaN(g) || math.IsInf(g, 0) {
			t.Fatalf("non-finite gradient %v", g)
		}
	}
}

func TestLogDetValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  LogDet
		want string
	}{
		{LogDet{Probes: 0, Terms: 3, GuardMax: 0.8}, "probes must be >= 1"},
		{LogDet{Probes: 1, Terms: 0, GuardMax: 0.8}, "terms must be >= 1"},
		{LogDet{Probes: 1, Terms: 2, GuardMax: 1}, "guard threshold"},
		{LogDet{Probes: 1, Terms: 2, GuardMax: 0.5, GuardWeight: -1}, "guard weight"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
	if err := DefaultLogDet().Validate(); err != nil {
		t.Error(err)
	}
	_ = dtypes.Float64
}
