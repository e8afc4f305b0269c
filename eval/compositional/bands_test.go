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

// realImages returns, per class, the statistics of each test image (indexed by Stat).
func realImages(t *testing.T) [][][NumStats]float64 {
	if ok, why := fashionmnist.Installed(fashionmnist.DefaultDir); !ok {
		t.Skipf("Fashion-MNIST not installed (%s); install with: %s", why, fashionmnist.InstallHint)
	}
	test, err := fashionmnist.Load("", fashionmnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][][NumStats]float64, fashion.NumClasses)
	for i := range test.N {
		c := test.Labels[i]
		out[c] = append(out[c], MeasureAll(test.Image(i)))
	}
	return out
}

// sortedStat is the sorted values of statistic s over images.
func sortedStat(images [][NumStats]float64, s Stat) []float64 {
	v := make([]float64, len(images))
	for i, x := range images {
		v[i] = x[s]
	}
	sort.Float64s(v)
	return v
}

// quantile is the q-quantile of sorted values (lower empirical quantile).
func quantile(sorted []float64, q float64) float64 {
	return sorted[int(math.Floor(q*float64(len(sorted)-1)))]
}

// realAttrPass is the fraction of images whose statistics pass every band of p (and its floor).
func realAttrPass(p Prompt, images [][NumStats]float64) float64 {
	n := 0
	for _, x := range images {
		if p.AttrPass(x[:]) {
			n++
		}
	}
	return float64(n) / float64(len(images))
}

// TestPrintBands prints the band, real-pass and area-floor tables from the test set
// (HN_PRINT_BANDS=1).
func TestPrintBands(t *testing.T) {
	if os.Getenv("HN_PRINT_BANDS") == "" {
		t.Skip("set HN_PRINT_BANDS=1 to print the tables")
	}
	real := realImages(t)
	seen := map[string]bool{}
	for _, s := range Specs {
		c, _ := fashion.PromptID(s.Class)
		for _, w := range s.Attrs {
			if k := bandKey(c, w); !seen[k] {
				seen[k] = true
				a := Attributes[w]
				fmt.Printf("\t%q: %.4f,\n", k, quantile(sortedStat(real[c], a.Stat), a.Quantile()))
			}
		}
	}
	for _, p := range Prompts() {
		fmt.Printf("\t%q: %.4f,\n", p.Text, realAttrPass(p, real[p.Class]))
	}
	for c := range real {
		fmt.Printf("area floor %d: %.4f\n", c, quantile(sortedStat(real[c], Area), 0.05))
	}
}

// TestBandsMatchData checks the tables against the real test images: each attribute's band holds
// its Quantile of the class's images (1 - Quantile for an upper band) within 2 points, each
// prompt's RealPass is the fraction of the class's images that pass all its bands (within half a
// point) and at least one image in 1000 does (the attributes are compatible in the data), and the
// area floor holds 95% of each class's images.
func TestBandsMatchData(t *testing.T) {
	real := realImages(t)
	for _, p := range Prompts() {
		imgs := real[p.Class]
		for _, c := range p.Conds {
			pass := 0
			for _, x := range imgs {
				if c.Pass(x[c.Attr.Stat]) {
					pass++
				}
			}
			want := c.Attr.Quantile()
			if !c.Attr.Below {
				want = 1 - want
			}
			if got := float64(pass) / float64(len(imgs)); math.Abs(got-want) > 0.02 {
				t.Errorf("%s, %s (%s): %.3f of real test images pass, want %.2f", p.Text, c.Attr.Word, c.Band(), got, want)
			}
		}
		got := realAttrPass(p, imgs)
		if math.Abs(got-p.RealPass) > 0.005 || got < 0.001 {
			t.Errorf("%s: %.4f of the real test images pass every band, table says %.4f (want >= 0.001)", p.Text, got, p.RealPass)
		}
	}
	for c, imgs := range real {
		above := 0
		for _, x := range imgs {
			if x[Area] >= areaFloor[c] {
				above++
			}
		}
		if got := float64(above) / float64(len(imgs)); math.Abs(got-0.95) > 0.01 {
			t.Errorf("class %d: %.3f of real images above the area floor, want 0.95", c, got)
		}
	}
}
