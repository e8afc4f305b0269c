package tilt

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/rewards"
)

// twoPromptGen is g(eps, c) = (eps0·eps1 + c, tanh(eps1), eps0²) for eps of shape [2] and two
// prompts: a nonlinear, prompt-dependent generator, so a sample is not its noise.
type twoPromptGen struct{}

func (twoPromptGen) Name() string      { return "two-prompt" }
func (twoPromptGen) NoiseShape() []int { return []int{2} }
func (twoPromptGen) Prompts() []string { return []string{"a", "b"} }
func (twoPromptGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	e0, e1 := Slice(eps, AxisRange(), AxisElem(0)), Slice(eps, AxisRange(), AxisElem(1))
	c := ExpandAxes(ConvertDType(prompts, eps.DType()), -1)
	return Concatenate([]*Node{Add(Mul(e0, e1), c), Tanh(e1), Square(e0)}, -1)
}

// TestDrawReference: the reference drawn without the pool's images is, value for value, the
// resampled set of a Resampler over the same pool (same draws, samples generated again), and its
// effective sample sizes are that pool's.
func TestDrawReference(t *testing.T) {
	backend := testutil.Backend(t)
	reward := rewards.Func{RewardName: "sum", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		return ReduceSum(x, -1)
	}}
	m := &family.Model{Generator: twoPromptGen{}, Context: context.New()}
	const pool, size, beta, seed = 600, 40, 0.7, 11
	got, ess, err := DrawReference(backend, m, reward, pool, seed, beta, size)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewResampler(backend, m, reward, pool, seed)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := rs.ReferenceSet(beta, size)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*size*3 || len(got) != len(want) {
		t.Fatalf("reference has %d values, want %d (2 prompts x %d x 3)", len(got), len(want), size)
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-6 {
			t.Fatalf("value %d: %g, the resampler's set has %g", i, got[i], want[i])
		}
	}
	for p, e := range rs.ESS(beta) {
		if ess[p] != e || !(e > 1 && e < pool) {
			t.Errorf("prompt %d: ESS %g, the resampler's %g (want in (1, %d))", p, ess[p], e, pool)
		}
	}
	if _, _, err := DrawReference(backend, m, reward, 1, seed, beta, size); err == nil {
		t.Error("a pool of 1 accepted")
	}
	if _, _, err := DrawReference(backend, m, reward, pool, seed, 0, size); err == nil {
		t.Error("beta 0 accepted")
	}
}
