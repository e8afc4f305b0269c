package compute

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// erfTol is the largest absolute error of erf32 against math.Erf accepted (the issue asks 2e-7).
const erfTol = 1e-7

// erfInputs: a dense sweep of [-5, 5] (past the clamp at 4), every 127th float32 bit pattern (every
// exponent, subnormals, infinities, NaNs), normal values, and the edge cases; odd count.
func erfInputs() []float32 {
	rng := rand.New(rand.NewPCG(21, 22))
	var x []float32
	const sweep = 1 << 22
	for i := range sweep {
		x = append(x, float32(10*float64(i)/sweep-5))
	}
	for b := uint64(0); b < 1<<32; b += 127 {
		x = append(x, math.Float32frombits(uint32(b)))
	}
	for range 1 << 18 {
		x = append(x, float32(2*rng.NormFloat64()))
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-30, -1e-30,
		1e-8, -1e-8, math.MaxFloat32, -math.MaxFloat32, 0.25, 0.5, 3.75, 3.92, 3.999999, 4, -4, 4.000001,
		math.Nextafter32(0.25, 0), math.Nextafter32(4, 0), 1e6, -1e6)
	return x
}

// checkErf32 compares erf32Scalar with math.Erf on x: absolute error at most erfTol, relative error
// at most 2e-7 below |x| = 1/4 (erf ≈ 2x/√π keeps its relative accuracy down to subnormals, which
// are compared in absolute terms), the sign of zero kept, NaN for NaN.
func checkErf32(t *testing.T, x []float32) (worst float64, worstX float32) {
	t.Helper()
	out := make([]float32, len(x))
	erf32Scalar(out, x)
	bad := 0
	for i, v := range x {
		got := float64(out[i])
		want := math.Erf(float64(v))
		if v != v {
			if got == got {
				t.Errorf("erf32(NaN) = %g", got)
			}
			continue
		}
		d := math.Abs(got - want)
		if d > worst {
			worst, worstX = d, v
		}
		ok := d <= erfTol
		if a := math.Abs(float64(v)); a < 0.25 && a >= 1e-37 && d > 2e-7*math.Abs(want) {
			ok = false
		}
		if v == 0 && math.Signbit(got) != math.Signbit(float64(v)) {
			ok = false
		}
		if !ok {
			if bad++; bad <= 5 {
				t.Errorf("erf32(%g) = %.9g, math.Erf %.9g (error %.3g)", v, got, want, d)
			}
		}
	}
	return worst, worstX
}

// TestErf32Accuracy: erf32 against math.Erf on about 40 million inputs (max error 5.8e-8 at x = -1.7507).
func TestErf32Accuracy(t *testing.T) {
	x := erfInputs()
	worst, worstX := checkErf32(t, x)
	t.Logf("%d inputs, max abs error %.3g at x = %g", len(x), worst, worstX)
	want := map[float32]float32{float32(math.Inf(1)): 1, float32(math.Inf(-1)): -1, 4: 1, -4: -1, 1e6: 1}
	for x, w := range want {
		out := []float32{0}
		erf32Scalar(out, []float32{x})
		if out[0] != w {
			t.Errorf("erf32(%g) = %g, want %g", x, out[0], w)
		}
	}
}

// TestErf32VectorAgrees: the AVX-512 kernel gives erf32Scalar's bits on erfInputs (every exponent,
// the clamp, infinities, NaN keeping its sign), and erf32Vector's scalar tail on lengths that are
// not multiples of 16.
func TestErf32VectorAgrees(t *testing.T) {
	if !erfVector512 {
		t.Skip("no AVX-512 on this CPU: erf32 runs erf32Scalar only")
	}
	x := erfInputs()
	want := make([]float32, len(x))
	erf32Scalar(want, x)
	for _, n := range []int{len(x), 33, 16, 5} {
		got := make([]float32, n)
		erf32Vector(got, x[len(x)-n:])
		bad := 0
		for i, g := range got {
			w := want[len(x)-n+i]
			same := math.Float32bits(g) == math.Float32bits(w)
			if g != g && w != w { // NaN: the kernel may quiet a signalling NaN; the sign stays
				same = math.Signbit(float64(g)) == math.Signbit(float64(w))
			}
			if !same {
				if bad++; bad <= 5 {
					t.Errorf("erf32Vector(%g) = %g, erf32Scalar %g", x[len(x)-n+i], g, w)
				}
			}
		}
		if bad > 0 {
			t.Errorf("n=%d: %d values differ from the scalar loop", n, bad)
		}
	}
}

// TestErf32Exhaustive checks every float32 (about a minute of one core); it runs only with
// HN_ERF_EXHAUSTIVE=1.
func TestErf32Exhaustive(t *testing.T) {
	if os.Getenv("HN_ERF_EXHAUSTIVE") == "" {
		t.Skip("set HN_ERF_EXHAUSTIVE=1 to check every float32")
	}
	const chunk = 1 << 24
	x := make([]float32, chunk)
	worst, worstX := 0.0, float32(0)
	defer func() { t.Logf("every float32: max abs error %.3g at x = %g", worst, worstX) }()
	for base := uint64(0); base < 1<<32; base += chunk {
		for i := range x {
			x[i] = math.Float32frombits(uint32(base + uint64(i)))
		}
		if w, wx := checkErf32(t, x); w > worst {
			worst, worstX = w, wx
		}
		if t.Failed() {
			return
		}
	}
}

// TestErfKernelInUse: a float32 Erf on the patched backend (below and above the two-goroutine split)
// runs erf32 and is within erfTol of SimpleGo's; a float64 one stays SimpleGo's (bit-identical).
func TestErfKernelInUse(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	rng := rand.New(rand.NewPCG(7, 8))
	fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{graph.Erf(in[0])} }
	for _, n := range []int{1, 7, 4099, erfParallelMin + 3} {
		flat := make([]float32, n)
		for i := range flat {
			flat[i] = float32(2 * rng.NormFloat64())
		}
		before := statFastOps.Load()
		got := eval(t, fast, fn, tensors.FromFlatDataAndDimensions(flat, n))[0]
		if statFastOps.Load() == before {
			t.Errorf("n=%d: the Erf did not run on erf32", n)
		}
		want := eval(t, stock, fn, tensors.FromFlatDataAndDimensions(flat, n))[0]
		if d := maxAbsDiff(got, want); d > erfTol {
			t.Errorf("n=%d: max |erf32 - SimpleGo| = %g", n, d)
		}
	}
	got := eval(t, fast, fn, randTensor(3, 4099))[0]
	want := eval(t, stock, fn, randTensor(3, 4099))[0]
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("float64 Erf entry %d = %v, SimpleGo %v", i, got[i], want[i])
		}
	}
}

// gelu is x/2·(1 + erf(x/√2)), as the ONNX importer builds it.
func gelu(x *graph.Node) *graph.Node {
	return graph.Mul(graph.MulScalar(x, 0.5), graph.AddScalar(graph.Erf(graph.MulScalar(x, 1/math.Sqrt2)), 1))
}

// TestErfGELU: GELU's value and gradient in float32 on the patched backend match stock SimpleGo's,
// and the float64 gradient matches central finite differences.
func TestErfGELU(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	fn := func(in []*graph.Node) []*graph.Node {
		x := graph.MulScalar(in[0], 3)
		y := gelu(x)
		w := graph.Sin(x) // random-looking cotangent
		loss := graph.ReduceAllSum(graph.Mul(y, w))
		return []*graph.Node{y, graph.Gradient(loss, in[0])[0]}
	}
	got := eval(t, fast, fn, toFloat32(randTensor(9, 3, 12000)))
	want := eval(t, stock, fn, toFloat32(randTensor(9, 3, 12000)))
	if d := maxAbsDiff(got[0], want[0]); d > 1e-6 {
		t.Errorf("GELU value: max |patched - SimpleGo| = %g", d)
	}
	if d := maxAbsDiff(got[1], want[1]); d > 1e-5 {
		t.Errorf("GELU gradient: max |patched - SimpleGo| = %g", d)
	}
	e, err := CheckGradient(fast, func(in []*graph.Node) *graph.Node { return gelu(graph.MulScalar(in[0], 2)) },
		[]*tensors.Tensor{randTensor(10, 5, 7)}, nil)
	if err != nil || e > gradTol {
		t.Errorf("GELU float64 gradient check: %g, %v", e, err)
	}
}

// BenchmarkErf32 times erf32Scalar on GELU-like inputs (one goroutine), beside SimpleGo's float64
// math.Erf loop.
func BenchmarkErf32(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 1<<16)
	for i := range x {
		x[i] = float32(2 * rng.NormFloat64())
	}
	out := make([]float32, len(x))
	b.Run("erf32", func(b *testing.B) {
		for range b.N {
			erf32Scalar(out, x)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
	})
	b.Run("math.Erf", func(b *testing.B) {
		for range b.N {
			for i, v := range x {
				out[i] = float32(math.Erf(float64(v)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
	})
}
