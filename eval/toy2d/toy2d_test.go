package toy2d

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/hypernoise/hypernoise/compute"
)

func TestKLAndTV(t *testing.T) {
	p := []float64{0.5, 0.5, 0}
	q := []float64{0.25, 0.25, 0.5}
	// Without smoothing: KL(p||q) = 2 * 0.5 log 2 = log 2; TV = 1/2 (0.25 + 0.25 + 0.5) = 0.5.
	if got := KL(p, q, 0); math.Abs(got-math.Log(2)) > 1e-12 {
		t.Errorf("KL = %g, want log 2", got)
	}
	if got := TV(p, q); math.Abs(got-0.5) > 1e-12 {
		t.Errorf("TV = %g, want 0.5", got)
	}
	// With smoothing s the inputs are mixed with the uniform distribution first.
	s := 0.3
	mix := func(v float64) float64 { return (1-s)*v + s/3 }
	want := 0.0
	for i := range p {
		want += mix(p[i]) * math.Log(mix(p[i])/mix(q[i]))
	}
	if got := KL(p, q, s); math.Abs(got-want) > 1e-12 {
		t.Errorf("smoothed KL = %g, want %g", got, want)
	}
	// Smoothing keeps the KL finite where q has no mass.
	if got := KL(q, p, 1e-3); math.IsInf(got, 0) || math.IsNaN(got) || got <= 0 {
		t.Errorf("KL with an empty cell = %g", got)
	}
	if KL(p, p, 1e-3) != 0 || TV(p, p) != 0 {
		t.Error("distance of a distribution to itself is not 0")
	}
}

func TestGrid(t *testing.T) {
	g := grid{n: 4, ext: 2} // cells of width 1 over [-2, 2]^2
	for _, c := range []struct {
		x, y float64
		want int
	}{{-1.5, -1.5, 0}, {1.5, -1.5, 3}, {-1.5, 1.5, 12}, {0.5, 0.5, 10}, {2.5, 0, 16}, {0, -3, 16}, {math.NaN(), 0, 16}} {
		if got := g.bin(c.x, c.y); got != c.want {
			t.Errorf("bin(%g, %g) = %d, want %d", c.x, c.y, got, c.want)
		}
	}
	h := g.histogram([]float32{-1.5, -1.5, -1.5, -1.5, 5, 5, 0.5, 0.5}, []float64{1, 1, 1, 2})
	if h[0] != 0.4 || h[16] != 0.2 || h[10] != 0.4 {
		t.Errorf("weighted histogram %v", h)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Beta = 0 }, "beta must be a positive"},
		{func(c *Config) { c.Beta = -1 }, "beta must be a positive"},
		{func(c *Config) { c.Rank = 0 }, "rank must be positive"},
		{func(c *Config) { c.Train.Steps = 0 }, "steps must be positive"},
		{func(c *Config) { c.Train.BatchSize = 0 }, "batch size must be positive"},
		{func(c *Config) { c.Reward = "left" }, "available rewards: bump, right, up"},
		{func(c *Config) { c.Methods = []string{"base", "magic"} }, "allowed: base, best-of-n, reno, finetune, hypernoise"},
		{func(c *Config) { c.ReNO.Steps = -3 }, "steps must be positive"},
	} {
		cfg := QuickConfig()
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one mentioning %q", err, c.want)
		}
	}
	if err := QuickConfig().Validate(); err != nil {
		t.Errorf("QuickConfig invalid: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig invalid: %v", err)
	}
}

var (
	quickOnce sync.Once
	quickRep  *Report
	quickErr  error
)

// quickReport runs the --quick benchmark once for all the tests below.
func quickReport(t *testing.T) *Report {
	t.Helper()
	if testing.Short() {
		t.Skip("the quick benchmark takes about a minute")
	}
	quickOnce.Do(func() {
		b, err := compute.NewBackend("")
		if err != nil {
			quickErr = err
			return
		}
		quickRep, quickErr = Run(b, QuickConfig(), nil)
	})
	if quickErr != nil {
		t.Fatal(quickErr)
	}
	return quickRep
}

func checkNamed(t *testing.T, rep *Report, name string) Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, rep.Checks)
	return Check{}
}

// TestQuickBenchmarkExactKL checks the relations on the --quick benchmark for HyperNoise
// trained with the exact KL(T#N || N): KL at most half of the base's and of the fine-tune's,
// mean reward within 15% of the target's, ReNO's reward above the target's but its KL above
// HyperNoise's, and the exact-KL variant at least as close to the target as the surrogate.
func TestQuickBenchmarkExactKL(t *testing.T) {
	rep := quickReport(t)
	t.Logf("\n%s", rep.Table())
	for _, name := range []string{
		"hypernoise_exact_kl_kl_at_most_half_base",
		"hypernoise_exact_kl_kl_at_most_half_finetune",
		"hypernoise_exact_kl_reward_within_15pct_of_target",
		"reno_reward_above_target",
		"reno_kl_above_hypernoise_exact_kl",
		"exact_kl_at_least_as_close_as_surrogate",
	} {
		if c := checkNamed(t, rep, name); !c.Holds {
			t.Errorf("%s does not hold: %s", name, c.Detail)
		}
	}
}

// TestQuickBenchmarkSurrogate records what the paper's surrogate 1/2||f||^2 does on the toy. It
// is far from the fine-tune and from ReNO (those relations hold), but it does not sample the
// tilted distribution: measured on the quick benchmark (beta 1, reward x1) its KL is above the
// base's (0.98 vs 0.60) and its reward overshoots the target's by 23%. The surrogate's
// minimizer is pointwise, eps' = argmin 1/2|eps' - eps|^2 - r(g(eps'))/beta, which ignores the
// volume term of KL(T#N || N) and over-tilts; see docs/toy.md. The issue's relations "KL at most
// half of the base's" and "reward within 15% of the target's" therefore do not hold for it; this
// test asserts the measured over-tilt instead, and the report lists those relations as failing.
func TestQuickBenchmarkSurrogate(t *testing.T) {
	rep := quickReport(t)
	for _, name := range []string{"hypernoise_kl_at_most_half_finetune", "reno_kl_above_hypernoise"} {
		if c := checkNamed(t, rep, name); !c.Holds {
			t.Errorf("%s does not hold: %s", name, c.Detail)
		}
	}
	for _, name := range []string{"hypernoise_kl_at_most_half_base", "hypernoise_reward_within_15pct_of_target"} {
		c := checkNamed(t, rep, name)
		t.Logf("%s: holds=%v (%s)", name, c.Holds, c.Detail)
	}
	hn, ex := rep.Methods[MethodHyperNoise], rep.Methods[MethodExactKL]
	if !(hn.Reward > rep.Target.Reward && hn.Reward > ex.Reward) {
		t.Errorf("surrogate reward %.3f, target %.3f, exact-KL %.3f: expected the surrogate to over-tilt", hn.Reward, rep.Target.Reward, ex.Reward)
	}
	if !(hn.Reward > rep.Methods[MethodBase].Reward) {
		t.Errorf("surrogate reward %.3f not above the base's %.3f", hn.Reward, rep.Methods[MethodBase].Reward)
	}
}

// TestQuickBenchmarkSanity checks properties that hold by construction.
func TestQuickBenchmarkSanity(t *testing.T) {
	rep := quickReport(t)
	if len(rep.Methods)+1 != len(MethodNames()) || len(rep.Dial) != len(QuickConfig().DialBetas) {
		t.Fatalf("%d methods and %d dial betas scored", len(rep.Methods), len(rep.Dial))
	}
	base := rep.Methods[MethodBase]
	// Base samples are draws from p_g: their mean reward is close to the quadrature's E_pg[r].
	if math.Abs(base.Reward-rep.Target.BaseReward) > 0.1 {
		t.Errorf("base reward %.3f vs quadrature %.3f", base.Reward, rep.Target.BaseReward)
	}
	// The exact sampler's KL is the floor: the base (untilted) is further away.
	if !(rep.Target.KLFloor < base.KL) {
		t.Errorf("KL floor %.4f not below the base's %.4f", rep.Target.KLFloor, base.KL)
	}
	// Best-of-N raises the reward above the base's.
	if bon := rep.Methods[MethodBestOfN]; !(bon.Reward > base.Reward) || bon.Forward != 4 {
		t.Errorf("best-of-N reward %.3f (base %.3f), forward passes %g", bon.Reward, base.Reward, bon.Forward)
	}
	// Costs: base 1 NFE, HyperNoise 2, ReNO 2 per step.
	if base.NFEPerSample != 1 || rep.Methods[MethodHyperNoise].NFEPerSample != 2 || rep.Methods[MethodReNO].NFEPerSample != 100 {
		t.Errorf("NFE per sample: base %g, hypernoise %g, reno %g", base.NFEPerSample, rep.Methods[MethodHyperNoise].NFEPerSample, rep.Methods[MethodReNO].NFEPerSample)
	}
	for name, m := range rep.Methods {
		if m.SecondsPerSample <= 0 || math.IsNaN(m.KL) || m.KL < 0 || m.TV < 0 || m.TV > 1 {
			t.Errorf("%s: implausible scores %+v", name, m)
		}
	}
	data, err := rep.PNG()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() < 400 || img.Bounds().Dy() < 200 {
		t.Errorf("plot is %v", img.Bounds())
	}
}

// TestQuickBenchmarkLogDetAndDial checks the stochastic log-det regularizer (LoRA modulator,
// Hutchinson series, not the exact Jacobian) and the tilt dial on the quick benchmark: logdet KL
// <= 0.15 and at most 0.1 above the exact-KL row; the dial's KL <= 0.2 at each beta against that
// beta's own target; and the JSON form methods.hypernoise_dial keyed by beta.
func TestQuickBenchmarkLogDetAndDial(t *testing.T) {
	rep := quickReport(t)
	for _, name := range []string{"logdet_kl_at_most_0.15", "logdet_kl_at_most_exact_kl_plus_0.1",
		"dial_beta_0.5_kl_at_most_0.2", "dial_beta_1_kl_at_most_0.2", "dial_beta_2_kl_at_most_0.2"} {
		if c := checkNamed(t, rep, name); !c.Holds {
			t.Errorf("%s does not hold: %s", name, c.Detail)
		}
	}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Methods map[string]json.RawMessage `json:"methods"`
	}
	if err := json.Unmarshal(data, &js); err != nil {
		t.Fatal(err)
	}
	var ld MethodResult
	if err := json.Unmarshal(js.Methods[MethodLogDet], &ld); err != nil || ld.KL != rep.Methods[MethodLogDet].KL {
		t.Errorf("methods.%s in JSON: %s (%v)", MethodLogDet, js.Methods[MethodLogDet], err)
	}
	var dial map[string]map[string]float64
	if err := json.Unmarshal(js.Methods[MethodDial], &dial); err != nil {
		t.Fatalf("methods.%s in JSON: %v", MethodDial, err)
	}
	// The dial's targets differ by beta: a lower beta tilts more, so its target reward is higher.
	prev := math.Inf(1)
	for _, k := range []string{"0.5", "1", "2"} {
		row, ok := dial[k]
		if !ok {
			t.Fatalf("methods.%s has no key %q: %v", MethodDial, k, dial)
		}
		for _, f := range []string{"kl", "tv", "reward"} {
			if _, ok := row[f]; !ok {
				t.Errorf("methods.%s[%q] lacks %q", MethodDial, k, f)
			}
		}
		if !(row["target_reward"] < prev) {
			t.Errorf("target reward at beta %s (%.3f) not below the previous beta's (%.3f)", k, row["target_reward"], prev)
		}
		prev = row["target_reward"]
	}
}
