package compositional

import (
	"fmt"
	"math"
	"os"
	"sort"
	"testing"

	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// realStats returns, per class, the sorted values of a statistic over the test images.
func realStats(t *testing.T, s Stat) [][]float64 {
	if ok, why := fashionmnist.Installed(fashionmnist.DefaultDir); !ok {
		t.Skipf("Fashion-MNIST not installed (%s); install with: %s", why, fashionmnist.InstallHint)
	}
	test, err := fashionmnist.Load("", fashionmnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float64, fashion.NumClasses)
	for i := range test.N {
		c := test.Labels[i]
		out[c] = append(out[c], Measure(s, test.Image(i)))
	}
	for _, v := range out {
		sort.Float64s(v)
	}
	return out
}

// quantile is the q-quantile of sorted values (lower empirical quantile).
func quantile(sorted []float64, q float64) float64 {
	return sorted[int(math.Floor(q*float64(len(sorted)-1)))]
}

// TestPrintBands prints the bands table from the test set (HN_PRINT_BANDS=1).
func TestPrintBands(t *testing.T) {
	if os.Getenv("HN_PRINT_BANDS") == "" {
		t.Skip("set HN_PRINT_BANDS=1 to print the bands table")
	}
	for _, s := range promptSpecs {
		a := Attributes[s.attr]
		c, _ := fashion.PromptID(s.class)
		v := realStats(t, a.Stat)[c]
		fmt.Printf("\t%q: %.4f,\n", bandKey(c, s.attr), quantile(v, a.Quantile))
	}
	for c, v := range realStats(t, Area) {
		fmt.Printf("area floor %d: %.4f\n", c, quantile(v, 0.05))
	}
}

// TestBandsMatchData checks that each band holds the stated fraction of the class's real test
// images (the attribute's Quantile, or 1 - Quantile for an above-band), within 2 points.
func TestBandsMatchData(t *testing.T) {
	cache := map[Stat][][]float64{}
	for _, p := range Prompts() {
		if cache[p.Attr.Stat] == nil {
			cache[p.Attr.Stat] = realStats(t, p.Attr.Stat)
		}
		v := cache[p.Attr.Stat][p.Class]
		pass := 0
		for _, x := range v {
			if p.Pass(x) {
				pass++
			}
		}
		want := p.Attr.Quantile
		if !p.Attr.Below {
			want = 1 - p.Attr.Quantile
		}
		got := float64(pass) / float64(len(v))
		if math.Abs(got-want) > 0.02 {
			t.Errorf("%s (%s): %.3f of real test images pass, want %.2f", p.Text, p.Band(), got, want)
		}
	}
	// The area floor holds 95% of each class's real images.
	for c, v := range realStats(t, Area) {
		above := 0
		for _, x := range v {
			if x >= areaFloor[c] {
				above++
			}
		}
		if got := float64(above) / float64(len(v)); math.Abs(got-0.95) > 0.01 {
			t.Errorf("class %d: %.3f of real images above the area floor, want 0.95", c, got)
		}
	}
}
