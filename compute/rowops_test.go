package compute

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowOps: the vector maximum, sum and scaling of the softmax's rows give the bits of their Go
// loops (the sum's sixteen-lane order included) on rows of every tail length, with NaN, infinities
// and signed zeros where they matter, and the sum is within float64 rounding of a compensated sum.
func TestRowOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 15, 16, 17, 31, 48, 77, 4096} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64()*50 + 3)
		}
		// The maximum, placed in the vector part and in the tail.
		for _, at := range []int{0, n / 2, n - 1} {
			y := append([]float32(nil), x...)
			y[at] = 1e6
			if got := maxRow32(y); got != 1e6 {
				t.Errorf("n=%d: max with 1e6 at %d = %g", n, at, got)
			}
			y[at] = float32(math.NaN())
			if got := maxRow32(y); got == got {
				t.Errorf("n=%d: max with NaN at %d = %g, want NaN", n, at, got)
			}
		}
		want, _ := maxNaN32Scalar(x)
		if got := maxRow32(x); got != want {
			t.Errorf("n=%d: max %g, scalar loop %g", n, got, want)
		}
		neg := make([]float32, n)
		for i := range neg {
			neg[i] = float32(math.Inf(-1))
		}
		if got := maxRow32(neg); !math.IsInf(float64(got), -1) {
			t.Errorf("n=%d: max of -Inf = %g", n, got)
		}
		// The sum: the vector kernel's bits are those of the lanes in Go.
		v := n &^ 15
		s := sumRow32(x)
		ref := 0.0
		if v > 0 {
			ref = sumLanes32(x[:v])
		}
		for _, e := range x[v:] {
			ref += float64(e)
		}
		if math.Float64bits(s) != math.Float64bits(ref) {
			t.Errorf("n=%d: sum %.17g, the sixteen lanes in Go give %.17g", n, s, ref)
		}
		var exact, comp float64 // Kahan
		for _, e := range x {
			y := float64(e) - comp
			tt := exact + y
			comp = (tt - exact) - y
			exact = tt
		}
		if math.Abs(s-exact) > 1e-12*(math.Abs(exact)+float64(n)) {
			t.Errorf("n=%d: sum %.17g, compensated %.17g", n, s, exact)
		}
		// The scaling.
		got := append([]float32(nil), x...)
		scaleRow32(got, 0.37)
		for i, e := range x {
			if w := e * 0.37; math.Float32bits(got[i]) != math.Float32bits(w) {
				t.Fatalf("n=%d: x[%d]·0.37 = %g, want %g", n, i, got[i], w)
			}
		}
	}
	if m := maxRow32([]float32{0, float32(math.Copysign(0, -1))}); m != 0 {
		t.Errorf("max of ±0 = %g", m)
	}
	t.Logf("AVX-512 row kernels: %v", logisticVector512)
}
