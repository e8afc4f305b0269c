package reno

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// simulate runs ReNO on the host for g(eps) = eps and r(x) = a.x: the loss gradient of a sample
// is -a + w (e - (D-1) e/|e|^2), clipped per sample, then Nesterov SGD. It returns the iterates
// evaluated at steps 0..steps-1.
func simulate(cfg Config, a, e0 [2]float64) [][2]float64 {
	e := e0
	var buf [2]float64
	var out [][2]float64
	for range cfg.Steps {
		out = append(out, e)
		n2 := e[0]*e[0] + e[1]*e[1]
		var g [2]float64
		for j := range 2 {
			g[j] = -a[j] + cfg.PriorWeight*(e[j]-e[j]/n2)
		}
		norm := math.Hypot(g[0], g[1])
		scale := math.Min(1, cfg.ClipNorm/(norm+1e-6))
		for j := range 2 {
			g[j] *= scale
			buf[j] = cfg.Momentum*buf[j] + g[j]
			d := g[j] + cfg.Momentum*buf[j]
			e[j] -= cfg.LR * d
		}
	}
	return out
}

// TestMatchesHostSimulation: with a linear reward the reward grows along the whole path, so the
// kept iterate is the last evaluated one; it must match the host simulation of ReNO's update.
func TestMatchesHostSimulation(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	cfg := DefaultConfig()
	cfg.Steps = 8
	a := [2]float64{0.3, -0.2}
	o, err := New(b, ctx, testgen.IdentityGen{}, testgen.Linear(float32(a[0]), float32(a[1])), cfg)
	if err != nil {
		t.Fatal(err)
	}
	eps := hypernet.NoiseTensor(2, 1, 3, []int{2})
	e0 := tensors.MustCopyFlatData[float32](eps)
	res, err := o.Run(eps, tensors.FromFlatDataAndDimensions(make([]int32, 3), 3))
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](res.Eps)
	for i := range 3 {
		path := simulate(cfg, a, [2]float64{float64(e0[2*i]), float64(e0[2*i+1])})
		last := path[len(path)-1]
		for j := range 2 {
			if math.Abs(float64(got[2*i+j])-last[j]) > 1e-4 {
				t.Errorf("sample %d: eps[%d] = %g, host simulation %g", i, j, got[2*i+j], last[j])
			}
		}
		if res.BestStep[i] != cfg.Steps-1 {
			t.Errorf("sample %d: best step %d, want the last (%d)", i, res.BestStep[i], cfg.Steps-1)
		}
		if res.Reward[i] <= res.InitialReward[i] {
			t.Errorf("sample %d: reward %g not above the initial %g", i, res.Reward[i], res.InitialReward[i])
		}
	}
	if res.Cost.Forward != 8 || res.Cost.Backward != 8 {
		t.Errorf("cost %+v, want 8 forward and 8 backward passes", res.Cost)
	}
}

// TestKeepBest: with lr 5 and momentum the iterates overshoot the maximum of r = -(x0 - 1)^2;
// keeping the best iterate returns the best reward seen, the last iterate is worse.
func TestKeepBest(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	testgen.SetIdentity(ctx)
	eps := tensors.FromValue([][]float32{{0, 0.5}, {-1, 1}})
	prompts := tensors.FromFlatDataAndDimensions(make([]int32, 2), 2)
	run := func(keep bool) Result {
		cfg := DefaultConfig()
		cfg.Steps, cfg.KeepBest = 12, keep
		o, err := New(b, ctx, testgen.IdentityGen{}, testgen.Well(1), cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := o.Run(eps, prompts)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	best, last := run(true), run(false)
	for i := range 2 {
		if best.Reward[i] < best.InitialReward[i] || best.Reward[i] < last.Reward[i] {
			t.Errorf("sample %d: kept reward %g, initial %g, last %g", i, best.Reward[i], best.InitialReward[i], last.Reward[i])
		}
		if !(best.Reward[i] > last.Reward[i]) {
			t.Errorf("sample %d: the last iterate (%g) is as good as the best (%g): no overshoot, test is vacuous", i, last.Reward[i], best.Reward[i])
		}
	}
}

func TestConfigErrors(t *testing.T) {
	b := testutil.Backend(t)
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Steps = 0 }, "steps must be positive"},
		{func(c *Config) { c.LR = -1 }, "learning rate must be positive"},
		{func(c *Config) { c.Momentum = 1 }, "momentum"},
		{func(c *Config) { c.ClipNorm = -1 }, "clip"},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg)
		if _, err := New(b, testgen.Seeded(1), testgen.MLP{}, testgen.Linear(1, 0), cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one mentioning %q", err, c.want)
		}
	}
}
