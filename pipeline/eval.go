package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/eval/imageeval"
	"github.com/hypernoise/hypernoise/eval/report"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/progress"
)

// Method names in evaluation reports (the keys of EvalReport.Methods).
const (
	MethodBase           = "base"
	MethodBestOfN        = "best_of_n"       // N matched to ReNO's network evaluations
	MethodBestOfSmall    = "best_of_4"       // a small N
	MethodReno           = "reno"            // ReNO, paper defaults
	MethodFinetune       = "finetune"        // LoRA on the generator, reward only
	MethodHyperNoise     = "hypernoise"      // the trained hypernetwork
	MethodHyperNoiseReno = "hypernoise_reno" // hypernetwork, then a few ReNO steps
)

// MethodOrder is the order methods appear in tables.
var MethodOrder = []string{MethodBase, MethodBestOfSmall, MethodBestOfN, MethodReno, MethodFinetune,
	MethodHyperNoise, MethodHyperNoiseReno}

// EvalOptions configures Evaluate.
type EvalOptions struct {
	SeedsPerPrompt int    `json:"seeds_per_prompt"`
	Seed           uint64 `json:"seed"`
	RenoSteps      int    `json:"reno_steps"`      // ReNO iterations (paper: 50)
	WarmRenoSteps  int    `json:"warm_reno_steps"` // ReNO iterations after the hypernetwork
	SmallN         int    `json:"small_n"`         // best-of-N with a small N
	FinetuneSteps  int    `json:"finetune_steps"`  // 0: skip the fine-tune baseline
	FinetuneRank   int    `json:"finetune_rank"`
	GridSeeds      int    `json:"grid_seeds"` // images per prompt in the grids
	Batch          int    `json:"batch"`      // images per method call
	// Methods restricts the evaluation to these method names (nil: all). Base is always included.
	Methods []string `json:"methods,omitempty"`
}

// DefaultEvalOptions: 16 seeds per prompt (160 images), ReNO with the paper's 50 steps, best-of-N
// with N = 100 (ReNO's 50 forward + 50 backward evaluations) and N = 4, 10 warm-start ReNO steps.
func DefaultEvalOptions() EvalOptions {
	return EvalOptions{SeedsPerPrompt: 16, Seed: 2025, RenoSteps: 50, WarmRenoSteps: 10, SmallN: 4,
		FinetuneSteps: 300, FinetuneRank: 8, GridSeeds: 8, Batch: 160}
}

// Validate checks the options.
func (o EvalOptions) Validate() error {
	switch {
	case o.SeedsPerPrompt < 2 || o.SeedsPerPrompt > 1000:
		return fmt.Errorf("seeds per prompt must be in [2, 1000], got %d", o.SeedsPerPrompt)
	case o.RenoSteps < 1 || o.RenoSteps > 1000:
		return fmt.Errorf("ReNO steps must be in [1, 1000], got %d", o.RenoSteps)
	case o.WarmRenoSteps < 0 || o.WarmRenoSteps > 1000:
		return fmt.Errorf("warm-start ReNO steps must be in [0, 1000], got %d", o.WarmRenoSteps)
	case o.SmallN < 1 || o.SmallN > 1000:
		return fmt.Errorf("small N must be in [1, 1000], got %d", o.SmallN)
	case o.FinetuneSteps < 0:
		return fmt.Errorf("fine-tune steps must be >= 0, got %d", o.FinetuneSteps)
	case o.FinetuneSteps > 0 && o.FinetuneRank < 1:
		return fmt.Errorf("fine-tune rank must be positive, got %d", o.FinetuneRank)
	case o.GridSeeds < 0 || o.Batch < 0:
		return fmt.Errorf("grid seeds and batch must be >= 0")
	}
	return nil
}

// EvalReport is the result of Evaluate; its JSON form is `hypernoise eval --json`.
type EvalReport struct {
	Generator  string                       `json:"generator"`
	RewardSpec string                       `json:"reward_spec"`
	Prompts    []string                     `json:"prompts"`
	Images     int                          `json:"images_per_method"`
	Options    EvalOptions                  `json:"options"`
	Backend    string                       `json:"backend"`
	Order      []string                     `json:"order"`
	Methods    map[string]*imageeval.Result `json:"methods"`
	// GainRatio is (hypernoise - base) / (reno - base) of the held-out alignment.
	GainRatio float64 `json:"heldout_gain_ratio_vs_reno"`
	Seconds   float64 `json:"seconds"`
}

// Evaluate compares every method on hn's reward, for hn's generator (the fine-tune baseline is
// trained, or reloaded, in dir when opts.FinetuneSteps > 0).
func Evaluate(backend backends.Backend, hn *Hypernet, dir string, opts EvalOptions, prog progress.Func) (*EvalReport, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	m := hn.Model
	stats, err := DefaultTestStats()
	if err != nil {
		return nil, err
	}
	var runners []*Runner
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	add := func(r *Runner, err error) error {
		if err != nil {
			return err
		}
		runners = append(runners, r)
		return nil
	}
	rcfg := reno.DefaultConfig()
	rcfg.Steps = opts.RenoSteps
	wcfg := rcfg
	wcfg.Steps = max(opts.WarmRenoSteps, 1)
	matchedN := 2 * opts.RenoSteps
	steps := []func() error{
		func() error { return add(BaseMethod(backend, m)) },
		func() error {
			return add(BestOfNMethod(backend, m, hn.Reward, opts.SmallN, int64(opts.Seed), fmt.Sprintf("best_of_%d", opts.SmallN)))
		},
		func() error {
			return add(BestOfNMethod(backend, m, hn.Reward, matchedN, int64(opts.Seed), MethodBestOfN))
		},
		func() error { return add(RenoMethod(backend, m, hn.Reward, rcfg, nil, MethodReno)) },
		func() error { return add(HyperNoiseMethod(backend, hn, MethodHyperNoise)) },
	}
	if opts.WarmRenoSteps > 0 {
		steps = append(steps, func() error { return add(RenoMethod(backend, m, hn.Reward, wcfg, hn, MethodHyperNoiseReno)) })
	}
	if opts.FinetuneSteps > 0 && (len(opts.Methods) == 0 || contains(opts.Methods, MethodFinetune)) {
		steps = append(steps, func() error {
			cfg := hn.Config.Train
			cfg.Steps = opts.FinetuneSteps
			ft, err := LoadOrTrainFinetune(backend, m, hn.Config.RewardSpec, opts.FinetuneRank, cfg, dir, prog)
			if err != nil {
				return err
			}
			return add(FinetuneMethod(backend, m, ft, MethodFinetune))
		})
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	if len(opts.Methods) > 0 {
		kept := runners[:0]
		for _, r := range runners {
			if r.Name == MethodBase || contains(opts.Methods, r.Name) {
				kept = append(kept, r)
			} else {
				r.Close()
			}
		}
		runners = kept
	}
	ev, err := imageeval.NewEvaluator(backend, m, hn.Reward, stats)
	if err != nil {
		return nil, err
	}
	defer ev.Finalize()
	methods := make([]imageeval.Method, len(runners))
	var order []string
	for i, r := range runners {
		methods[i] = r.Method
	}
	for _, name := range append(MethodOrder, fmt.Sprintf("best_of_%d", opts.SmallN)) {
		for _, r := range runners {
			if r.Name == name && !contains(order, name) {
				order = append(order, name)
			}
		}
	}
	res, err := ev.Evaluate(methods, imageeval.Options{SeedsPerPrompt: opts.SeedsPerPrompt, Seed: opts.Seed,
		Batch: opts.Batch, GridSeeds: opts.GridSeeds}, prog)
	if err != nil {
		return nil, err
	}
	rep := &EvalReport{Generator: m.Name(), RewardSpec: hn.Config.RewardSpec, Prompts: m.Prompts(),
		Images: opts.SeedsPerPrompt * len(m.Prompts()), Options: opts, Backend: backend.Name(),
		Order: order, Methods: res, Seconds: time.Since(start).Seconds()}
	b, r, h := res[MethodBase], res[MethodReno], res[MethodHyperNoise]
	if b != nil && r != nil && h != nil {
		if d := r.HeldoutAlignment - b.HeldoutAlignment; d != 0 {
			rep.GainRatio = (h.HeldoutAlignment - b.HeldoutAlignment) / d
		}
	}
	return rep, nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// Table renders the report's figures as a report.Table in method order.
func (r *EvalReport) Table() report.Table {
	t := report.Table{Columns: []string{"reward", "held-out align", "FD", "diversity", "brightness", "NFE/img", "ms/img"}}
	for _, name := range r.Order {
		x := r.Methods[name]
		t.Rows = append(t.Rows, report.Row{Name: name, Values: []float64{x.Reward, x.HeldoutAlignment, x.FD,
			x.Diversity, x.Brightness, x.NFEPerImage, 1000 * x.SecondsPerImage}})
	}
	return t
}

// Text is the report as a plain-text table.
func (r *EvalReport) Text() string {
	var b strings.Builder
	t := r.Table()
	fmt.Fprintf(&b, "%-16s", "method")
	for _, c := range t.Columns {
		fmt.Fprintf(&b, " %14s", c)
	}
	b.WriteString("\n")
	for _, row := range t.Rows {
		fmt.Fprintf(&b, "%-16s", row.Name)
		for _, v := range row.Values {
			fmt.Fprintf(&b, " %14.4g", v)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "reward %q, %d images per method (%d prompts x %d seeds)", r.RewardSpec, r.Images,
		len(r.Prompts), r.Options.SeedsPerPrompt)
	if r.Methods[MethodReno] != nil && r.Methods[MethodHyperNoise] != nil {
		fmt.Fprintf(&b, "; held-out alignment gain of hypernoise / reno over base: %.2f", r.GainRatio)
	}
	b.WriteString("\n")
	return b.String()
}

// WriteGrids writes one PNG grid per method (rows: prompts; columns: the first GridSeeds seeds)
// into dir and returns the file names in method order.
func (r *EvalReport) WriteGrids(dir, prefix string) ([]report.Image, error) {
	var imgs []report.Image
	k := min(r.Options.GridSeeds, r.Options.SeedsPerPrompt)
	if k == 0 {
		return nil, nil
	}
	for _, name := range r.Order {
		res := r.Methods[name]
		n := len(res.Grid) / (fashion.Side * fashion.Side)
		if n == 0 {
			continue
		}
		png, err := fashion.GridPNG(res.Grid, n, k, 2, 2)
		if err != nil {
			return nil, err
		}
		file := prefix + name + ".png"
		if err := ckpt.WriteFileAtomic(filepath.Join(dir, file), png); err != nil {
			return nil, err
		}
		imgs = append(imgs, report.Image{File: file, Caption: fmt.Sprintf("%s (%s): reward %.3f, held-out align %.2f, FD %.1f",
			name, r.RewardSpec, res.Reward, res.HeldoutAlignment, res.FD)})
	}
	return imgs, nil
}

// Points are the methods on the reward-vs-seconds plot.
func (r *EvalReport) Points() []report.Point {
	var pts []report.Point
	for _, name := range r.Order {
		x := r.Methods[name]
		pts = append(pts, report.Point{Name: name, X: x.SecondsPerImage, Y: x.Reward})
	}
	return pts
}
