// Package toy2d is the 2-D exact-tilt benchmark: every method is scored against the exact
// reward-tilted distribution of a toy one-step generator.
//
// The generator g: R^2 -> R^2 is trained by package models/toy (8 Gaussians on a ring, rectified
// flow teacher, one-step student). For a reward r and temperature beta the target is
//
//	p*(x) ∝ p_g(x) exp(r(x)/beta),  p_g = g#N(0, I),
//
// computed without learning by quadrature in noise space: on a Q x Q midpoint grid e_ij over
// [-E, E]^2, the point g(e_ij) gets weight N(e_ij; 0, I) exp(r(g(e_ij))/beta), and the weights are
// histogrammed on the evaluation grid. Each method's samples are histogrammed on the same grid
// (G x G cells over [-X, X]^2 plus one cell for everything outside). Both histograms are smoothed
// the same way, by a Gaussian blur of std Blur cells (default 1), which keeps the finite-sample
// noise of N samples over ~10^3 cells from dominating the scores, and then compared by
//
//	KL(target || method) = Σ_i t~_i log(t~_i / m~_i),  p~ = (1 - s) p + s/(G^2 + 1)  (s = Smoothing)
//	TV = 1/2 Σ_i |t_i - m_i|
//
// by mean reward, and by cost (network evaluations and seconds per sample). The KL floor of a
// perfect sampler with the same number of samples is reported too (target.kl_floor): samples drawn
// from the quadrature distribution itself.
package toy2d

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/hypernet"
	_ "github.com/hypernoise/hypernoise/methods" // the method registry
	"github.com/hypernoise/hypernoise/models/toy"
)

// Method names, in report order: the registry's methods (one spelling everywhere) and variants
// of HyperNoise that differ in how the hypernetwork is trained (hypernoise_<variant>).
const (
	MethodBase       = hypernet.MethodBase
	MethodBestOfN    = bestofn.Name
	MethodReNO       = reno.Name
	MethodFinetune   = finetune.Name
	MethodHyperNoise = hypernet.MethodHyperNoise // LoRA modulator, paper's surrogate 1/2||f||^2
	MethodMLP        = "hypernoise_mlp"          // standalone MLP modulator, surrogate
	MethodExactKL    = "hypernoise_exact_kl"     // LoRA modulator, exact KL(T#N||N)
	MethodLogDet     = "hypernoise_logdet"       // LoRA modulator, stochastic log-det estimate of the KL
	// MethodDial is one tilt dial (an MLP conditioned on beta, trained with the logdet KL over
	// DialRange), scored at each of DialBetas against that beta's exact target; in the JSON it is
	// an object keyed by beta under methods.hypernoise_dial.
	MethodDial = "hypernoise_dial"
)

// toyChunk is the rows per compiled call of the toy's methods (2-D samples are tiny).
const toyChunk = 4096

// MethodNames lists every method, in report order.
func MethodNames() []string {
	return []string{MethodBase, MethodBestOfN, MethodReNO, MethodFinetune, MethodHyperNoise, MethodMLP, MethodExactKL, MethodLogDet, MethodDial}
}

// RewardNames lists the toy's rewards (the names a reward spec may use).
func RewardNames() []string { return toy.Rewards(DefaultConfig().Toy).Names() }

// Config configures the benchmark.
type Config struct {
	Beta   float64 `json:"beta"`   // tilt temperature
	Reward string  `json:"reward"` // reward spec over toy.Rewards, e.g. "right" or "right=1,bump=0.5"
	Seed   int64   `json:"seed"`

	Toy toy.Config `json:"toy"`

	Grid             int     `json:"grid"`              // evaluation cells per axis
	Extent           float64 `json:"extent"`            // evaluation grid covers [-Extent, Extent]^2
	Blur             float64 `json:"blur"`              // std (in cells) of the Gaussian blur of both histograms
	Smoothing        float64 `json:"smoothing"`         // uniform mixing weight s for the KL
	Samples          int     `json:"samples"`           // evaluation samples per method
	Quadrature       int     `json:"quadrature"`        // noise-grid points per axis for the target
	QuadratureExtent float64 `json:"quadrature_extent"` // noise grid covers [-E, E]^2

	BestOfN int                  `json:"best_of_n"`
	ReNO    reno.Config          `json:"reno"`
	Train   hypernet.TrainConfig `json:"train"`  // HyperNoise and fine-tune training
	Rank    int                  `json:"rank"`   // LoRA rank of the modulator and of the fine-tune
	LogDet  hypernet.LogDet      `json:"logdet"` // the stochastic log-det estimator (hypernoise_logdet)
	// DialRange is the tilt dial's trained beta range, DialBetas the betas it is scored at.
	DialRange [2]float64 `json:"dial_range"`
	DialBetas []float64  `json:"dial_betas"`
	DialSteps int        `json:"dial_steps"` // training steps of the dial (0: Train.Steps)
	MLP       struct {
		Hidden int `json:"hidden"`
		Layers int `json:"layers"`
	} `json:"mlp"`

	Methods []string `json:"methods"` // methods to run (nil: all)

	// ToyCache, if set, is a .safetensors file the trained toy generator is loaded from when it
	// exists and was trained with the same toy configuration, and saved to otherwise.
	ToyCache string `json:"-"`
}

// DefaultConfig is the full benchmark (a few minutes on 2 CPU cores).
func DefaultConfig() Config {
	c := Config{Beta: 1, Reward: "right", Seed: 1, Toy: toy.DefaultConfig(),
		Grid: 64, Extent: 3.5, Blur: 1, Smoothing: 1e-3, Samples: 20000, Quadrature: 500, QuadratureExtent: 6,
		BestOfN: 4, ReNO: reno.DefaultConfig(), Rank: 16, LogDet: hypernet.DefaultLogDet(),
		DialRange: [2]float64{0.4, 2.5}, DialBetas: []float64{0.5, 1, 2}}
	c.Train = hypernet.DefaultAdamW()
	c.Train.LR = 2e-3
	c.Train.WeightDecay = 0
	c.Train.Steps = 1500
	c.Train.BatchSize = 256
	c.Train.WarmupSteps = 50
	c.Train.ClipNorm = 1
	c.MLP.Hidden, c.MLP.Layers = 64, 2
	return c
}

// QuickConfig is the benchmark sized to finish in under a minute on 2 CPU cores.
func QuickConfig() Config {
	c := DefaultConfig()
	c.Toy = toy.QuickConfig()
	c.Grid = 48
	c.Samples = 6000
	c.Quadrature = 400
	c.Train.Steps = 400
	return c
}

// Validate checks the configuration; errors name what is allowed.
func (c Config) Validate() error {
	switch {
	case !(c.Beta > 0) || math.IsInf(c.Beta, 0):
		return fmt.Errorf("beta must be a positive number, got %g", c.Beta)
	case c.Grid < 2 || c.Quadrature < 2:
		return fmt.Errorf("grid and quadrature sizes must be >= 2, got %d and %d", c.Grid, c.Quadrature)
	case !(c.Extent > 0) || !(c.QuadratureExtent > 0):
		return fmt.Errorf("grid extents must be positive")
	case c.Blur < 0 || c.Blur > float64(c.Grid)/4:
		return fmt.Errorf("blur must be in [0, grid/4] cells, got %g", c.Blur)
	case c.Smoothing < 0 || c.Smoothing >= 1:
		return fmt.Errorf("smoothing must be in [0, 1), got %g", c.Smoothing)
	case c.Samples <= 0:
		return fmt.Errorf("samples must be positive, got %d", c.Samples)
	case c.Rank <= 0:
		return fmt.Errorf("LoRA rank must be positive, got %d", c.Rank)
	case c.MLP.Hidden <= 0 || c.MLP.Layers <= 0:
		return fmt.Errorf("MLP modulator width and depth must be positive")
	}
	if err := hypernoise.CheckKnobs(bestofn.Name, hypernoise.Knobs{N: c.BestOfN}); err != nil {
		return err
	}
	if err := c.Toy.Validate(); err != nil {
		return err
	}
	if err := c.ReNO.Validate(); err != nil {
		return err
	}
	if err := hypernoise.CheckKnobs(reno.Name, hypernoise.Knobs{Steps: c.ReNO.Steps}); err != nil {
		return err
	}
	if err := c.Train.Validate(); err != nil {
		return err
	}
	if err := c.LogDet.Validate(); err != nil {
		return err
	}
	if !(c.DialRange[0] > 0 && c.DialRange[1] > c.DialRange[0]) || math.IsInf(c.DialRange[1], 0) {
		return fmt.Errorf("dial range must satisfy 0 < lo < hi, got %v", c.DialRange)
	}
	for _, b := range c.DialBetas {
		if !(b >= c.DialRange[0] && b <= c.DialRange[1]) {
			return fmt.Errorf("dial beta %g is outside the dial's range [%g, %g]", b, c.DialRange[0], c.DialRange[1])
		}
	}
	if c.DialSteps < 0 {
		return fmt.Errorf("dial steps must be >= 0, got %d", c.DialSteps)
	}
	for _, m := range c.Methods {
		if !slices.Contains(MethodNames(), m) {
			return fmt.Errorf("unknown method %q; allowed: %s", m, strings.Join(MethodNames(), ", "))
		}
	}
	if _, err := toy.Rewards(c.Toy).Parse(c.Reward); err != nil {
		return err
	}
	return nil
}

// MethodResult is one method's score.
type MethodResult struct {
	KL               float64 `json:"kl"`
	TV               float64 `json:"tv"`
	Reward           float64 `json:"reward"`
	OutsideGrid      float64 `json:"outside_grid"` // fraction of samples outside the grid
	NFEPerSample     float64 `json:"nfe_per_sample"`
	SecondsPerSample float64 `json:"seconds_per_sample"`
	Forward          float64 `json:"forward_per_sample"`
	Backward         float64 `json:"backward_per_sample"`
	// Training (fine-tune and HyperNoise): steps, skipped steps, wall time and network
	// evaluations of the whole training run.
	TrainSteps   int     `json:"train_steps,omitempty"`
	TrainSkipped int     `json:"train_skipped,omitempty"`
	TrainSeconds float64 `json:"train_seconds,omitempty"`
	TrainNFE     float64 `json:"train_nfe,omitempty"`
	// TargetReward is E_{p*}[r] of this row's own target (tilt dial rows, whose beta differs from
	// the report's).
	TargetReward float64 `json:"target_reward,omitempty"`

	density []float64
}

// Target describes the exact tilted distribution.
type Target struct {
	Reward float64 `json:"reward"` // E_{p*}[r]
	// BaseReward is E_{p_g}[r] under the untilted generator, by the same quadrature.
	BaseReward float64 `json:"base_reward"`
	// KLFloor, TVFloor: the scores of Samples draws from the target itself (finite-sample floor).
	KLFloor float64 `json:"kl_floor"`
	TVFloor float64 `json:"tv_floor"`
}

// Check is one of the relations the method is expected to satisfy.
type Check struct {
	Name   string `json:"name"`
	Holds  bool   `json:"holds"`
	Detail string `json:"detail"`
}

// Report is the benchmark's result. Its JSON form is the `hypernoise toy --json` output.
type Report struct {
	Beta    float64                  `json:"beta"`
	Reward  string                   `json:"reward_spec"`
	Target  Target                   `json:"target"`
	Methods map[string]*MethodResult `json:"methods"`
	Checks  []Check                  `json:"checks"`
	Grid    struct {
		Cells     int     `json:"cells_per_axis"`
		Extent    float64 `json:"extent"`
		Blur      float64 `json:"blur_cells"`
		Smoothing float64 `json:"smoothing"`
		Samples   int     `json:"samples_per_method"`
	} `json:"grid"`
	Toy     toy.TrainStats `json:"toy"`
	Seconds float64        `json:"seconds"`
	// Dial holds the tilt dial's scores keyed by beta ("0.5", "1", "2"); JSON: methods.hypernoise_dial.
	Dial map[string]*MethodResult `json:"-"`

	dialOrder     []string
	order         []string
	targetDensity []float64
}

// Order lists the methods in the report in their canonical order.
func (r *Report) Order() []string { return slices.Clone(r.order) }

// Random streams of the benchmark (see hypernet.Normal).
const (
	streamEval   = 101
	streamFloor  = 103
	streamJitter = 104
)

// grid histograms points on [-ext, ext]^2 with n cells per axis plus one outside cell.
type grid struct {
	n   int
	ext float64
}

func (g grid) cells() int { return g.n*g.n + 1 }

func (g grid) bin(x, y float64) int {
	fx := (x + g.ext) / (2 * g.ext) * float64(g.n)
	fy := (y + g.ext) / (2 * g.ext) * float64(g.n)
	if !(fx >= 0 && fx < float64(g.n) && fy >= 0 && fy < float64(g.n)) { // also NaN
		return g.n * g.n
	}
	return int(fy)*g.n + int(fx)
}

// histogram of points xs (flat [N*2]) with weights w (nil: equal), normalized to sum 1.
func (g grid) histogram(xs []float32, w []float64) []float64 {
	h := make([]float64, g.cells())
	total := 0.0
	for i := 0; i < len(xs)/2; i++ {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		h[g.bin(float64(xs[2*i]), float64(xs[2*i+1]))] += wi
		total += wi
	}
	for i := range h {
		h[i] /= total
	}
	return h
}

// blurred convolves the G x G part of a histogram with a Gaussian of std sigma cells (truncated at
// 3 sigma, zero outside the grid, renormalized per output cell so that no mass leaks at the
// border); the outside cell is kept as is.
func (g grid) blurred(h []float64, sigma float64) []float64 {
	if sigma <= 0 {
		return h
	}
	r := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*r+1)
	for i := range k {
		d := float64(i - r)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
	}
	n := g.n
	pass := func(src []float64, horizontal bool) []float64 {
		dst := make([]float64, len(src))
		copy(dst, src)
		for i := range n {
			for j := range n {
				s, wsum := 0.0, 0.0
				for o := -r; o <= r; o++ {
					ii, jj := i, j+o
					if !horizontal {
						ii, jj = i+o, j
					}
					if ii < 0 || ii >= n || jj < 0 || jj >= n {
						continue
					}
					s += k[o+r] * src[ii*n+jj]
					wsum += k[o+r]
				}
				dst[i*n+j] = s / wsum
			}
		}
		return dst
	}
	out := pass(pass(h, true), false)
	// Renormalize to the original total mass.
	before, after := 0.0, 0.0
	for i := range n * n {
		before += h[i]
		after += out[i]
	}
	if after > 0 {
		for i := range n * n {
			out[i] *= before / after
		}
	}
	return out
}

// KL computes KL(t || m) = Σ t~ log(t~/m~) after mixing both with the uniform distribution:
// p~ = (1-s) p + s/len(p).
func KL(t, m []float64, s float64) float64 {
	u := s / float64(len(t))
	kl := 0.0
	for i := range t {
		ti := (1-s)*t[i] + u
		mi := (1-s)*m[i] + u
		if ti > 0 {
			kl += ti * math.Log(ti/mi)
		}
	}
	return kl
}

// TV computes the total variation distance 1/2 Σ |t - m|.
func TV(t, m []float64) float64 {
	d := 0.0
	for i := range t {
		d += math.Abs(t[i] - m[i])
	}
	return d / 2
}

// toyGenerator trains the toy generator, or loads it from cfg.ToyCache.
func toyGenerator(backend backends.Backend, ctx *context.Context, cfg Config) (*toy.Model, toy.TrainStats, error) {
	js, err := json.Marshal(cfg.Toy)
	if err != nil {
		return nil, toy.TrainStats{}, err
	}
	if cfg.ToyCache != "" {
		if data, err := os.ReadFile(cfg.ToyCache); err == nil {
			probe := context.New()
			meta, err := ckpt.Decode(probe, data)
			if err == nil && meta["toy_config"] == string(js) {
				if _, err := ckpt.Decode(ctx, data); err != nil {
					return nil, toy.TrainStats{}, err
				}
				var st toy.TrainStats
				_ = json.Unmarshal([]byte(meta["toy_stats"]), &st)
				return &toy.Model{Config: cfg.Toy}, st, nil
			}
		}
	}
	gen, st, err := toy.Train(backend, ctx, cfg.Toy, nil)
	if err != nil {
		return nil, st, err
	}
	if cfg.ToyCache != "" {
		sj, _ := json.Marshal(st)
		if err := ckpt.Save(ctx, "/"+cfg.Toy.Scope, cfg.ToyCache, map[string]string{"toy_config": string(js), "toy_stats": string(sj)}); err != nil {
			return nil, st, err
		}
	}
	return gen, st, nil
}

// checks evaluates the relations the issue expects of HyperNoise (for the paper's surrogate,
// "hypernoise", and for the exact-KL variant), for the methods that were run.
func checks(r *Report) []Check {
	var out []Check
	get := func(name string) *MethodResult { return r.Methods[name] }
	add := func(name string, holds bool, format string, args ...any) {
		out = append(out, Check{Name: name, Holds: holds, Detail: fmt.Sprintf(format, args...)})
	}
	base, ft, rn := get(MethodBase), get(MethodFinetune), get(MethodReNO)
	if rn != nil {
		add("reno_reward_above_target", rn.Reward > r.Target.Reward, "reward %.4g vs target %.4g", rn.Reward, r.Target.Reward)
	}
	for _, name := range []string{MethodHyperNoise, MethodExactKL, MethodLogDet} {
		hn := get(name)
		if hn == nil {
			continue
		}
		if base != nil {
			add(name+"_kl_at_most_half_base", hn.KL <= 0.5*base.KL, "KL %.4f vs base %.4f", hn.KL, base.KL)
		}
		if ft != nil {
			add(name+"_kl_at_most_half_finetune", hn.KL <= 0.5*ft.KL, "KL %.4f vs finetune %.4f", hn.KL, ft.KL)
		}
		tr := r.Target.Reward
		add(name+"_reward_within_15pct_of_target", math.Abs(hn.Reward-tr) <= 0.15*math.Abs(tr),
			"reward %.4f vs target %.4f (%+.1f%%)", hn.Reward, tr, 100*(hn.Reward-tr)/math.Abs(tr))
		if rn != nil {
			add("reno_kl_above_"+name, rn.KL > hn.KL, "KL %.4f vs %s %.4f", rn.KL, name, hn.KL)
		}
	}
	if ex, hn := get(MethodExactKL), get(MethodHyperNoise); ex != nil && hn != nil {
		add("exact_kl_at_least_as_close_as_surrogate", ex.KL <= hn.KL, "KL %.4f vs surrogate %.4f", ex.KL, hn.KL)
	}
	if ld := get(MethodLogDet); ld != nil {
		add("logdet_kl_at_most_0.15", ld.KL <= 0.15, "KL %.4f", ld.KL)
		if ex := get(MethodExactKL); ex != nil {
			// One-sided: the exact-KL row is itself one training run, whose KL moved between 0.014
			// and 0.14 over training seeds 1-4 of the quick benchmark (and with the matrix product's
			// rounding); logdet landing below it is not a miss.
			add("logdet_kl_at_most_exact_kl_plus_0.1", ld.KL <= ex.KL+0.1, "KL %.4f vs exact KL %.4f", ld.KL, ex.KL)
		}
	}
	for _, k := range r.dialOrder {
		d := r.Dial[k]
		add("dial_beta_"+k+"_kl_at_most_0.2", d.KL <= 0.2, "KL %.4f, reward %.4f vs its target's %.4f", d.KL, d.Reward, d.TargetReward)
	}
	return out
}

// Table renders the report as a plain-text table.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "reward %s, beta %g; target mean reward %.3f (base generator %.3f); %d samples per method, %dx%d grid\n",
		r.Reward, r.Beta, r.Target.Reward, r.Target.BaseReward, r.Grid.Samples, r.Grid.Cells, r.Grid.Cells)
	fmt.Fprintf(&b, "%-20s %8s %7s %10s %8s %10s %10s %9s\n", "method", "KL", "TV", "reward", "outside", "NFE/sample", "us/sample", "train s")
	fmt.Fprintf(&b, "%-20s %8.4f %7.4f %10.4g %8s %10s %10s %9s\n", "(exact sampler)", r.Target.KLFloor, r.Target.TVFloor, r.Target.Reward, "", "", "", "")
	for _, m := range r.order {
		res := r.Methods[m]
		train := ""
		if res.TrainSteps > 0 {
			train = fmt.Sprintf("%.1f", res.TrainSeconds)
		}
		fmt.Fprintf(&b, "%-20s %8.4f %7.4f %10.4g %8.4f %10.0f %10.2f %9s\n", m, res.KL, res.TV, res.Reward, res.OutsideGrid,
			res.NFEPerSample, 1e6*res.SecondsPerSample, train)
	}
	for _, k := range r.dialOrder {
		res := r.Dial[k]
		fmt.Fprintf(&b, "%-20s %8.4f %7.4f %10.4g %8.4f %10.0f %10.2f %9.1f  (target reward %.3f)\n", MethodDial+" b="+k, res.KL, res.TV, res.Reward, res.OutsideGrid,
			res.NFEPerSample, 1e6*res.SecondsPerSample, res.TrainSeconds, res.TargetReward)
	}
	for _, c := range r.Checks {
		mark := "yes"
		if !c.Holds {
			mark = "NO "
		}
		fmt.Fprintf(&b, "[%s] %s: %s\n", mark, c.Name, c.Detail)
	}
	return b.String()
}

// MarshalJSON writes the report with the tilt dial's rows as methods.hypernoise_dial, an object
// keyed by beta.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	methods := map[string]any{}
	for k, v := range r.Methods {
		methods[k] = v
	}
	if len(r.Dial) > 0 {
		methods[MethodDial] = r.Dial
	}
	return json.Marshal(struct {
		*plain
		Methods map[string]any `json:"methods"`
	}{(*plain)(r), methods})
}
