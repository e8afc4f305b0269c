package fashion

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/hypernoise/hypernoise/metrics"
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
// dim values), computed by package metrics: |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a^{1/2} C_b C_a^{1/2})^{1/2}).
func FrechetDistance(a []float32, na int, b []float32, nb int, dim int) (float64, error) {
	if na < 2 || nb < 2 || len(a) != na*dim || len(b) != nb*dim {
		return 0, fmt.Errorf("Fréchet distance needs at least 2 rows of %d features per set, got %d and %d", dim, na, nb)
	}
	return metrics.FrechetDistance(rowsOf(a, na, dim), rowsOf(b, nb, dim))
}

// rowsOf splits n*dim values into n float64 rows.
func rowsOf(x []float32, n, dim int) [][]float64 {
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, dim)
		for j := range out[i] {
			out[i][j] = float64(x[i*dim+j])
		}
	}
	return out
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
