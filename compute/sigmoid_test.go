package compute

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// stockSigmoid32 is SimpleGo's logistic on float32 (execLogisticGeneric): float64 math.Exp, branch
// on the sign, rounded to float32.
func stockSigmoid32(out, x []float32) {
	for i, v := range x {
		if v >= 0 {
			out[i] = float32(1 / (1 + math.Exp(-float64(v))))
		} else {
			e := math.Exp(float64(v))
			out[i] = float32(e / (1 + e))
		}
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

// TestSigmoidMatchesStock: sigmoid32 (the AVX-512 or AVX2 kernel where the CPU has it), each vector
// kernel on its own, and the scalar version
// give SimpleGo's float32 logistic bit for bit (NaN for NaN) on about 4 million inputs.
func TestSigmoidMatchesStock(t *testing.T) {
	x := sigmoidInputs()
	want := make([]float32, len(x))
	stockSigmoid32(want, x)
	kernels := []struct {
		name string
		fn   func(out, x []float32)
	}{{"sigmoid32", sigmoid32}, {"scalar", sigmoid32Scalar}}
	vector := func(kernel func(out, x []float32), width int) func(out, x []float32) {
		return func(out, x []float32) {
			v := len(x) / width * width
			kernel(out[:v], x[:v])
			sigmoid32Scalar(out[v:], x[v:])
		}
	}
	if sigmoidVector {
		kernels = append(kernels, struct {
			name string
			fn   func(out, x []float32)
		}{"avx2", vector(sigmoid32AVX2, 4)})
	}
	if sigmoidVector512 {
		kernels = append(kernels, struct {
			name string
			fn   func(out, x []float32)
		}{"avx512", vector(sigmoid32AVX512, 8)})
	}
	for _, k := range kernels {
		got := make([]float32, len(x))
		k.fn(got, x)
		bad := 0
		for i := range x {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
				if bad++; bad <= 5 {
					t.Errorf("%s(%g) = %g (%#x), SimpleGo gives %g (%#x)", k.name, x[i], got[i],
						math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d values differ", k.name, bad, len(x))
		}
	}
	t.Logf("AVX2 kernel: %v, AVX-512 kernel: %v", sigmoidVector, sigmoidVector512)
}

// TestLogisticKernelInUse: a float32 Logistic on the patched backend of every size (below and above
// the two-goroutine split, with a scalar tail) runs sigmoid32 and equals SimpleGo's.
func TestLogisticKernelInUse(t *testing.T) {
	fast := testBackend(t)
	stock, err := NewBackend(StockName)
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Finalize()
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
			t.Errorf("n=%d: the Logistic did not run on sigmoid32", n)
		}
		want := eval(t, stock, fn, tensors.FromFlatDataAndDimensions(flat, n))[0]
		if d := maxAbsDiff(got, want); d != 0 {
			t.Errorf("n=%d: max difference %g from SimpleGo's logistic", n, d)
		}
	}
}

func BenchmarkSigmoid32(b *testing.B) {
	x := sigmoidInputs()[:1<<16]
	out := make([]float32, len(x))
	for _, k := range []struct {
		name string
		fn   func(out, x []float32)
	}{{"stock", stockSigmoid32}, {"scalar", sigmoid32Scalar}, {"sigmoid32", sigmoid32}} {
		b.Run(k.name, func(b *testing.B) {
			for b.Loop() {
				k.fn(out, x)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
		})
	}
}
