package compute

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// softmaxCases are softmax graphs as GoMLX (and the ONNX importer's Softmax) build them, with the
// number of fused nodes each must build.
var softmaxCases = []struct {
	name  string
	fn    func(in []*graph.Node) *graph.Node
	dims  [][]int
	fused int
}{
	{"last-axis", func(in []*graph.Node) *graph.Node { return graph.Softmax(in[0], -1) }, [][]int{{2, 3, 7}}, 1},
	{"two-axes", func(in []*graph.Node) *graph.Node { return graph.Softmax(in[0], 1, 2) }, [][]int{{2, 3, 4}}, 1},
	{"large-rows-times-w", func(in []*graph.Node) *graph.Node {
		return graph.Mul(graph.Softmax(in[0], -1), in[1])
	}, [][]int{{4, 8, 2100}, {4, 8, 2100}}, 1},
	{"scaled-scores", func(in []*graph.Node) *graph.Node { return graph.Softmax(graph.MulScalar(in[0], 0.125), -1) }, [][]int{{2, 5, 33}}, 1},
	{"scale-on-left", func(in []*graph.Node) *graph.Node {
		return graph.Softmax(graph.Mul(graph.Scalar(in[0].Graph(), in[0].DType(), 0.3), in[0]), -1)
	}, [][]int{{3, 40}}, 1},
	{"negative-scale", func(in []*graph.Node) *graph.Node { return graph.Softmax(graph.MulScalar(in[0], -0.5), -1) }, [][]int{{3, 17}}, 1},
	{"not-trailing", func(in []*graph.Node) *graph.Node { return graph.Softmax(in[0], 0) }, [][]int{{3, 4}}, 0},
	{"shifted-by-other", func(in []*graph.Node) *graph.Node {
		mx := graph.StopGradient(graph.ReduceAndKeep(in[0], graph.ReduceMax, -1))
		e := graph.Exp(graph.Sub(in[1], mx))
		return graph.Div(e, graph.ReduceAndKeep(e, graph.ReduceSum, -1))
	}, [][]int{{3, 4}, {3, 4}}, 0},
}

// TestSoftmaxFused: each softmax graph gives, on the patched backend, SimpleGo's values within 1e-6
// of the output's largest entry in float32 (1e-14 in float64), building the fused nodes it should;
// its gradients match central differences of the fused forward (within 1e-5) and SimpleGo's gradients.
func TestSoftmaxFused(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	for _, c := range softmaxCases {
		for _, f32 := range []bool{true, false} {
			before := statSoftmaxFused.Load()
			fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(in)} }
			got := eval(t, fast, fn, normInputs(c.dims, f32)...)
			if n := int(statSoftmaxFused.Load() - before); n != c.fused {
				t.Errorf("%s float32 %v: %d fused softmax nodes built, want %d", c.name, f32, n, c.fused)
			}
			want := eval(t, stock, fn, normInputs(c.dims, f32)...)
			tol := 1e-14
			if f32 {
				tol = 1e-6
			}
			if e := maxRelDiff(got[0], want[0]); e > tol {
				t.Errorf("%s float32 %v: differs from SimpleGo by %.3g of the largest entry (tolerance %g)", c.name, f32, e, tol)
			}
		}
		e, err := CheckGradient(fast, c.fn, normInputs(c.dims, false), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// 1e-5: central differences of SimpleGo's own forward are 1.6e-6 off on the 2100-entry rows.
		if e > 1e-5 {
			t.Errorf("%s: gradient differs from central differences by %.3g", c.name, e)
		}
		grad := func(in []*graph.Node) []*graph.Node {
			return graph.Gradient(graph.ReduceAllSum(graph.Mul(c.fn(in), graph.Sin(c.fn(in)))), in...)
		}
		got := eval(t, fast, grad, normInputs(c.dims, false)...)
		want := eval(t, stock, grad, normInputs(c.dims, false)...)
		for k := range want {
			if e := maxRelDiff(got[k], want[k]); e > 1e-10 {
				t.Errorf("%s: gradient %d differs from SimpleGo's by %.3g", c.name, k, e)
			}
		}
	}
}

// TestExpNeg32: e^-a within 4 ulps of float64's exponential over [0, 87] (normal results), 0 far
// beyond, NaN for NaN.
func TestExpNeg32(t *testing.T) {
	worst := 0.0
	for i := 0; i <= 2000000; i++ {
		a := float32(i) * 87.0 / 2000000
		got, want := float64(expNeg32(a)), math.Exp(-float64(a))
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1)))) - float64(float32(want))
		worst = max(worst, math.Abs(got-want)/ulp)
	}
	if worst > 4 {
		t.Errorf("expNeg32: %.2f ulps from math.Exp", worst)
	}
	if expNeg32(200) != 0 || !math.IsNaN(float64(expNeg32(float32(math.NaN())))) || expNeg32(0) != 1 {
		t.Errorf("expNeg32: 200 -> %g, NaN -> %g, 0 -> %g", expNeg32(200), expNeg32(float32(math.NaN())), expNeg32(0))
	}
	t.Logf("worst %.2f ulps", worst)
}

// TestExpNegShiftKernelsAgree: the AVX-512 and AVX2 kernels of expNegShift32 give the scalar loop's
// bits on a sweep of m - x from 0 to past the clamp, with infinities, NaN and a row that is not a
// multiple of the vector width, at scales c that round their products and at c = 1, where the scalar
// loop is expNeg32(m - x).
func TestExpNegShiftKernelsAgree(t *testing.T) {
	const m = float32(3.5)
	var x []float32
	for i := 0; i < 300000; i++ {
		x = append(x, m-float32(i)*120/300000) // m - x from 0 to 120
	}
	inf := float32(math.Inf(1))
	x = append(x, -inf, m, float32(math.NaN()), m-104, m-103.99, m-1e-30, -1e30, 1e-40, m)
	type kernel = func(out, x []float32, m, c float32)
	kernels := map[string]kernel{"expNegShift32": expNegShift32}
	vector := func(k kernel, width int) kernel {
		return func(out, x []float32, m, c float32) {
			if v := len(x) / width * width; v > 0 { // the kernels need at least one vector
				k(out[:v], x[:v], m, c)
				out, x = out[v:], x[v:]
			}
			expNegShift32Scalar(out, x, m, c)
		}
	}
	if logisticVector {
		kernels["avx2"] = vector(expNegShift32AVX2, 8)
	}
	if logisticVector512 {
		kernels["avx512"] = vector(expNegShift32AVX512, 16)
	}
	// c = 1 reads x as it is; 1/√d and 0.3 round their products (0.3·x is not exact).
	for _, c := range []float32{1, 0.125, 0.3, float32(1 / math.Sqrt(40))} {
		want := make([]float32, len(x))
		expNegShift32Scalar(want, x, m*c, c)
		for name, fn := range kernels {
			for _, n := range []int{len(x), 77, 15, 1} { // tails of every width
				got := make([]float32, n)
				fn(got, x[len(x)-n:], m*c, c)
				bad := 0
				for i, g := range got {
					w := want[len(x)-n+i]
					if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
						if bad++; bad <= 5 {
							t.Errorf("%s, c = %g: e^-(m - c·%g) = %g, the scalar loop gives %g", name, c, x[len(x)-n+i], g, w)
						}
					}
				}
			}
		}
	}
	want := make([]float32, len(x))
	expNegShift32Scalar(want, x, m, 1)
	for i, v := range x[:1000] { // c = 1 is the unscaled exponential
		if w := expNeg32(m - v); math.Float32bits(want[i]) != math.Float32bits(w) {
			t.Fatalf("c = 1: e^-(m - %g) = %g, expNeg32 gives %g", v, want[i], w)
		}
	}
	if v := want[len(x)-9]; v != 0 { // m - (-Inf) = +Inf
		t.Errorf("e^-(m + Inf) = %g, want 0", v)
	}
	if v := want[len(x)-7]; v == v {
		t.Errorf("e^-(m - NaN) = %g, want NaN", v)
	}
	t.Logf("AVX2 kernel: %v, AVX-512 kernel: %v", logisticVector, logisticVector512)
}

// TestSoftmaxScaleFolded: softmax(c·s) for a positive scalar constant c reads s in the fused node (the
// Mul is then unused) and gives the bits of the fused softmax of the Mul's own output, in float32 and
// float64; a negative c is left to the Mul.
func TestSoftmaxScaleFolded(t *testing.T) {
	fast := testBackend(t)
	dims := []int{3, 4, 70}
	for _, f32 := range []bool{true, false} {
		for _, c := range []float64{0.125, 1 / math.Sqrt(40), 1, -0.5} {
			x := normInputs([][]int{dims}, f32)[0]
			before := statSoftmaxScaled.Load()
			got := eval(t, fast, func(in []*graph.Node) []*graph.Node {
				return []*graph.Node{graph.Softmax(graph.MulScalar(in[0], c), -1)}
			}, x)[0]
			wantFolded := int64(1)
			if c < 0 {
				wantFolded = 0
			}
			if n := statSoftmaxScaled.Load() - before; n != wantFolded {
				t.Errorf("float32 %v, c = %g: %d softmax nodes read the unscaled scores, want %d", f32, c, n, wantFolded)
			}
			prod := eval(t, fast, func(in []*graph.Node) []*graph.Node {
				return []*graph.Node{graph.MulScalar(in[0], c)}
			}, x)[0]
			var y *tensors.Tensor
			if f32 {
				p32 := make([]float32, len(prod))
				for i, v := range prod {
					p32[i] = float32(v)
				}
				y = tensors.FromFlatDataAndDimensions(p32, dims...)
			} else {
				y = tensors.FromFlatDataAndDimensions(prod, dims...)
			}
			want := eval(t, fast, func(in []*graph.Node) []*graph.Node {
				return []*graph.Node{graph.Softmax(in[0], -1)}
			}, y)[0]
			for i := range want {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Fatalf("float32 %v, c = %g: entry %d is %.17g, the softmax of the product gives %.17g", f32, c, i, got[i], want[i])
				}
			}
		}
	}
}
