package tilt

import (
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/rewards"
)

// promptIdentityGen is g(eps, c) = eps for eps of shape [4], conditioned on two prompts.
type promptIdentityGen struct{}

func (promptIdentityGen) Name() string      { return "identity-2-prompts" }
func (promptIdentityGen) NoiseShape() []int { return []int{4} }
func (promptIdentityGen) Prompts() []string { return []string{"a", "b"} }
func (promptIdentityGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return eps
}

// The quadratic reward r(x, c) = Σ_j (-a_j x_j²/2 + b_cj x_j): its tilt of N(0, I) at beta is
// Gaussian with independent coordinates, precision 1 + a_j/beta and mean (b_cj/beta)/(1 + a_j/beta).
var (
	quadA = []float32{1, 0.5, 0, 2}
	quadB = [][]float32{{0.2, -0.1, 0.05, 0}, {-0.1, 0, 0.04, 0.3}}
)

func quadraticReward() rewards.Func {
	return rewards.Func{RewardName: "quadratic", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		g := x.Graph()
		b := Gather(Const(g, quadB), ExpandAxes(prompts, -1)) // [B, 4]
		a := ExpandAxes(Const(g, quadA), 0)
		return ReduceSum(Sub(Mul(b, x), MulScalar(Mul(a, Square(x)), 0.5)), -1)
	}}
}

// TestSMCSamplesAFarTilt: at beta 0.02 the quadratic reward's tilt sits 2.0-2.5 standard
// deviations of the base away along one axis and is 51 times narrower along another, where a
// base pool of the same size resamples with an ESS near 1. The SMC particles must have the
// tilt's mean and variance per coordinate and prompt, the tilt's mean reward and the base's, and
// weights that are uniform at their own beta.
func TestSMCSamplesAFarTilt(t *testing.T) {
	backend := testutil.Backend(t)
	const beta = 0.02
	cfg := DefaultSMC()
	cfg.Particles, cfg.Seed = 512, 3
	reward := quadraticReward()
	rs, stats, err := SMC(backend, context.New(), promptIdentityGen{}, reward, nil, beta, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stages %d, acceptance %.2f", stats.Stages, stats.Accept)
	if stats.Stages < 2 || !(stats.Accept > 0.3) {
		t.Errorf("stages %d, acceptance %.2f: want several stages and a working MALA", stats.Stages, stats.Accept)
	}
	sir, err := New(backend, context.New(), promptIdentityGen{}, reward, cfg.Particles, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ess := sir.ESS(beta); ess[0] > 10 {
		t.Fatalf("the base pool's ESS at beta %g is %.1f: the test's tilt is meant to be out of SIR's reach", beta, ess[0])
	}
	var wantMean, wantBase float64
	for c := range 2 {
		x := rs.Noise(c, 4)
		for j := range 4 {
			prec := 1 + float64(quadA[j])/beta
			mu, v := float64(quadB[c][j])/beta/prec, 1/prec
			var m, s2 float64
			for i := range cfg.Particles {
				m += float64(x[i*4+j]) / float64(cfg.Particles)
			}
			for i := range cfg.Particles {
				e := float64(x[i*4+j]) - m
				s2 += e * e / float64(cfg.Particles-1)
			}
			sd := math.Sqrt(v)
			// Tolerances: about 4 standard errors of 512 draws with the chains' correlation.
			if math.Abs(m-mu) > 0.25*sd {
				t.Errorf("prompt %d coordinate %d: mean %.4f, want %.4f (sd %.4f)", c, j, m, mu, sd)
			}
			if math.Abs(s2/v-1) > 0.3 {
				t.Errorf("prompt %d coordinate %d: variance %.4f, want %.4f", c, j, s2, v)
			}
			wantMean += (-0.5*float64(quadA[j])*(v+mu*mu) + float64(quadB[c][j])*mu) / 2
			wantBase += -0.5 * float64(quadA[j]) / 2
		}
	}
	if got := rs.Mean(beta); math.Abs(got-wantMean) > 0.05*math.Abs(wantMean-wantBase) {
		t.Errorf("tilt mean reward %.4f, want %.4f (base %.4f)", got, wantMean, wantBase)
	}
	if got := rs.BaseMean(); math.Abs(got-wantBase) > 0.1 {
		t.Errorf("base mean reward %.4f, want %.4f", got, wantBase)
	}
	if ess := rs.ESS(beta); math.Abs(ess[0]-float64(cfg.Particles)) > 1e-6 || math.Abs(ess[1]-float64(cfg.Particles)) > 1e-6 {
		t.Errorf("ESS of the SMC pool at its own beta %v, want %d (uniform weights)", ess, cfg.Particles)
	}
	// The same seed gives the same particles.
	again, _, err := SMC(backend, context.New(), promptIdentityGen{}, reward, nil, beta, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, b := rs.Noise(1, 4), again.Noise(1, 4)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("two runs with seed %d differ at value %d: %g, %g", cfg.Seed, i, a[i], b[i])
		}
	}
}

// TestSMCErrors: bad settings and a reward that is never finite are errors that say so.
func TestSMCErrors(t *testing.T) {
	backend := testutil.Backend(t)
	for _, c := range []struct {
		mut  func(*SMCConfig)
		beta float64
		want string
	}{
		{func(c *SMCConfig) { c.Particles = 1 }, 1, "particles must be >= 2"},
		{func(c *SMCConfig) { c.Moves = 0 }, 1, "moves must be >= 1"},
		{func(c *SMCConfig) { c.ESSFrac = 1 }, 1, "ESS fraction must be in (0, 1)"},
		{func(c *SMCConfig) {}, 0, "beta must be a positive number"},
		{func(c *SMCConfig) { c.MaxStages = 1 }, 0.001, "after 1 stages (max)"},
	} {
		cfg := DefaultSMC()
		cfg.Particles = 16
		c.mut(&cfg)
		_, _, err := SMC(backend, context.New(), promptIdentityGen{}, quadraticReward(), nil, c.beta, cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v at beta %g: error %v, want one containing %q", cfg, c.beta, err, c.want)
		}
	}
	nan := rewards.Func{RewardName: "nan", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		return Div(ReduceSum(x, -1), ZerosLike(ReduceSum(x, -1)))
	}}
	cfg := DefaultSMC()
	cfg.Particles = 16
	cfg.Seed = 1
	_, _, err := SMC(backend, context.New(), promptIdentityGen{}, nan, nil, 0.5, cfg)
	if err == nil || !strings.Contains(err.Error(), "non-finite reward") {
		t.Errorf("a reward that is never finite: error %v", err)
	}
}
