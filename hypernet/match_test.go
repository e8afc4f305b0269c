package hypernet

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/rewards"
)

// TestEnergyMatch: each sample's term against the definition written out with loops (distance to
// every reference sample of its prompt, twice, less the mean distance to the batch's other samples
// of that prompt; none for a sample alone with its prompt), and its gradient against finite
// differences.
func TestEnergyMatch(t *testing.T) {
	b := testutil.Backend(t)
	const n, d, np, m = 6, 3, 2, 4
	rng := rand.New(rand.NewPCG(1, 2))
	z := make([]float64, n*d)
	ref := make([]float64, np*m*d)
	for i := range z {
		z[i] = rng.NormFloat64()
	}
	for i := range ref {
		ref[i] = rng.NormFloat64() + 0.5
	}
	prompts := []int32{0, 1, 0, 0, 1, 0}
	prompts[4] = 0 // prompt 1 has one sample (row 1): no second term there
	dist := func(a, b []float64) float64 {
		s := 0.0
		for i := range a {
			s += (a[i] - b[i]) * (a[i] - b[i])
		}
		return math.Sqrt(s + 1e-6)
	}
	zt := tensors.FromFlatDataAndDimensions(z, n, d)
	rt := tensors.FromFlatDataAndDimensions(ref, np, m, d)
	pt := tensors.FromFlatDataAndDimensions(prompts, n)
	// The reference's norms computed in the graph, and once on the host (Match.refSq, as training
	// passes them).
	for _, host := range []bool{false, true} {
		got := eval(t, b, func(g *Graph) *Node {
			var sq *Node
			if host {
				sq = ConstTensor(g, (&Match{Ref: tensors.FromFlatDataAndDimensions(toF32(ref), np, m, d)}).refSq())
			}
			return EnergyMatch(ConstTensor(g, zt), ConstTensor(g, pt), ConstTensor(g, rt), sq)
		})
		use := []int{0, 1, 2, 3}
		for i := range n {
			c := int(prompts[i])
			toRef := 0.0
			for _, k := range use {
				toRef += dist(z[i*d:(i+1)*d], ref[(c*m+k)*d:(c*m+k+1)*d]) / float64(len(use))
			}
			within, cnt := 0.0, 0
			for j := range n {
				if j != i && prompts[j] == prompts[i] {
					within += dist(z[i*d:(i+1)*d], z[j*d:(j+1)*d])
					cnt++
				}
			}
			want := 2 * toRef
			if cnt > 0 {
				want -= within / float64(cnt)
			}
			if tol := map[bool]float64{false: 1e-9, true: 1e-5}[host]; math.Abs(got[i]-want) > tol {
				t.Errorf("norms on the host %v, sample %d: EnergyMatch %.12f, definition %.12f", host, i, got[i], want)
			}
		}
	}
	maxErr, err := compute.CheckGradient(b, func(in []*Node) *Node {
		g := in[0].Graph()
		return ReduceAllSum(EnergyMatch(in[0], ConstTensor(g, pt), ConstTensor(g, rt), nil))
	}, []*tensors.Tensor{zt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if maxErr > 1e-5 {
		t.Errorf("EnergyMatch gradient relative error %.3g > 1e-5", maxErr)
	}
}

// TestMatchLearnsTheReference: with no reward and no regularizer, the energy distance alone
// (Objective.Match in noise space, weight 1) moves an affine modulator's law T#N onto a reference
// set drawn from N(mu, diag(s²)) on 6-D noise: every dimension's mean and standard deviation within
// 0.1 of the reference's (the identity map is 0.8 off the mean and 0.7 off the spread).
func TestMatchLearnsTheReference(t *testing.T) {
	b := testutil.Backend(t)
	const d, m = 6, 2048
	mu := []float64{0.8, -0.5, 0, 0.3, -0.2, 0.6}
	sd := []float64{0.5, 1.5, 0.3, 1, 1.7, 0.8}
	rng := rand.New(rand.NewPCG(3, 4))
	ref := make([]float32, m*d)
	for k := range m {
		for i := range d {
			ref[k*d+i] = float32(mu[i] + sd[i]*rng.NormFloat64())
		}
	}
	zero := rewards.Func{RewardName: "zero", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		return MulScalar(ReduceSum(x, -1), 0)
	}}
	aff, err := NewAffine([]int{d}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	match := &Match{MatchSpec: MatchSpec{Space: MatchNoise, Weight: 1}, Ref: tensors.FromFlatDataAndDimensions(ref, 1, m, d)}
	p, err := NewProblem(eyeGen{}, aff, Objective{Reward: zero, Reg: RegNone, Match: match})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	cfg := DefaultSGD()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps, cfg.WeightDecay = 3000, 64, 0.05, 10, 0
	cfg.Schedule = ScheduleCosine
	res, err := Train(b, ctx, p, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Metrics["match"]) == 0 {
		t.Fatal("training reported no match metric")
	}
	const n = 4000
	eps := Normal(7, 1, n*d)
	z := transport(t, b, ctx, aff, eps, n, d)
	for i := range d {
		var s, s2 float64
		for k := range n {
			v := float64(z[k*d+i])
			s += v
			s2 += v * v
		}
		mean := s / n
		std := math.Sqrt(s2/n - mean*mean)
		if math.Abs(mean-mu[i]) > 0.1 || math.Abs(std-sd[i]) > 0.1 {
			t.Errorf("dimension %d: T#N has mean %.3f, std %.3f; the reference %.3f, %.3f", i, mean, std, mu[i], sd[i])
		}
	}
}

// TestMatchSpecValidate: the library's own checks of a tilt-matching setting (what a Go caller
// gets without the command line's flag ranges).
func TestMatchSpecValidate(t *testing.T) {
	ok := DefaultMatch(1)
	if err := ok.Validate(); err != nil {
		t.Fatalf("DefaultMatch(1): %v", err)
	}
	for _, c := range []struct {
		edit func(*MatchSpec)
		want string
	}{
		{func(s *MatchSpec) { s.Weight = 0 }, "weight must be positive"},
		{func(s *MatchSpec) { s.Weight = math.NaN() }, "weight must be a finite number"},
		{func(s *MatchSpec) { s.Weight = 2 * MaxMatchWeight }, "weight must be in"},
		{func(s *MatchSpec) { s.Space = "latent" }, `space must be image or noise, got "latent"`},
		{func(s *MatchSpec) { s.Pool = 1 }, "pool must be in [2, "},
		{func(s *MatchSpec) { s.Size = s.Pool + 1 }, "size must be in [2, 4096], got 4097"},
	} {
		s := ok
		c.edit(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want an error mentioning %q", s, err, c.want)
		}
	}
}

// TestAutoMatchWeight: the default weight is min(1, (0.05/beta)²), off (0, no spec) where that is
// under 0.01 (beta > 0.5) and for a beta that is not positive.
func TestAutoMatchWeight(t *testing.T) {
	for _, c := range []struct{ beta, want float64 }{
		{0.001, 1}, {0.05, 1}, {0.1, 0.25}, {0.2, 0.0625}, {0.45, 1.0 / 81}, {0.51, 0}, {1, 0}, {0, 0}, {-1, 0}, {math.NaN(), 0},
	} {
		got := AutoMatchWeight(c.beta)
		if math.Abs(got-c.want) > 1e-9 {
			t.Errorf("AutoMatchWeight(%g) = %g, want %g", c.beta, got, c.want)
		}
		s := AutoMatch(c.beta)
		if (s == nil) != (c.want == 0) || (s != nil && (!s.Auto || s.Weight != got || s.Validate() != nil)) {
			t.Errorf("AutoMatch(%g) = %+v", c.beta, s)
		}
	}
}

// transport applies the trained map T(eps) = eps + f(eps, c) of modulator mod (weights in ctx) to
// n noises of d values (flat), all of prompt 0, and returns T(eps) flat.
func transport(t *testing.T, b backends.Backend, ctx *context.Context, mod hypernoise.Modulator, eps []float32, n, d int) []float32 {
	t.Helper()
	out, err := context.ExecOnce(b, ctx, func(ctx *context.Context, e, pr *Node) *Node {
		return Add(e, mod.Residual(ctx, e, pr))
	}, tensors.FromFlatDataAndDimensions(eps, n, d), tensors.FromFlatDataAndDimensions(make([]int32, n), n))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out)
}
