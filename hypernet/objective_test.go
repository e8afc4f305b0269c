package hypernet

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

func eval(t *testing.T, b backends.Backend, fn func(g *Graph) *Node) []float64 {
	t.Helper()
	e, err := NewExec(b, fn)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec()
	if err != nil {
		t.Fatal(err)
	}
	switch out[0].DType().String() {
	case "Float64":
		return tensors.MustCopyFlatData[float64](out[0])
	}
	f := tensors.MustCopyFlatData[float32](out[0])
	res := make([]float64, len(f))
	for i, v := range f {
		res[i] = float64(v)
	}
	return res
}

func near(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol {
			t.Errorf("%s[%d] = %.7g, want %.7g", what, i, got[i], want[i])
		}
	}
}

var (
	testEps = [][]float32{{0.5, 0}, {1, 1}}
	testF   = [][]float32{{1, 2}, {0, -1}}
	testX   = [][]float32{{1, 1}, {2, 0}}
)

// TestRegularizersHandComputed checks each term against values computed by hand.
func TestRegularizersHandComputed(t *testing.T) {
	b := testutil.Backend(t)
	near(t, "KLSurrogate", eval(t, b, func(g *Graph) *Node { return KLSurrogate(Const(g, testF)) }), []float64{2.5, 0.5}, 1e-6)
	near(t, "MeanSquare", eval(t, b, func(g *Graph) *Node { return MeanSquare(Const(g, testF)) }), []float64{2.5, 0.5}, 1e-6)
	// eps + f = [[1.5, 2], [1, 0]]: norms 2.5 and 1; D = 2.
	near(t, "ChiPrior", eval(t, b, func(g *Graph) *Node { return ChiPrior(Add(Const(g, testEps), Const(g, testF))) }),
		[]float64{0.5*6.25 - math.Log(2.5), 0.5}, 1e-5)
	// Rank-3 noise [B, 2, 1] is flattened per sample.
	near(t, "ChiPrior rank 3", eval(t, b, func(g *Graph) *Node {
		return ChiPrior(Reshape(Add(Const(g, testEps), Const(g, testF)), 2, 2, 1))
	}), []float64{0.5*6.25 - math.Log(2.5), 0.5}, 1e-5)
}

// TestObjectiveTerms checks the per-sample loss of every regularizer for r(x) = x0 + 2 x1.
func TestObjectiveTerms(t *testing.T) {
	b := testutil.Backend(t)
	reward := linearReward(1, 2) // r = [3, 2] on testX
	chi := []float64{0.5*6.25 - math.Log(2.5), 0.5}
	for _, c := range []struct {
		obj  Objective
		want []float64
	}{
		{Objective{Reward: reward, Reg: RegKL, Beta: 2}, []float64{2.5 - 1.5, 0.5 - 1}},
		{Objective{Reward: reward, Reg: RegMeanSquare, Weight: 0.5}, []float64{0.5*2.5 - 3, 0.5*0.5 - 2}},
		{Objective{Reward: reward, Reg: RegChi, Weight: 0.01}, []float64{0.01*chi[0] - 3, 0.01*chi[1] - 2}},
		{Objective{Reward: reward, Reg: RegNone}, []float64{-3, -2}},
	} {
		if err := c.obj.Validate([]int{2}); err != nil {
			t.Fatal(err)
		}
		got := eval(t, b, func(g *Graph) *Node {
			loss, _, _ := c.obj.Terms(context.New(), Const(g, testEps), Const(g, testF), Const(g, testX), Const(g, []int32{0, 0}))
			return loss
		})
		near(t, string(c.obj.Reg), got, c.want, 1e-5)
	}
}

// TestMeanSquareMapping checks the documented mapping: the reference loss w*mean(f^2) - r equals
// beta times the paper's loss 1/2||f||^2 - r/beta for beta = 2w/D.
func TestMeanSquareMapping(t *testing.T) {
	b := testutil.Backend(t)
	w := 0.5
	d := 2.0
	beta := 2 * w / d
	reward := linearReward(1, 2)
	loss := func(o Objective) []float64 {
		return eval(t, b, func(g *Graph) *Node {
			l, _, _ := o.Terms(context.New(), Const(g, testEps), Const(g, testF), Const(g, testX), Const(g, []int32{0, 0}))
			return l
		})
	}
	ref := loss(Objective{Reward: reward, Reg: RegMeanSquare, Weight: w})
	paper := loss(Objective{Reward: reward, Reg: RegKL, Beta: beta})
	for i := range paper {
		paper[i] *= beta
	}
	near(t, "reference vs beta*paper", ref, paper, 1e-5)
}

// TestExactKLLinear: for f(eps) = eps M the Jacobian is M^T, so log|det(I + J)| = log|det(I + M)|.
func TestExactKLLinear(t *testing.T) {
	b := testutil.Backend(t)
	m := [][]float32{{0.5, 0.2}, {-0.1, 0.3}}
	logdet := math.Log(1.5*1.3 - 0.2*(-0.1))
	got := eval(t, b, func(g *Graph) *Node {
		eps := Const(g, testEps)
		return ExactKL(eps, Dot(eps, Const(g, m)))
	})
	// row 1: eps+f = [0.75, 0.1]; row 2: eps+f = [1.4, 1.5].
	want := []float64{0.5*(0.75*0.75+0.01) - 0.125 - logdet, 0.5*(1.96+2.25) - 1 - logdet}
	near(t, "ExactKL", got, want, 1e-5)
}

// TestExactKLUnbiased: the mean of the per-sample estimate over eps ~ N(0, I) is the exact
// KL(N(0, A A^T) || N(0, I)) = 1/2 (tr(A A^T) - 2 - log det(A A^T)) for T(eps) = A eps, A = I + M^T.
func TestExactKLUnbiased(t *testing.T) {
	b := testutil.Backend(t)
	m := [][]float64{{0.5, 0.2}, {-0.1, 0.3}}
	a := [2][2]float64{{1 + m[0][0], m[1][0]}, {m[0][1], 1 + m[1][1]}}
	tr := a[0][0]*a[0][0] + a[0][1]*a[0][1] + a[1][0]*a[1][0] + a[1][1]*a[1][1]
	det := a[0][0]*a[1][1] - a[0][1]*a[1][0]
	exact := 0.5 * (tr - 2 - math.Log(det*det))
	const n = 40000
	eps := NoiseTensor(3, 7, n, []int{2})
	e, err := NewExec(b, func(x *Node) *Node {
		x = ConvertDType(x, dtypes.Float64)
		return ReduceAllMean(ExactKL(x, Dot(x, Const(x.Graph(), m))))
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(eps)
	if err != nil {
		t.Fatal(err)
	}
	got := out[0].Value().(float64)
	// Standard error of the mean is about 0.005 here.
	if math.Abs(got-exact) > 0.02 {
		t.Errorf("mean exact-KL estimate %.4f, closed form %.4f", got, exact)
	}
}

// tanhNet is f(eps) = tanh(eps W1 + b1) W2, a nonlinear residual built from its weights.
func tanhNet(eps, w1, b1, w2 *Node) *Node {
	return Dot(Tanh(Add(Dot(eps, w1), ExpandAxes(b1, 0))), w2)
}

var (
	w1 = [][]float64{{0.8, -0.5, 0.3}, {0.2, 0.9, -0.7}}
	b1 = []float64{0.1, -0.2, 0.05}
	w2 = [][]float64{{0.6, -0.4}, {0.3, 0.5}, {-0.9, 0.2}}
)

// TestLogDetAgainstFiniteDifferences compares LogDetJacobian (reverse mode, per row) with
// log|det(I + J)| for J from central finite differences, in float64.
func TestLogDetAgainstFiniteDifferences(t *testing.T) {
	b := testutil.Backend(t)
	pts := [][]float64{{0.3, -1.2}, {1.5, 0.4}, {-0.7, -0.1}}
	got := eval(t, b, func(g *Graph) *Node {
		eps := Const(g, pts)
		return LogDetJacobian(eps, tanhNet(eps, Const(g, w1), Const(g, b1), Const(g, w2)))
	})
	fEval, err := NewExec(b, func(eps *Node) *Node {
		g := eps.Graph()
		return tanhNet(eps, Const(g, w1), Const(g, b1), Const(g, w2))
	})
	if err != nil {
		t.Fatal(err)
	}
	f := func(p []float64) []float64 {
		out, err := fEval.Exec([][]float64{p})
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float64](out[0])
	}
	const h = 1e-6
	for k, p := range pts {
		var jac [2][2]float64
		for j := range 2 {
			plus, minus := append([]float64(nil), p...), append([]float64(nil), p...)
			plus[j] += h
			minus[j] -= h
			fp, fm := f(plus), f(minus)
			for i := range 2 {
				jac[i][j] = (fp[i] - fm[i]) / (2 * h)
			}
		}
		want := math.Log(math.Abs((1+jac[0][0])*(1+jac[1][1]) - jac[0][1]*jac[1][0]))
		if math.Abs(got[k]-want) > 1e-7 {
			t.Errorf("point %v: LogDetJacobian %.10f, finite differences %.10f", p, got[k], want)
		}
	}
}

// TestExactKLGradient checks the exact KL's gradient with respect to the network weights, which
// runs reverse mode through the Jacobian (second order), against finite differences.
func TestExactKLGradient(t *testing.T) {
	b := testutil.Backend(t)
	inputs := []*tensors.Tensor{
		tensors.FromValue([][]float64{{0.3, -1.2}, {1.5, 0.4}, {-0.7, -0.1}}),
		tensors.FromValue(w1), tensors.FromValue(b1), tensors.FromValue(w2),
	}
	maxErr, err := compute.CheckGradient(b, func(in []*Node) *Node {
		return ReduceAllSum(ExactKL(in[0], tanhNet(in[0], in[1], in[2], in[3])))
	}, inputs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if maxErr > 1e-5 {
		t.Errorf("exact-KL gradient relative error %.3g > 1e-5", maxErr)
	}
}

func TestObjectiveValidate(t *testing.T) {
	r := linearReward(1, 0)
	for _, c := range []struct {
		obj   Objective
		shape []int
		want  string
	}{
		{Objective{Reward: r, Reg: RegKL, Beta: 0}, []int{2}, "beta must be in"},
		{Objective{Reward: r, Reg: RegKL, Beta: -1}, []int{2}, "beta must be in"},
		{Objective{Reward: r, Reg: RegKL, Beta: math.NaN()}, []int{2}, "beta must be a finite number"},
		{Objective{Reward: r, Reg: RegMeanSquare, Weight: math.NaN()}, []int{2}, "weight must be a finite number"},
		{Objective{Reward: r, Reg: RegExactKL, Beta: 1}, []int{7, 7, 4}, "1 or 2 elements"},
		{Objective{Reward: r, Reg: RegMeanSquare, Weight: -1}, []int{2}, "weight must be in [0,"},
		{Objective{Reward: r, Reg: "l3", Beta: 1}, []int{2}, "allowed: kl, exact-kl, logdet, mean-sq, chi, none"},
		{Objective{Reg: RegKL, Beta: 1}, []int{2}, "no reward"},
	} {
		err := c.obj.Validate(c.shape)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error mentioning %q", c.obj, err, c.want)
		}
	}
	if _, err := ParseRegularizer("exact-kl"); err != nil {
		t.Error(err)
	}
}
