package toy

import (
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

var (
	_ hypernoise.Generator = (*Model)(nil)
	_ hypernoise.Backbone  = (*Model)(nil)
)

// TestTrainProducesRing trains a short toy (fewer steps than QuickConfig) and checks that its
// samples lie on the ring and cover every mode.
func TestTrainProducesRing(t *testing.T) {
	b := testutil.Backend(t)
	cfg := QuickConfig()
	cfg.TeacherSteps, cfg.StudentSteps, cfg.Pairs = 400, 300, 2048
	ctx := context.New()
	m, st, err := Train(b, ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.StudentLoss > 0.05 || math.IsNaN(st.TeacherLoss) {
		t.Errorf("training stats %+v: the student does not fit the ODE pairs", st)
	}
	for v := range ctx.IterVariables() {
		if !strings.HasPrefix(v.Scope(), "/toy/student") {
			t.Errorf("unexpected variable %s in the target context", v.ScopeAndName())
		}
	}
	const n = 4000
	eps := make([]float32, 2*n)
	for i := range n {
		// a deterministic spread of noise: a Gaussian-like grid via the Box-Muller map
		u1 := (float64(i) + 0.5) / n
		u2 := math.Mod(float64(i)*0.618034, 1)
		r := math.Sqrt(-2 * math.Log(u1))
		eps[2*i], eps[2*i+1] = float32(r*math.Cos(2*math.Pi*u2)), float32(r*math.Sin(2*math.Pi*u2))
	}
	out, err := context.ExecOnce(b, ctx, func(ctx *context.Context, e *Node) *Node {
		return m.Generate(ctx, e, nil)
	}, tensors.FromFlatDataAndDimensions(eps, n, 2))
	if err != nil {
		t.Fatal(err)
	}
	xs := tensors.MustCopyFlatData[float32](out)
	counts := make([]int, cfg.Modes)
	meanR := 0.0
	for i := range n {
		x, y := float64(xs[2*i]), float64(xs[2*i+1])
		meanR += math.Hypot(x, y) / n
		best, bd := 0, math.Inf(1)
		for k, c := range cfg.Centers() {
			if d := math.Hypot(x-c[0], y-c[1]); d < bd {
				best, bd = k, d
			}
		}
		counts[best]++
	}
	if math.Abs(meanR-cfg.Radius) > 0.3 {
		t.Errorf("mean radius %.3f, want about %g", meanR, cfg.Radius)
	}
	for k, c := range counts {
		if f := float64(c) / n; f < 0.05 || f > 0.2 {
			t.Errorf("mode %d gets %.3f of the samples, want about 1/8 (counts %v)", k, f, counts)
		}
	}
}

func TestRewards(t *testing.T) {
	reg := Rewards(DefaultConfig())
	if got := strings.Join(reg.Names(), ","); got != "bump,right,up" {
		t.Errorf("rewards %s", got)
	}
	s, err := reg.Parse("right=1,up=-0.5,bump=2")
	if err != nil {
		t.Fatal(err)
	}
	b := testutil.Backend(t)
	c := DefaultConfig().Centers()[1]
	x := [][]float32{{1, 2}, {float32(c[0]), float32(c[1])}}
	out, err := context.ExecOnce(b, context.New(), func(ctx *context.Context, x *Node) *Node {
		return s.Score(ctx, x, nil)
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out)
	bump := func(p []float32) float64 {
		d2 := math.Pow(float64(p[0])-c[0], 2) + math.Pow(float64(p[1])-c[1], 2)
		return 2 * math.Exp(-d2/(2*0.75*0.75))
	}
	for i, p := range x {
		want := float64(p[0]) - 0.5*float64(p[1]) + 2*bump(p)
		if math.Abs(float64(got[i])-want) > 1e-5 {
			t.Errorf("point %v: reward %g, want %g", p, got[i], want)
		}
	}
	if _, err := reg.Parse("left"); err == nil || !strings.Contains(err.Error(), "bump, right, up") {
		t.Errorf("unknown reward: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.Modes = 0 },
		func(c *Config) { c.Std = 0 },
		func(c *Config) { c.Hidden = -1 },
		func(c *Config) { c.TeacherSteps = 0 },
		func(c *Config) { c.LR = 0 },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("invalid config %+v accepted", c)
		}
	}
}
