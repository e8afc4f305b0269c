package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

// gaussian draws n samples from N(mu, diag(sd^2)).
func gaussian(r *rand.Rand, n int, mu, sd []float64) [][]float64 {
	x := make([][]float64, n)
	for i := range x {
		x[i] = make([]float64, len(mu))
		for j := range mu {
			x[i][j] = mu[j] + sd[j]*r.NormFloat64()
		}
	}
	return x
}

func TestFrechetDistanceClosedForm(t *testing.T) {
	// For diagonal Gaussians FD = |mu_a-mu_b|^2 + sum_j (sd_a,j - sd_b,j)^2.
	r := rand.New(rand.NewPCG(1, 2))
	muA, sdA := []float64{0, 1, -1}, []float64{1, 2, 0.5}
	muB, sdB := []float64{1, 1, 0}, []float64{2, 1, 0.5}
	a := gaussian(r, 40000, muA, sdA)
	b := gaussian(r, 40000, muB, sdB)
	got, err := FrechetDistance(a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := 0.0
	for j := range muA {
		want += (muA[j]-muB[j])*(muA[j]-muB[j]) + (sdA[j]-sdB[j])*(sdA[j]-sdB[j])
	}
	if math.Abs(got-want) > 0.05*want {
		t.Errorf("FD = %.4f, closed form %.4f", got, want)
	}
	self, _ := FrechetDistance(a, a)
	if self > 1e-8 {
		t.Errorf("FD(a, a) = %g, want 0", self)
	}
}

func TestFrechetDistanceNonDiagonal(t *testing.T) {
	// Rotating a sample by 90 degrees swaps the axes' variances: FD = 2 (sd1 - sd2)^2 + 0 mean term.
	r := rand.New(rand.NewPCG(3, 4))
	a := gaussian(r, 40000, []float64{0, 0}, []float64{3, 1})
	b := make([][]float64, len(a))
	for i, p := range a {
		b[i] = []float64{-p[1], p[0]}
	}
	got, _ := FrechetDistance(a, b)
	if want := 2 * 4.0; math.Abs(got-want) > 0.05*want {
		t.Errorf("FD = %.4f, want %.4f", got, want)
	}
}

func TestErrors(t *testing.T) {
	if _, err := FrechetDistance([][]float64{{1}}, [][]float64{{1}, {2}}); err == nil {
		t.Error("FD with one sample should fail")
	}
	if _, err := FrechetDistance([][]float64{{1}, {2}}, [][]float64{{1, 2}, {2, 3}}); err == nil {
		t.Error("FD with mismatched dims should fail")
	}
}

func TestDiversityAndAccuracy(t *testing.T) {
	if d := Diversity([][]float64{{0, 0}, {3, 4}, {0, 0}}); math.Abs(d-10.0/3) > 1e-12 {
		t.Errorf("Diversity = %g, want 10/3", d)
	}
	if d := Diversity([][]float64{{1, 1}, {1, 1}}); d != 0 {
		t.Errorf("Diversity of identical rows = %g", d)
	}
	acc := Accuracy([][]float64{{0, 1}, {2, 1}, {0, 5}}, []int{1, 1, 1})
	if math.Abs(acc-2.0/3) > 1e-12 {
		t.Errorf("Accuracy = %g, want 2/3", acc)
	}
}
