// Command summarize turns the runs of docs/convergence/ab.sh into the tables of
// docs/convergence.md (markdown on stdout) and, per beta, a plot of the share of the tilt's reward
// gain against training seconds. The share of a run at step k is (r_k - r_base)/G, r_k its batch
// reward (a moving average over 1/30 of the run, on fresh training noise), r_base the base's mean
// reward over eval's tilt pool (the eval JSON's tilt.base_mean) and G = E_tilt[r] - r_base with the
// tilt's mean reward from the same pool (tilt.reference_mean); its last point is the share measured
// by eval (tilt.methods.hypernoise.tilt_gain_share: the evaluated mean corrected for how the
// evaluation noises score under the base). Evaluations written before base_mean existed use the
// base's mean on the evaluation images for r_base and (r_HN - r_base)/G for the last point.
// Runs named NAME-sSTEPS (the same settings for several step counts) also get a plot of each
// run's evaluated share against its training seconds (budget_betaB.png).
// Usage: go run ./docs/convergence/summarize OUT PNGDIR
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
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
	what    string // model and reward spec, for plot titles
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// evalFile is what summarize reads of NAME.eval.json: the methods' rows and the tilt columns
// (the resampled reference scored on the same images, and the tilt's mean reward from the pool).
type evalFile struct {
	Images  int            `json:"images_per_method"`
	Methods map[string]row `json:"methods"`
	Tilt    *struct {
		Beta      float64 `json:"beta"`
		Pool      int     `json:"pool_per_prompt"`
		Reference row     `json:"reference"`
		Mean      float64 `json:"reference_mean"`
		BaseMean  float64 `json:"base_mean"`
		Methods   map[string]struct {
			Share *float64 `json:"tilt_gain_share"`
		} `json:"methods"`
	} `json:"tilt"`
}

// load reads one run; ok is false when its files are incomplete or its evaluation has no tilt
// columns with the pool's tilt mean.
func load(out, name string) (run, evalFile, bool) {
	var tr struct {
		Beta        float64            `json:"beta"`
		Model       string             `json:"model"`
		RewardSpec  string             `json:"reward_spec"`
		RewardScale map[string]float64 `json:"reward_scale"`
		Result      struct {
			Steps   int     `json:"steps"`
			Seconds float64 `json:"seconds"`
		} `json:"result"`
	}
	var ev evalFile
	if readJSON(filepath.Join(out, name+".train.json"), &tr) != nil || readJSON(filepath.Join(out, name+".eval.json"), &ev) != nil ||
		ev.Tilt == nil || !(ev.Tilt.Mean > ev.Methods["base"].Reward) {
		return run{}, ev, false
	}
	base, t := ev.Methods["base"], ev.Tilt.Reference
	cmd, _ := os.ReadFile(filepath.Join(out, name+".cmd"))
	line := strings.TrimSpace(string(cmd))
	if _, rest, ok := strings.Cut(line, " train "); ok { // the binary's path and the run folder, generic
		line = "hypernoise train " + strings.ReplaceAll(rest, strings.TrimSuffix(out, "/")+"/", "OUT/")
	}
	r := run{name: name, cmd: line, beta: tr.Beta, steps: tr.Result.Steps, seconds: tr.Result.Seconds,
		hn: ev.Methods["hypernoise"], what: tr.RewardSpec}
	if tr.Model != "" && tr.Model != "fashion" { // an imported model: its spec's file name
		r.what = strings.TrimSuffix(filepath.Base(tr.Model), ".json") + ", " + r.what
	}
	zero := base.Reward // evaluations before base_mean was recorded: the base on the evaluation images
	if ev.Tilt.BaseMean != 0 {
		zero = ev.Tilt.BaseMean
	}
	gain := ev.Tilt.Mean - zero
	r.share = (r.hn.Reward - zero) / gain
	if s := ev.Tilt.Methods["hypernoise"].Share; s != nil && ev.Tilt.BaseMean != 0 {
		r.share = *s
	}
	r.dFD = r.hn.FD - t.FD
	// A normalized run's batch reward is w·r/s (one term, w from the spec, s its spread): back to r.
	unit := 1.0
	if len(tr.RewardScale) == 1 {
		for _, sc := range tr.RewardScale {
			unit = sc
		}
		if _, w, ok := strings.Cut(tr.RewardSpec, "="); ok {
			if v, err := strconv.ParseFloat(w, 64); err == nil && v > 0 {
				unit /= v
			}
		}
	}
	if h, secs, err := hypernet.ReadHistory(filepath.Join(out, name)); err == nil {
		rw := h.Metrics["reward"]
		w := max(1, len(rw)/30)
		for k := w - 1; k < len(rw); k += max(1, w/2) {
			var s float64
			for _, v := range rw[k-w+1 : k+1] {
				s += v
			}
			r.curveX = append(r.curveX, secs*float64(k+1)/float64(len(rw)))
			r.curveY = append(r.curveY, (unit*s/float64(w)-zero)/gain)
		}
	}
	return r, ev, true
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: summarize OUT PNGDIR")
		os.Exit(2)
	}
	out, pngDir := os.Args[1], os.Args[2]
	cmds, _ := filepath.Glob(filepath.Join(out, "*.cmd"))
	byBeta := map[float64][]run{}
	evals := map[float64]evalFile{} // one evaluation per beta, for its base and reference rows
	for _, c := range cmds {
		name := strings.TrimSuffix(filepath.Base(c), ".cmd")
		if r, ev, ok := load(out, name); ok {
			byBeta[r.beta] = append(byBeta[r.beta], r)
			evals[r.beta] = ev
		}
	}
	var betas []float64
	for b := range byBeta {
		betas = append(betas, b)
	}
	sort.Float64s(betas)
	for i, b := range betas {
		runs := byBeta[b]
		ev := evals[b]
		if i == 0 {
			base := ev.Methods["base"]
			fmt.Printf("base (%d images): reward %.4f, held-out %.3f, FD %.2f, diversity %.2f", ev.Images, base.Reward, base.Heldout, base.FD, base.Diversity)
			if ev.Tilt.BaseMean != 0 {
				fmt.Printf("; base mean reward over the tilt pool %.4f", ev.Tilt.BaseMean)
			}
			fmt.Print("\n\n")
		}
		t := ev.Tilt.Reference
		zero := ev.Methods["base"].Reward
		if ev.Tilt.BaseMean != 0 {
			zero = ev.Tilt.BaseMean
		}
		fmt.Printf("### beta %g (tilt, pool %d per prompt: gain %.4f, reward %.4f, held-out %.3f, FD %.2f, diversity %.2f)\n\n",
			b, ev.Tilt.Pool, ev.Tilt.Mean-zero, t.Reward, t.Heldout, t.FD, t.Diversity)
		fmt.Println("| run | steps | train s | reward | held-out | FD | FD - tilt's | diversity | share of tilt's gain | targets |")
		fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
		for _, r := range runs {
			met := "no"
			if r.share >= 0.9 && r.dFD <= 1.5 {
				met = "yes"
			}
			fmt.Printf("| %s | %d | %.0f | %.4f | %.3f | %.2f | %+.2f | %.2f | %.3f | %s |\n", r.name, r.steps, r.seconds,
				r.hn.Reward, r.hn.Heldout, r.hn.FD, r.dFD, r.hn.Diversity, r.share, met)
		}
		fmt.Println()
		bs := strconv.FormatFloat(b, 'g', -1, 64)
		if err := plotBeta(filepath.Join(pngDir, "share_beta"+bs+".png"), b, runs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := plotBudgets(filepath.Join(pngDir, "budget_beta"+bs+".png"), b, runs); err != nil {
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
	p := newPlot(fmt.Sprintf("%s, beta %g: share of the tilt's reward gain", runs[0].what, beta),
		"training seconds (2 shared cores)", "(r - r_base) / tilt gain")
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
	return savePlot(p, path, 0.9)
}

// newPlot is an empty plot with a grid, the given title and axis labels, and its legend at the
// bottom right.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = false, false
	return p
}

// savePlot draws a dashed horizontal line at each of levels across p and writes it to path as a
// PNG.
func savePlot(p *plot.Plot, path string, levels ...float64) error {
	for _, y := range levels {
		ref, err := plotter.NewLine(plotter.XYs{{X: 0, Y: y}, {X: math.Max(p.X.Max, 1), Y: y}})
		if err != nil {
			return err
		}
		ref.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(ref)
	}
	png, err := report.PlotPNG(p, 8*vg.Inch, 5*vg.Inch)
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// budgetName matches a run of a budget series, NAME-sSTEPS.
var budgetName = regexp.MustCompile(`^(.*)-s(\d+)$`)

// plotBudgets draws, for every series of runs named NAME-sSTEPS (the same settings trained for
// different step counts), each run's evaluated share of the tilt's reward gain against its training
// seconds: what a training budget buys. It writes nothing when no series has two runs.
func plotBudgets(path string, beta float64, runs []run) error {
	series := map[string]plotter.XYs{}
	var names []string
	for _, r := range runs {
		m := budgetName.FindStringSubmatch(r.name)
		if m == nil {
			continue
		}
		if _, ok := series[m[1]]; !ok {
			names = append(names, m[1])
		}
		series[m[1]] = append(series[m[1]], plotter.XY{X: r.seconds, Y: r.share})
	}
	sort.Strings(names)
	p := newPlot(fmt.Sprintf("%s, beta %g: share of the tilt's reward gain per training budget", runs[0].what, beta),
		"training seconds (2 cores), one run per step count", "evaluated share of the tilt's gain")
	drawn := 0
	for i, n := range names {
		xys := series[n]
		if len(xys) < 2 {
			continue
		}
		sort.Slice(xys, func(a, b int) bool { return xys[a].X < xys[b].X })
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		line.Color, points.Color, points.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(n, line, points)
		drawn++
	}
	if drawn == 0 {
		return nil
	}
	return savePlot(p, path, 0.8, 1)
}
