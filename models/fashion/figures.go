package fashion

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/gonum/mat"
)

// PartFigures are one trained part's size, how it was trained and what it reached. They are written
// by Train (never by hand) into figures.json next to the weights.
type PartFigures struct {
	Params      int                `json:"params"`
	Bytes       int64              `json:"bytes"`
	Command     string             `json:"command"`
	Steps       int                `json:"steps"`
	Batch       int                `json:"batch"`
	Seed        int64              `json:"seed"`
	WallSeconds float64            `json:"wall_seconds"`
	Metrics     map[string]float64 `json:"metrics"`
	Notes       map[string]string  `json:"notes,omitempty"`
}

// Figures maps part names to their figures.
type Figures map[string]*PartFigures

func parseFigures(data []byte) (Figures, error) {
	var f Figures
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return f, nil
}

// FrechetDistance is the Fréchet distance between Gaussians fitted to two feature sets (rows of
// dim values): |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2}).
func FrechetDistance(a []float32, na int, b []float32, nb int, dim int) (float64, error) {
	if na < 2 || nb < 2 || len(a) != na*dim || len(b) != nb*dim {
		return 0, fmt.Errorf("Fréchet distance needs at least 2 rows of %d features per set, got %d and %d", dim, na, nb)
	}
	muA, covA := meanCov(a, na, dim)
	muB, covB := meanCov(b, nb, dim)
	d2 := 0.0
	for i := range dim {
		d := muA[i] - muB[i]
		d2 += d * d
	}
	sa, err := sqrtPSD(covA)
	if err != nil {
		return 0, err
	}
	var m mat.Dense
	m.Mul(sa, covB)
	m.Mul(&m, sa)
	sym := mat.NewSymDense(dim, nil)
	for i := range dim {
		for j := i; j < dim; j++ {
			sym.SetSym(i, j, 0.5*(m.At(i, j)+m.At(j, i)))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, false) {
		return 0, fmt.Errorf("Fréchet distance: eigen-decomposition failed")
	}
	trSqrt := 0.0
	for _, l := range eig.Values(nil) {
		trSqrt += math.Sqrt(math.Max(l, 0))
	}
	return d2 + mat.Trace(covA) + mat.Trace(covB) - 2*trSqrt, nil
}

func meanCov(x []float32, n, dim int) ([]float64, *mat.SymDense) {
	mu := make([]float64, dim)
	for r := range n {
		for i := range dim {
			mu[i] += float64(x[r*dim+i])
		}
	}
	for i := range mu {
		mu[i] /= float64(n)
	}
	c := make([]float64, dim*dim)
	row := make([]float64, dim)
	for r := range n {
		for i := range dim {
			row[i] = float64(x[r*dim+i]) - mu[i]
		}
		for i := range dim {
			ri := row[i]
			for j := i; j < dim; j++ {
				c[i*dim+j] += ri * row[j]
			}
		}
	}
	cov := mat.NewSymDense(dim, nil)
	for i := range dim {
		for j := i; j < dim; j++ {
			cov.SetSym(i, j, c[i*dim+j]/float64(n-1))
		}
	}
	return mu, cov
}

func sqrtPSD(s *mat.SymDense) (*mat.Dense, error) {
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		return nil, fmt.Errorf("Fréchet distance: eigen-decomposition failed")
	}
	vals := eig.Values(nil)
	var v mat.Dense
	eig.VectorsTo(&v)
	n := len(vals)
	d := mat.NewDiagDense(n, nil)
	for i, l := range vals {
		d.SetDiag(i, math.Sqrt(math.Max(l, 0)))
	}
	var out mat.Dense
	out.Mul(&v, d)
	out.Mul(&out, v.T())
	return &out, nil
}

// Markdown renders the figures as a Markdown table (one row per part, in training order), for
// the model card: the numbers come from figures.json, never typed by hand.
func (f Figures) Markdown() string {
	var b strings.Builder
	b.WriteString("| part | parameters | bytes | steps x batch | seed | wall time | figures |\n")
	b.WriteString("| --- | ---: | ---: | --- | ---: | ---: | --- |\n")
	for _, p := range Parts {
		pf, ok := f[p]
		if !ok {
			fmt.Fprintf(&b, "| %s | | | | | | not trained |\n", p)
			continue
		}
		keys := make([]string, 0, len(pf.Metrics))
		for k := range pf.Metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %.4g", k, pf.Metrics[k])
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d x %d | %d | %.0f s | %s |\n", p, pf.Params, pf.Bytes, pf.Steps, pf.Batch,
			pf.Seed, pf.WallSeconds, strings.Join(parts, ", "))
	}
	return b.String()
}
