// Command summarize turns the runs of docs/convergence/ab.sh into the tables of
// docs/convergence.md (markdown on stdout) and, per beta, a plot of the share of the tilt's reward
// gain against training seconds. The share of a run at step k is (r_k - r_base)/(r_tilt - r_base),
// r_k its batch reward (a moving average over 1/30 of the run), r_base and r_tilt the base's and
// the resampled tilt's mean reward on the evaluation images (OUT/tilt.json); its last point is the
// share measured by eval. Usage: go run ./docs/convergence/summarize OUT PNGDIR
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hypernoise/hypernoise/eval/report"
	"github.com/hypernoise/hypernoise/hypernet"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

type row struct {
	Reward    float64 `json:"reward"`
	Heldout   float64 `json:"heldout_alignment"`
	FD        float64 `json:"fd"`
	Diversity float64 `json:"diversity"`
}

type run struct {
	name    string
	cmd     string
	beta    float64
	steps   int
	seconds float64
	hn      row
	share   float64
	dFD     float64
	curveX  []float64
	curveY  []float64
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// reference reads tilt.json: the base row and the tilt's row per beta.
func reference(out string) (row, map[float64]row, error) {
	var t struct {
		Rows []struct {
			Beta float64 `json:"beta"`
			row
		} `json:"rows"`
	}
	if err := readJSON(filepath.Join(out, "tilt.json"), &t); err != nil {
		return row{}, nil, err
	}
	ref := map[float64]row{}
	for _, r := range t.Rows[1:] {
		ref[r.Beta] = r.row
	}
	return t.Rows[0].row, ref, nil
}

// load reads one run; ok is false when its files are incomplete or it has no tilt reference.
func load(out, name string, base row, ref map[float64]row) (run, bool) {
	var tr struct {
		Beta   float64 `json:"beta"`
		Result struct {
			Steps   int     `json:"steps"`
			Seconds float64 `json:"seconds"`
		} `json:"result"`
	}
	var ev struct {
		Methods map[string]row `json:"methods"`
	}
	if readJSON(filepath.Join(out, name+".train.json"), &tr) != nil || readJSON(filepath.Join(out, name+".eval.json"), &ev) != nil {
		return run{}, false
	}
	t, ok := ref[tr.Beta]
	if !ok {
		return run{}, false
	}
	cmd, _ := os.ReadFile(filepath.Join(out, name+".cmd"))
	line := strings.TrimSpace(string(cmd))
	if _, rest, ok := strings.Cut(line, " train "); ok { // the binary's path and the run folder, generic
		line = "hypernoise train " + strings.ReplaceAll(rest, strings.TrimSuffix(out, "/")+"/", "OUT/")
	}
	r := run{name: name, cmd: line, beta: tr.Beta, steps: tr.Result.Steps, seconds: tr.Result.Seconds,
		hn: ev.Methods["hypernoise"]}
	gain := t.Reward - base.Reward
	r.share = (r.hn.Reward - base.Reward) / gain
	r.dFD = r.hn.FD - t.FD
	if h, secs, err := hypernet.ReadHistory(filepath.Join(out, name)); err == nil {
		rw := h.Metrics["reward"]
		w := max(1, len(rw)/30)
		for k := w - 1; k < len(rw); k += max(1, w/2) {
			var s float64
			for _, v := range rw[k-w+1 : k+1] {
				s += v
			}
			r.curveX = append(r.curveX, secs*float64(k+1)/float64(len(rw)))
			r.curveY = append(r.curveY, (s/float64(w)-base.Reward)/gain)
		}
	}
	return r, true
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: summarize OUT PNGDIR")
		os.Exit(2)
	}
	out, pngDir := os.Args[1], os.Args[2]
	base, ref, err := reference(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmds, _ := filepath.Glob(filepath.Join(out, "*.cmd"))
	byBeta := map[float64][]run{}
	for _, c := range cmds {
		name := strings.TrimSuffix(filepath.Base(c), ".cmd")
		if r, ok := load(out, name, base, ref); ok {
			byBeta[r.beta] = append(byBeta[r.beta], r)
		}
	}
	var betas []float64
	for b := range byBeta {
		betas = append(betas, b)
	}
	sort.Float64s(betas)
	fmt.Printf("base: reward %.4f, held-out %.3f, FD %.1f, diversity %.2f\n\n", base.Reward, base.Heldout, base.FD, base.Diversity)
	for _, b := range betas {
		runs := byBeta[b]
		t := ref[b]
		fmt.Printf("### beta %g (tilt: reward %.4f, held-out %.3f, FD %.1f, diversity %.2f)\n\n", b, t.Reward, t.Heldout, t.FD, t.Diversity)
		fmt.Println("| run | steps | train s | reward | held-out | FD | FD - tilt's | diversity | share of tilt's gain | targets |")
		fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
		for _, r := range runs {
			met := "no"
			if r.share >= 0.9 && r.dFD <= 1.5 {
				met = "yes"
			}
			fmt.Printf("| %s | %d | %.0f | %.4f | %.3f | %.1f | %+.1f | %.2f | %.2f | %s |\n", r.name, r.steps, r.seconds,
				r.hn.Reward, r.hn.Heldout, r.hn.FD, r.dFD, r.hn.Diversity, r.share, met)
		}
		fmt.Println()
		if err := plotBeta(filepath.Join(pngDir, "share_beta"+strconv.FormatFloat(b, 'g', -1, 64)+".png"), b, runs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Println("Commands:")
	fmt.Println()
	for _, b := range betas {
		for _, r := range byBeta[b] {
			fmt.Printf("- %s: `%s`\n", r.name, r.cmd)
		}
	}
}

// plotBeta draws each run's share of the tilt's reward gain against training seconds, with its
// evaluated share as a point at its end.
func plotBeta(path string, beta float64, runs []run) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("align, beta %g: share of the tilt's reward gain", beta)
	p.X.Label.Text = "training seconds (2 shared cores)"
	p.Y.Label.Text = "(r - r_base) / (r_tilt - r_base)"
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = false, false
	for i, r := range runs {
		if len(r.curveX) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(r.curveX))
		for j := range r.curveX {
			xys[j] = plotter.XY{X: r.curveX[j], Y: r.curveY[j]}
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		end, err := plotter.NewScatter(plotter.XYs{{X: r.seconds, Y: r.share}})
		if err != nil {
			return err
		}
		line.Color, end.Color = plotutil.Color(i), plotutil.Color(i)
		end.Shape = plotutil.Shape(i)
		line.Width = vg.Points(1.2)
		p.Add(line, end)
		p.Legend.Add(r.name, line, end)
	}
	target, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0.9}, {X: math.Max(p.X.Max, 1), Y: 0.9}})
	if err != nil {
		return err
	}
	target.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(target)
	png, err := report.PlotPNG(p, 8*vg.Inch, 5*vg.Inch)
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}
