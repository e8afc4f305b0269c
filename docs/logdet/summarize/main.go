// Command summarize turns the outputs of docs/logdet/images.sh into the README's tables (markdown
// on stdout) and the reward/FD-against-beta plots. Usage: go run ./docs/logdet/summarize OUT PNGDIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hypernoise/hypernoise/eval/tilt"
)

type evalRow struct {
	Reward    float64 `json:"reward"`
	Heldout   float64 `json:"heldout_alignment"`
	FD        float64 `json:"fd"`
	Diversity float64 `json:"diversity"`
	Seconds   float64 `json:"seconds_per_image"`
	NFE       float64 `json:"nfe_per_image"`
}

type evalFile struct {
	Methods map[string]evalRow `json:"methods"`
}

type trainFile struct {
	Result struct {
		Steps    int     `json:"steps"`
		Skipped  int     `json:"skipped_steps"`
		Seconds  float64 `json:"seconds"`
		Diverged float64 `json:"logdet_diverged"`
	} `json:"result"`
}

type tiltFile struct {
	Rows []struct {
		Beta    float64 `json:"beta"`
		ESSMin  float64 `json:"ess_min"`
		ESSMean float64 `json:"ess_mean"`
		evalRow
	} `json:"rows"`
}

func read(path string, v any) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		return false
	}
	return true
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: summarize OUT PNGDIR")
		os.Exit(2)
	}
	out, pngDir := os.Args[1], os.Args[2]
	betas := []float64{0.05, 0.2, 1}
	dialBetas := []float64{0.05, 0.1, 0.2, 0.5, 1}
	b := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

	var tf tiltFile
	ref := map[string]evalRow{}
	ess := map[string][2]float64{}
	if read(filepath.Join(out, "tilt.json"), &tf) {
		for _, r := range tf.Rows {
			if r.Beta > 0 {
				ref[b(r.Beta)] = r.evalRow
				ess[b(r.Beta)] = [2]float64{r.ESSMin, r.ESSMean}
			} else {
				ref["base"] = r.evalRow
			}
		}
	}
	fmt.Println("| beta | sampler | reward | held-out alignment | FD | diversity | train s | diverged |")
	fmt.Println("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	if r, ok := ref["base"]; ok {
		fmt.Printf("| | base (no tilt) | %.4f | %.3f | %.1f | %.2f | | |\n", r.Reward, r.Heldout, r.FD, r.Diversity)
	}
	curves := map[string]*[2]tilt.Curve{}
	add := func(name string, beta float64, r evalRow) {
		c, ok := curves[name]
		if !ok {
			c = &[2]tilt.Curve{{Name: name}, {Name: name}}
			curves[name] = c
		}
		c[0].Beta, c[0].Y = append(c[0].Beta, beta), append(c[0].Y, r.Reward)
		c[1].Beta, c[1].Y = append(c[1].Beta, beta), append(c[1].Y, r.FD)
	}
	for _, beta := range betas {
		if r, ok := ref[b(beta)]; ok {
			e := ess[b(beta)]
			fmt.Printf("| %s | exact tilt, resampled (ESS min %.0f, mean %.0f) | %.4f | %.3f | %.1f | %.2f | | |\n", b(beta), e[0], e[1], r.Reward, r.Heldout, r.FD, r.Diversity)
		}
		for _, reg := range []string{"kl", "logdet"} {
			var ef evalFile
			var tr trainFile
			if !read(filepath.Join(out, reg+"-"+b(beta)+".eval.json"), &ef) {
				continue
			}
			read(filepath.Join(out, reg+"-"+b(beta)+".train.json"), &tr)
			r := ef.Methods["hypernoise"]
			div := ""
			if reg == "logdet" {
				div = fmt.Sprintf("%.2f%%", 100*tr.Result.Diverged)
			}
			fmt.Printf("| %s | HyperNoise LoRA, %s | %.4f | %.3f | %.1f | %.2f | %.0f | %s |\n", b(beta), reg, r.Reward, r.Heldout, r.FD, r.Diversity, tr.Result.Seconds, div)
			add("LoRA, "+reg, beta, r)
		}
	}
	fmt.Println()
	fmt.Println("| beta | tilt dial (one network) reward | held-out | FD | diversity | exact tilt (resampled) reward | held-out | FD | diversity |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, beta := range dialBetas {
		var ef evalFile
		if !read(filepath.Join(out, "dial-"+b(beta)+".eval.json"), &ef) {
			continue
		}
		r := ef.Methods["hypernoise"]
		add("tilt dial", beta, r)
		rr, ok := ref[b(beta)]
		if ok {
			add("exact tilt (resampled)", beta, rr)
			fmt.Printf("| %s | %.4f | %.3f | %.1f | %.2f | %.4f | %.3f | %.1f | %.2f |\n", b(beta), r.Reward, r.Heldout, r.FD, r.Diversity, rr.Reward, rr.Heldout, rr.FD, rr.Diversity)
		} else {
			fmt.Printf("| %s | %.4f | %.3f | %.1f | %.2f | | | | |\n", b(beta), r.Reward, r.Heldout, r.FD, r.Diversity)
		}
	}
	var dtr trainFile
	if read(filepath.Join(out, "dial.train.json"), &dtr) {
		fmt.Printf("\ntilt dial: %d steps in %.0f s, %.2f%% diverging series\n", dtr.Result.Steps, dtr.Result.Seconds, 100*dtr.Result.Diverged)
	}
	writePlots(pngDir, curves)
}

// writePlots writes the reward and FD against beta plots of the curves (the LoRA runs, the dial and
// the resampled tilt) into pngDir, if there are any.
func writePlots(pngDir string, curves map[string]*[2]tilt.Curve) {
	var rc, fc []tilt.Curve
	for _, name := range []string{"LoRA, kl", "LoRA, logdet", "tilt dial", "exact tilt (resampled)"} {
		if c, ok := curves[name]; ok {
			rc, fc = append(rc, c[0]), append(fc, c[1])
		}
	}
	if len(rc) == 0 {
		return
	}
	for _, p := range []struct {
		file, y string
		cs      []tilt.Curve
		top     bool
	}{{"reward_vs_beta.png", "mean reward log p(c|x)", rc, false}, {"fd_vs_beta.png", "FD to the test set (lower is closer)", fc, true}} {
		png, err := tilt.PlotPNG("align reward, embedded Fashion default", p.y, p.cs, p.top)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(pngDir, p.file), png, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
