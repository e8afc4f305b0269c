package pipeline

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/eval/compositional"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/progress"
)

// demoSeeds adds the demo's figures over opts.TrainSeeds training seeds (when > 1): the align
// hypernetwork retrained with the seeds after opts.Seed (in its folder's train-seed-S) and
// evaluated like the first, and the compositional benchmark rerun with each seed; res receives
// the trained methods' mean and standard deviation.
func demoSeeds(backend backends.Backend, opts DemoOptions, eo EvalOptions, res *DemoResult, log io.Writer, quiet bool) error {
	k := opts.TrainSeeds
	if k <= 1 {
		return nil
	}
	load := func() (*family.Model, error) {
		m, err := fashion.Default()
		if err != nil {
			return nil, err
		}
		return fashion.ModelOf(m), nil
	}
	dir := filepath.Join(opts.OutDir, "hypernet-align")
	folder, err := infer.OpenFolder(dir)
	if err != nil {
		return err
	}
	cfg := folder.Config
	reps := []*EvalReport{res.Align}
	seeds := []int64{opts.Seed}
	for i := 1; i < k; i++ {
		s := opts.Seed + int64(i)
		fmt.Fprintf(log, "[align] training seed %d of %d ...\n", i+1, k)
		rep, err := evaluateSeed(backend, load, cfg, filepath.Join(dir, fmt.Sprintf("train-seed-%d", s)), s, eo, progress.New(log, "seed", quiet))
		if err != nil {
			return fmt.Errorf("training seed %d: %w", s, err)
		}
		reps = append(reps, rep)
		seeds = append(seeds, s)
	}
	res.AlignSeeds = SummarizeSeeds(reps)
	res.AlignSeeds.Seeds = seeds
	if res.Compositional == nil {
		return nil
	}
	runs := []*compositional.Result{res.Compositional}
	for i := 1; i < k; i++ {
		m, err := fashion.Default()
		if err != nil {
			return err
		}
		co := CompositionalOptions(opts.Quick, opts.Seed+int64(i))
		r, err := compositional.Run(backend, m, co, log, progress.New(log, "compositional seed", quiet))
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	res.CompositionalSeeds = compositionalSeeds(runs, seeds)
	return nil
}

// compositionalSeeds is the mean and std over runs of the trained methods' success, held-out
// alignment and attribute pass rate.
func compositionalSeeds(runs []*compositional.Result, seeds []int64) *SeedSummary {
	sum := &SeedSummary{Seeds: seeds, Methods: map[string]map[string]SeedFigure{}}
	for _, name := range []string{MethodHyperNoise, reno.WarmName} {
		vals := map[string][]float64{}
		for _, r := range runs {
			if m, ok := r.Methods[name]; ok {
				vals["success"] = append(vals["success"], m.Success)
				vals["heldout_alignment"] = append(vals["heldout_alignment"], m.HeldoutAlignment)
				vals["attribute_pass"] = append(vals["attribute_pass"], m.AttributePass)
			}
		}
		if len(vals) == 0 {
			continue
		}
		sum.Methods[name] = seedFigures(vals)
	}
	return sum
}
