package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/eval/imageeval"
	"github.com/hypernoise/hypernoise/eval/report"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/metrics"
	"github.com/hypernoise/hypernoise/progress"
)

// Report labels of the methods whose figures the gain ratio compares (the others are labelled by
// their method, e.g. "best-of-4", "best-of-100").
const (
	MethodBase       = hypernet.MethodBase
	MethodReno       = reno.Name
	MethodHyperNoise = hypernet.MethodHyperNoise
)

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
	// Beta is the tilt temperature of a tilt-dial hypernetwork (0: its own).
	Beta float64 `json:"beta,omitempty"`
	// Methods restricts the evaluation to these registered method names (nil: all; "best-of-n"
	// selects both best-of-N rows). Base is always included.
	Methods []string `json:"methods,omitempty"`
	// TiltPool is how many base samples per prompt the tilt reference at the hypernetwork's beta
	// resamples (0: no tilt reference; see TiltColumns).
	TiltPool int `json:"tilt_pool,omitempty"`
	// TiltSampler is how the tilt reference is drawn: TiltSIR (default, ""), resampling TiltPool
	// base samples, or TiltSMC, moving TiltPool particles per prompt along the tempered path
	// (eval/tilt's SMC: for a beta at which the base pool's ESS collapses).
	TiltSampler string `json:"tilt_sampler,omitempty"`
	// TiltMoves is the SMC sampler's MALA moves per stage (0: tilt.DefaultSMC's).
	TiltMoves int `json:"tilt_moves,omitempty"`

	// tiltCache, when set (EvaluateSeeds), shares tilt references between evaluations.
	tiltCache *tiltCache
}

// MaxTiltMoves bounds EvalOptions.TiltMoves.
const MaxTiltMoves = 1000

// Tilt reference samplers (EvalOptions.TiltSampler).
const (
	TiltSIR = "sir"
	TiltSMC = "smc"
)

// Validate checks the options; the method knobs against the method registry's limits.
func (o EvalOptions) Validate() error {
	switch {
	case o.SeedsPerPrompt < 2 || o.SeedsPerPrompt > 1000:
		return fmt.Errorf("seeds per prompt must be in [2, 1000], got %d", o.SeedsPerPrompt)
	case o.FinetuneSteps < 0:
		return fmt.Errorf("fine-tune steps must be >= 0, got %d", o.FinetuneSteps)
	case o.FinetuneSteps > 0 && o.FinetuneRank < 1:
		return fmt.Errorf("fine-tune rank must be positive, got %d", o.FinetuneRank)
	case o.GridSeeds < 0 || o.Batch < 0:
		return fmt.Errorf("grid seeds and batch must be >= 0")
	case o.TiltPool < 0 || o.TiltPool == 1 || o.TiltPool > MaxTiltPool:
		return fmt.Errorf("tilt pool must be 0 (none) or in [2, %d], got %d", MaxTiltPool, o.TiltPool)
	case o.TiltMoves < 0 || o.TiltMoves > MaxTiltMoves:
		return fmt.Errorf("tilt moves must be in [0, %d], got %d", MaxTiltMoves, o.TiltMoves)
	case o.TiltSampler != "" && o.TiltSampler != TiltSIR && o.TiltSampler != TiltSMC:
		return fmt.Errorf("unknown tilt sampler %q (want %s or %s)", o.TiltSampler, TiltSIR, TiltSMC)
	}
	if err := hypernoise.CheckKnobs(reno.Name, hypernoise.Knobs{Steps: o.RenoSteps}); err != nil {
		return err
	}
	if o.WarmRenoSteps != 0 {
		if err := hypernoise.CheckKnobs(reno.WarmName, hypernoise.Knobs{Steps: o.WarmRenoSteps}); err != nil {
			return err
		}
	}
	return hypernoise.CheckKnobs(bestofn.Name, hypernoise.Knobs{N: o.SmallN})
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
	// GainRatio is (hypernoise - base) / (reno - base) of the held-out alignment (null for a
	// model without a held-out evaluator).
	GainRatio metrics.Figure `json:"heldout_gain_ratio_vs_reno"`
	// Tilt: every method's share of the tilt's and of ReNO's reward gain, and its distance to the
	// tilt reference set.
	Tilt    *TiltColumns `json:"tilt,omitempty"`
	Seconds float64      `json:"seconds"`

	grid family.GridFunc // the model's grid writer (nil: no grids)
}

// Evaluate compares every method on hn's reward, for the model of pipeline p (the fine-tune
// baseline is trained, or reloaded, in dir when opts.FinetuneSteps > 0). Rows, in registry
// order: base, best-of-N with N = SmallN and with N = 2*RenoSteps (ReNO's network evaluations),
// ReNO, fine-tune, HyperNoise, HyperNoise + WarmRenoSteps ReNO steps. The held-out figures
// (alignment, FD, the gain ratio) are null for a model without a held-out evaluator.
func Evaluate(p *infer.Pipeline, hn *infer.Hypernet, dir string, opts EvalOptions, prog progress.Func) (rep *EvalReport, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("evaluation: %v", r)
		}
	}()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	for _, name := range opts.Methods {
		if _, err := hypernoise.LookupMethod(name); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	m := p.Model()
	ev, err := imageeval.NewEvaluator(p.Backend(), m, hn.Reward)
	if err != nil {
		return nil, err
	}
	defer ev.Finalize()
	reqs, err := evalRequests(p, hn, dir, opts, prog)
	if err != nil {
		return nil, err
	}
	var methods []hypernoise.Method
	var order []string
	for _, r := range reqs {
		meth, err := p.Method(r)
		if err != nil {
			return nil, err
		}
		methods = append(methods, meth)
		order = append(order, meth.Name())
	}
	res, err := ev.Evaluate(methods, imageeval.Options{SeedsPerPrompt: opts.SeedsPerPrompt, Seed: opts.Seed,
		Batch: opts.Batch, GridSeeds: opts.GridSeeds}, prog)
	if err != nil {
		return nil, err
	}
	gen := m.Generator
	rep = &EvalReport{Generator: gen.Name(), RewardSpec: hn.Config.RewardSpec, Prompts: gen.Prompts(),
		Images: opts.SeedsPerPrompt * m.NumPrompts(), Options: opts, Backend: p.Backend().Name(),
		Order: order, Methods: res, Seconds: time.Since(start).Seconds(), GainRatio: metrics.NA, grid: m.Grid}
	if m.HeldOut != nil {
		rep.GainRatio = 0
		b, r, h := res[MethodBase], res[MethodReno], res[MethodHyperNoise]
		if b != nil && r != nil && h != nil {
			if d := r.HeldoutAlignment - b.HeldoutAlignment; d != 0 {
				rep.GainRatio = (h.HeldoutAlignment - b.HeldoutAlignment) / d
			}
		}
	}
	if rep.Tilt, err = tiltColumns(p, hn, ev, res, opts, prog); err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
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
		t.Rows = append(t.Rows, report.Row{Name: name, Values: []float64{x.Reward, float64(x.HeldoutAlignment), float64(x.FD),
			x.Diversity, x.Brightness, x.NFEPerImage, 1000 * x.SecondsPerImage}})
	}
	return t
}

// Text is the report as a plain-text table.
func (r *EvalReport) Text() string {
	var b strings.Builder
	r.Table().WriteText(&b, "method", 16, 14, "%.4g")
	fmt.Fprintf(&b, "reward %q, %d images per method (%d prompts x %d seeds)", r.RewardSpec, r.Images,
		len(r.Prompts), r.Options.SeedsPerPrompt)
	if r.Methods[MethodReno] != nil && r.Methods[MethodHyperNoise] != nil && r.GainRatio.Valid() {
		fmt.Fprintf(&b, "; held-out alignment gain of hypernoise / reno over base: %.2f", r.GainRatio)
	}
	b.WriteString("\n")
	r.Tilt.writeText(&b, r.Order)
	return b.String()
}

// WriteGrids writes one PNG grid per method (rows: prompts; columns: the first GridSeeds seeds)
// into dir and returns the file names in method order; none for a model without a grid writer.
func (r *EvalReport) WriteGrids(dir, prefix string) ([]report.Image, error) {
	var imgs []report.Image
	k := min(r.Options.GridSeeds, r.Options.SeedsPerPrompt)
	if k == 0 || r.grid == nil {
		return nil, nil
	}
	n := k * max(1, len(r.Prompts))
	for _, name := range r.Order {
		res := r.Methods[name]
		if len(res.Grid) == 0 {
			continue
		}
		png, err := r.grid(res.Grid, n, k, 2, 2)
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

// evalRequests lists the requests an evaluation runs, in registry order: base, best-of-N with
// N = SmallN and with N = 2*RenoSteps (ReNO's network evaluations), ReNO, fine-tune (trained, or
// reloaded, in dir and installed in p), HyperNoise, HyperNoise + WarmRenoSteps ReNO steps; only
// those in opts.Methods when it is set (base always).
func evalRequests(p *infer.Pipeline, hn *infer.Hypernet, dir string, opts EvalOptions, prog progress.Func) ([]infer.Request, error) {
	want := func(name string) bool {
		return name == MethodBase || len(opts.Methods) == 0 || contains(opts.Methods, name)
	}
	var reqs []infer.Request
	for _, name := range hypernoise.MethodNames() {
		if !want(name) {
			continue
		}
		r := infer.Request{Method: name, Hypernet: hn.Name, Reward: hn.Config.RewardSpec, Beta: opts.Beta}
		switch name {
		case bestofn.Name:
			small, matched := r, r
			small.N, matched.N = opts.SmallN, 2*opts.RenoSteps
			reqs = append(reqs, small)
			if matched.N != small.N {
				reqs = append(reqs, matched)
			}
			continue
		case reno.Name:
			r.Steps = opts.RenoSteps
		case reno.WarmName:
			if opts.WarmRenoSteps == 0 {
				continue
			}
			r.Steps = opts.WarmRenoSteps
		case finetune.Name:
			if opts.FinetuneSteps == 0 {
				continue
			}
			cfg := hn.Config.Train
			cfg.Steps = opts.FinetuneSteps
			err := p.Update(func(*context.Context) error {
				ft, err := LoadOrTrainFinetune(p.Backend(), p.Model(), hn.Config.RewardSpec, opts.FinetuneRank, cfg, dir, prog)
				if err == nil {
					p.SetFinetuned(ft)
				}
				return err
			})
			if err != nil {
				return nil, err
			}
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}
