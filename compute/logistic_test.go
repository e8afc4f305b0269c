package compute

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// ulpDiff is the distance in float32 units in the last place between a and b (same sign assumed by
// the callers' inputs; 0 for two NaNs).
func ulpDiff(a, b float32) int64 {
	if a != a && b != b {
		return 0
	}
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if d := ia - ib; d >= 0 {
		return d
	} else {
		return -d
	}
}

// sigmoidInputs: a dense sweep of [-120, 120] (past both saturation points), normal values at three
// scales, uniformly random bit patterns (every exponent, subnormals, infinities and NaNs), and the
// edge cases; an odd count, so that the vector kernel's scalar tail runs too.
func sigmoidInputs() []float32 {
	rng := rand.New(rand.NewPCG(11, 12))
	var x []float32
	const sweep = 1 << 21
	for i := range sweep {
		x = append(x, float32(240*float64(i)/sweep-120))
	}
	for _, scale := range []float64{1, 4, 30} {
		for range 1 << 19 {
			x = append(x, float32(scale*rng.NormFloat64()))
		}
	}
	for range 1 << 19 {
		x = append(x, math.Float32frombits(rng.Uint32()))
	}
	x = append(x, 0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, math.MaxFloat32,
		-math.MaxFloat32, 103.97, -103.97, -104, 88.7, -88.7, 16.6, -16.6, 110, -110, 110.5, -110.5)
	return x
}

// TestLogisticKernelInUse: a float32 Logistic on the patched backend of every size (below and above
// the two-goroutine split, with vector tails) runs logistic32f and is within 3 float32 units in the
// last place of SimpleGo's.
func TestLogisticKernelInUse(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 7, 4099, logisticParallelMin + 3} {
		flat := make([]float32, n)
		for i := range flat {
			flat[i] = float32(8 * rng.NormFloat64())
		}
		fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{graph.Logistic(in[0])} }
		before := statFastOps.Load()
		got := eval(t, fast, fn, tensors.FromFlatDataAndDimensions(flat, n))[0]
		if statFastOps.Load() == before {
			t.Errorf("n=%d: the Logistic did not run on logistic32f", n)
		}
		want := eval(t, stock, fn, tensors.FromFlatDataAndDimensions(flat, n))[0]
		for i := range want {
			if d := ulpDiff(float32(got[i]), float32(want[i])); d > 3 {
				t.Errorf("n=%d: entry %d = %g, SimpleGo gives %g (%d ulp)", n, i, got[i], want[i], d)
				break
			}
		}
	}
}

// TestLogisticKernelsAgree: the AVX-512 and AVX2 kernels give the scalar loop's bits on about 4
// million inputs (every exponent, subnormals, infinities, NaNs, both saturation points).
func TestLogisticKernelsAgree(t *testing.T) {
	x := sigmoidInputs()
	want := make([]float32, len(x))
	logistic32Scalar(want, x)
	vector := func(kernel func(out, x []float32), width int) func(out, x []float32) {
		return func(out, x []float32) {
			v := len(x) / width * width
			kernel(out[:v], x[:v])
			logistic32Scalar(out[v:], x[v:])
		}
	}
	kernels := map[string]func(out, x []float32){"logistic32f": logistic32f}
	if logisticVector {
		kernels["avx2"] = vector(logistic32AVX2, 8)
	}
	if logisticVector512 {
		kernels["avx512"] = vector(logistic32AVX512, 16)
	}
	for name, fn := range kernels {
		got := make([]float32, len(x))
		fn(got, x)
		bad := 0
		for i := range x {
			if ulpDiff(got[i], want[i]) != 0 {
				if bad++; bad <= 5 {
					t.Errorf("%s(%g) = %g, scalar gives %g", name, x[i], got[i], want[i])
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d values differ from the scalar loop", name, bad, len(x))
		}
	}
	t.Logf("AVX2 kernel: %v, AVX-512 kernel: %v", logisticVector, logisticVector512)
}

// TestLogisticAccuracy bounds logistic32f's error against the float64 logistic: at most 3 units in
// the last place where the result is a normal float32, at most 2 subnormal units below that; NaN
// for NaN, 0.5 at ±0, 1 and 0 at ±Inf.
func TestLogisticAccuracy(t *testing.T) {
	x := sigmoidInputs()
	got := make([]float32, len(x))
	logistic32f(got, x)
	worst := int64(0)
	var worstX float32
	for i, v := range x {
		exact := 1 / (1 + math.Exp(-float64(v)))
		if v != v {
			if got[i] == got[i] {
				t.Fatalf("σ(NaN) = %g", got[i])
			}
			continue
		}
		w := float32(exact)
		if math.Abs(exact) < 0x1p-126 { // subnormal result: absolute bound
			if d := math.Abs(float64(got[i]) - exact); d > 2*0x1p-149 {
				t.Fatalf("σ(%g) = %g, exact %g (subnormal, off by %g)", v, got[i], exact, d)
			}
			continue
		}
		if d := ulpDiff(got[i], w); d > worst {
			worst, worstX = d, v
		}
	}
	if worst > 3 {
		t.Errorf("worst error %d ulp at x = %g", worst, worstX)
	}
	for _, c := range []struct{ x, want float32 }{{0, 0.5}, {float32(math.Copysign(0, -1)), 0.5},
		{float32(math.Inf(1)), 1}, {float32(math.Inf(-1)), 0}} {
		out := []float32{0}
		logistic32f(out, []float32{c.x})
		if out[0] != c.want {
			t.Errorf("σ(%g) = %g, want %g", c.x, out[0], c.want)
		}
	}
	t.Logf("worst error: %d ulp (at %g)", worst, worstX)
}

// BenchmarkLogistic32f times the kernels on activation-like values (normal, standard deviation 4;
// results below the smallest normal float32, from x < -87, take the CPU's slow subnormal path).
func BenchmarkLogistic32f(b *testing.B) {
	x := make([]float32, 1<<16)
	for i := range x {
		x[i] = float32(4 * math.Sin(float64(i)*0.7) * math.Sqrt(float64(i%17)))
	}
	out := make([]float32, len(x))
	for _, k := range []struct {
		name string
		fn   func(out, x []float32)
	}{{"logistic32f", logistic32f}, {"scalar", logistic32Scalar}} {
		b.Run(k.name, func(b *testing.B) {
			for b.Loop() {
				k.fn(out, x)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
		})
	}
}
