package metrics

import (
	"math"
	"testing"
)

// TestMeanStd: the sample standard deviation of 1, 2, 3, 4 is sqrt(5/3); one value has spread 0;
// non-finite values are left out.
func TestMeanStd(t *testing.T) {
	m, s := MeanStd([]float64{1, 2, math.NaN(), 3, 4})
	if m != 2.5 || math.Abs(s-math.Sqrt(5.0/3)) > 1e-12 {
		t.Errorf("MeanStd = %g, %g; want 2.5, %g", m, s, math.Sqrt(5.0/3))
	}
	if m, s := MeanStd([]float64{7}); m != 7 || s != 0 {
		t.Errorf("one value: %g, %g", m, s)
	}
	if m, _ := MeanStd(nil); !math.IsNaN(m) {
		t.Errorf("no values: mean %g", m)
	}
}
