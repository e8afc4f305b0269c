package tilt

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestW1: the distance between a sample and its shift by c is |c|; between {0} and {0, 1} it is
// 1/2; it is symmetric and 0 for the same sample.
func TestW1(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	a := make([]float64, 300)
	for i := range a {
		a[i] = r.NormFloat64()
	}
	b := make([]float64, len(a))
	for i := range a {
		b[i] = a[i] + 0.7
	}
	for _, c := range []struct {
		x, y []float64
		want float64
	}{{a, b, 0.7}, {b, a, 0.7}, {a, a, 0}, {[]float64{0}, []float64{0, 1}, 0.5}, {[]float64{0, math.NaN()}, []float64{2}, 2}} {
		if got := W1(c.x, c.y); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("W1 = %g, want %g", got, c.want)
		}
	}
	if !math.IsNaN(W1(nil, a)) {
		t.Error("W1 with an empty side is not NaN")
	}
}

// TestMMD: two samples of one law are closer than a sample and a shifted law's, and a set is at
// distance 0 from itself; bad shapes are errors.
func TestMMD(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	draw := func(n int, shift float32) []float32 {
		out := make([]float32, n*4)
		for i := range out {
			out[i] = float32(r.NormFloat64()) + shift
		}
		return out
	}
	x, y, z := draw(200, 0), draw(200, 0), draw(200, 1)
	same, _ := MMD(x, y, 4)
	shifted, _ := MMD(x, z, 4)
	self, _ := MMD(x, x, 4)
	if !(shifted > 3*same) || self > 1e-6 {
		t.Errorf("MMD same law %g, shifted law %g, self %g; want shifted >> same and self 0", same, shifted, self)
	}
	if _, err := MMD(x, y[:5], 4); err == nil {
		t.Error("rows of different sizes accepted")
	}
}
