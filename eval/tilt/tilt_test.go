package tilt

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// pool builds a resampler over a hand-made pool: prompts 0 and 1 hold the same 4 images whose pixels all equal
// their index i (so a drawn image says which one it is) with rewards r_i = log(i+1).
func pool() *Resampler {
	const px = 28 * 28
	rs := &Resampler{Pool: 4, seed: 3, shape: []int{28, 28, 1}, images: make([][]float32, 2), rewards: make([][]float64, 2)}
	for i := range 4 {
		for range px {
			rs.images[0] = append(rs.images[0], float32(i))
		}
		rs.rewards[0] = append(rs.rewards[0], math.Log(float64(i+1)))
	}
	rs.images[1], rs.rewards[1] = rs.images[0], rs.rewards[0]
	return rs
}

// TestResamplerDrawsTheTilt: at beta 1 the weights are ∝ exp(r) = i+1, so image i is drawn with
// probability (i+1)/10; the frequencies over 20000 draws match within 4 standard deviations.
// The ESS is (Σw)^2/Σw^2 = 100/30 at beta 1 and the pool size for an infinite temperature.
func TestResamplerDrawsTheTilt(t *testing.T) {
	rs := pool()
	if e := rs.ESS(1)[0]; math.Abs(e-100.0/30) > 1e-9 {
		t.Errorf("ESS at beta 1 = %g, want %g", e, 100.0/30)
	}
	if e := rs.ESS(1e12)[0]; math.Abs(e-4) > 1e-6 {
		t.Errorf("ESS at beta 1e12 = %g, want 4", e)
	}
	m, err := rs.Method("ref", 1)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	x, _, err := m.Generate(nil, tensors.FromValue(make([]int32, n)))
	if err != nil {
		t.Fatal(err)
	}
	flat := tensors.MustCopyFlatData[float32](x)
	const px = 28 * 28
	counts := make([]float64, 4)
	for k := range n {
		counts[int(flat[k*px])]++
	}
	for i, c := range counts {
		p := float64(i+1) / 10
		if sd := math.Sqrt(n * p * (1 - p)); math.Abs(c-n*p) > 4*sd {
			t.Errorf("image %d drawn %g times, want %g ± %.0f", i, c, n*p, sd)
		}
	}
	if _, err := rs.Method("ref", 0); err == nil || !strings.Contains(err.Error(), "positive") {
		t.Errorf("beta 0: %v", err)
	}
	if _, _, err := m.Generate(nil, tensors.FromValue([]int32{3})); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("prompt 3 of 2: %v", err)
	}
}

func TestPlotPNG(t *testing.T) {
	data, err := PlotPNG("t", "y", []Curve{{Name: "a", Beta: []float64{0.1, 1}, Y: []float64{1, 2}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := PlotPNG("t", "y", []Curve{{Name: "a", Beta: []float64{0, 1}, Y: []float64{1, 2}}}, true); err == nil {
		t.Error("beta 0 on a log axis accepted")
	}
	if _, err := PlotPNG("t", "y", []Curve{{Name: "a", Beta: []float64{1}, Y: []float64{1, 2}}}, true); err == nil {
		t.Error("mismatched lengths accepted")
	}
}
