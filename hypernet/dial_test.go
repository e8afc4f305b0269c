package hypernet

import (
	"math"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestDialLearnsTiltOfGaussianAtEveryBeta: with g = identity and r(x) = a.x, the tilted noise law
// at beta is N(a/beta, I), so the exact optimum is the shift f = a/beta (J_f = 0). One dial
// trained over beta in [0.5, 2] with the logdet regularizer must give that shift at each beta.
func TestDialLearnsTiltOfGaussianAtEveryBeta(t *testing.T) {
	b := testutil.Backend(t)
	a := []float32{0.6, -0.3}
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	gen := identityGen{}
	dial, err := NewDialMLP(gen.NoiseShape(), 0, 32, 2, 0.5, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewDialProblem(gen, dial, Objective{Reward: linearReward(a[0], a[1]), Reg: RegLogDet, LogDet: DefaultLogDet()})
	if err != nil {
		t.Fatal(err)
	}
	res := trainTilt(t, b, ctx, p, 1200)
	if res.Skipped > 0 {
		t.Errorf("%d steps skipped", res.Skipped)
	}
	for _, beta := range []float64{0.5, 1, 2} {
		mod, err := AtBeta(dial, beta)
		if err != nil {
			t.Fatal(err)
		}
		mean := meanResidual(t, b, ctx, gen, mod, 2000)
		for j := range 2 {
			want := float64(a[j]) / beta
			if math.Abs(mean[j]-want) > 0.1*math.Max(1, math.Abs(want)) {
				t.Errorf("beta %g: mean residual[%d] = %.3f, want a/beta = %.3f", beta, j, mean[j], want)
			}
		}
	}
}

// TestLogDetLearnsTiltOfGaussian: the logdet regularizer on an ordinary modulator reaches the
// exact optimum f = a/beta.
func TestLogDetLearnsTiltOfGaussian(t *testing.T) {
	b := testutil.Backend(t)
	beta := 0.5
	a := []float32{0.6, -0.3}
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	gen := identityGen{}
	mod, err := NewMLP(gen.NoiseShape(), 0, 16, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProblem(gen, mod, Objective{Reward: linearReward(a[0], a[1]), Reg: RegLogDet, Beta: beta, LogDet: DefaultLogDet()})
	if err != nil {
		t.Fatal(err)
	}
	const steps = 600
	res := trainTilt(t, b, ctx, p, steps)
	for _, name := range []string{"logdet_series", "logdet_gain", "logdet_diverged", "logdet_bound"} {
		if len(res.Metrics[name]) != steps {
			t.Errorf("metric %s: %d values for %d steps", name, len(res.Metrics[name]), steps)
		}
	}
	mean := meanResidual(t, b, ctx, gen, mod, 2000)
	for j := range 2 {
		if want := float64(a[j]) / beta; math.Abs(mean[j]-want) > 0.05 {
			t.Errorf("mean residual[%d] = %.3f, want a/beta = %.3f", j, mean[j], want)
		}
	}
}

func TestDialErrors(t *testing.T) {
	for _, c := range []struct{ lo, hi float64 }{{0, 1}, {2, 1}, {1, math.Inf(1)}} {
		if _, err := NewDialMLP([]int{2}, 0, 8, 1, c.lo, c.hi, ""); err == nil || !strings.Contains(err.Error(), "beta range") {
			t.Errorf("range [%g, %g]: %v", c.lo, c.hi, err)
		}
	}
	d, err := NewDialMLP([]int{2}, 0, 8, 1, 0.5, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, beta := range []float64{0.1, 3, math.NaN()} {
		if _, err := AtBeta(d, beta); err == nil || !strings.Contains(err.Error(), "[0.5, 2]") {
			t.Errorf("beta %g: %v, want an error naming the range [0.5, 2]", beta, err)
		}
	}
	if _, err := AtBeta(d, 1); err != nil {
		t.Error(err)
	}
	_, err = NewDialProblem(identityGen{}, d, Objective{Reward: linearReward(1, 0), Reg: RegMeanSquare, Weight: 0.5})
	if err == nil || !strings.Contains(err.Error(), "kl, exact-kl, logdet") {
		t.Errorf("dial with mean-sq: %v", err)
	}
	_, err = NewDialProblem(identityGen{}, d, Objective{Reward: linearReward(1, 0), Reg: RegLogDet, LogDet: LogDet{Probes: 0, Terms: 2, GuardMax: 0.8}})
	if err == nil || !strings.Contains(err.Error(), "probes") {
		t.Errorf("dial with 0 probes: %v", err)
	}
	_, err = NewDialProblem(identityGen{}, d, Objective{Reward: linearReward(1, 0), Reg: RegKL, Match: &Match{MatchSpec: DefaultMatch(1)}})
	if err == nil || !strings.Contains(err.Error(), "tilt matching needs one beta") {
		t.Errorf("dial with tilt matching: %v", err)
	}
}
