package pipeline

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/metrics"
	"github.com/hypernoise/hypernoise/progress"
)

// MaxTrainSeeds bounds --train-seeds.
const MaxTrainSeeds = 100

// SeedFigure is one figure over training seeds: its mean and sample standard deviation.
type SeedFigure struct {
	Mean float64 `json:"mean"`
	Std  float64 `json:"std"`
}

// SeedSummary is every trained method's figures over training seeds (the methods whose samples
// depend on a training run: HyperNoise, HyperNoise + ReNO, the fine-tune baseline).
type SeedSummary struct {
	Seeds []int64 `json:"seeds"`
	// Methods: method -> figure name (reward, heldout_alignment, fd, diversity, tilt_gain_share,
	// reno_gain_share, distance_to_tilt) -> mean and std over the seeds.
	Methods map[string]map[string]SeedFigure `json:"methods"`
}

// trainedMethods are the report rows that a training seed changes.
var trainedMethods = []string{finetune.Name, MethodHyperNoise, reno.WarmName}

// TrainOptionsOf are the options that trained a hypernetwork with config c, for another seed.
func TrainOptionsOf(c infer.Config, seed int64) TrainOptions {
	o := TrainOptions{RewardSpec: c.RewardSpec, Modulator: c.Modulator, Reg: c.Reg, RegWeight: c.RegWeight,
		Beta: c.Beta, RewardNorm: c.RewardNorm, Train: c.Train}
	if c.Reg == hypernet.RegMeanSquare {
		o.Beta = 0 // the stored weight, exactly
	}
	if o.RewardNorm == "" {
		o.RewardNorm = hypernet.NormNone
	}
	if c.LogDet != nil {
		o.LogDet = *c.LogDet
	}
	o.Train.Seed = seed
	o.Train.BudgetSeconds = 0 // the steps the budget fixed are recorded
	return o
}

// EvaluateSeeds evaluates the hypernetwork trained in dir (hn, in pipeline p) and k-1 more trained
// with the same configuration and the training seeds that follow its own, each in
// dir/train-seed-S (a finished run there is reused), on a model loaded afresh with load; it
// returns every seed's report (the first is hn's) and the trained methods' mean and standard
// deviation over the seeds. The other seeds' evaluations run the trained methods, the base and
// ReNO (the shares' references) only.
func EvaluateSeeds(backend backends.Backend, load func() (*family.Model, error), p *infer.Pipeline, hn *infer.Hypernet, dir string, k int, opts EvalOptions, log progress.Func) ([]*EvalReport, *SeedSummary, error) {
	if k < 1 || k > MaxTrainSeeds {
		return nil, nil, fmt.Errorf("training seeds must be in [1, %d], got %d", MaxTrainSeeds, k)
	}
	if opts.tiltCache == nil {
		opts.tiltCache = &tiltCache{} // one reference for every seed that shares it
	}
	first, err := Evaluate(p, hn, dir, opts, log)
	if err != nil {
		return nil, nil, err
	}
	reps := []*EvalReport{first}
	seed0 := hn.Config.Train.Seed
	for i := 1; i < k; i++ {
		rep, err := evaluateSeed(backend, load, hn.Config, filepath.Join(dir, fmt.Sprintf("train-seed-%d", seed0+int64(i))), seed0+int64(i), opts, log)
		if err != nil {
			return nil, nil, fmt.Errorf("training seed %d: %w", seed0+int64(i), err)
		}
		reps = append(reps, rep)
	}
	sum := SummarizeSeeds(reps)
	for i := range reps {
		sum.Seeds = append(sum.Seeds, seed0+int64(i))
	}
	return reps, sum, nil
}

// evaluateSeed trains (or reuses) the hypernetwork of config c with seed in dir and evaluates it.
func evaluateSeed(backend backends.Backend, load func() (*family.Model, error), c infer.Config, dir string, seed int64, opts EvalOptions, log progress.Func) (*EvalReport, error) {
	m, err := load()
	if err != nil {
		return nil, err
	}
	to := TrainOptionsOf(c, seed)
	to.OutDir = dir
	to.Resume = hypernet.CheckpointExists(dir)
	if _, _, err := Train(backend, m, to, log); err != nil {
		return nil, err
	}
	em, err := load() // a fresh copy: the training state stays behind
	if err != nil {
		return nil, err
	}
	f, err := infer.OpenFolder(dir)
	if err != nil {
		return nil, err
	}
	p, err := NewPipeline(backend, em, f)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	o := opts
	o.Methods = append([]string{MethodReno}, trainedMethods...)
	if len(opts.Methods) > 0 {
		o.Methods = nil
		for _, name := range opts.Methods {
			if name == MethodReno || contains(trainedMethods, name) {
				o.Methods = append(o.Methods, name)
			}
		}
	}
	return Evaluate(p, p.Hypernets()[0], dir, o, log)
}

// SummarizeSeeds is the mean and standard deviation over reports (one per training seed) of the
// trained methods' figures; a figure a report lacks (e.g. FD of a family without one) is left
// out.
func SummarizeSeeds(reps []*EvalReport) *SeedSummary {
	sum := &SeedSummary{Methods: map[string]map[string]SeedFigure{}}
	for _, name := range trainedMethods {
		values := map[string][]float64{}
		for _, rep := range reps {
			r, ok := rep.Methods[name]
			if !ok {
				continue
			}
			values["reward"] = append(values["reward"], r.Reward)
			values["diversity"] = append(values["diversity"], r.Diversity)
			if r.HeldoutAlignment.Valid() {
				values["heldout_alignment"] = append(values["heldout_alignment"], float64(r.HeldoutAlignment))
			}
			if r.FD.Valid() {
				values["fd"] = append(values["fd"], float64(r.FD))
			}
			if rep.Tilt != nil {
				t := rep.Tilt.Methods[name]
				for key, f := range map[string]metrics.Figure{"tilt_gain_share": t.TiltShare, "reno_gain_share": t.RenoShare, "distance_to_tilt": t.Distance} {
					if f.Valid() {
						values[key] = append(values[key], float64(f))
					}
				}
			}
		}
		if len(values) == 0 {
			continue
		}
		sum.Methods[name] = seedFigures(values)
	}
	return sum
}

// seedFigures is the mean and standard deviation (metrics.MeanStd) of each figure's values over
// the seeds.
func seedFigures(values map[string][]float64) map[string]SeedFigure {
	figs := map[string]SeedFigure{}
	for key, xs := range values {
		m, s := metrics.MeanStd(xs)
		figs[key] = SeedFigure{Mean: m, Std: s}
	}
	return figs
}

// Text is the summary as plain text: one line per trained method, mean ± std of each figure.
func (s *SeedSummary) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "over %d training seeds %v (mean ± std):\n", len(s.Seeds), s.Seeds)
	names := make([]string, 0, len(s.Methods))
	for name := range s.Methods {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		figs := s.Methods[name]
		keys := make([]string, 0, len(figs))
		for k := range figs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "%-16s", name)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s %.4g ± %.2g;", k, figs[k].Mean, figs[k].Std)
		}
		b.WriteString("\n")
	}
	return b.String()
}
