package hypernet

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/nn"
)

// Dial is a tilt dial: one noise hypernetwork conditioned on the tilt temperature, f(eps, c, beta),
// trained over a range of beta so that, for each beta in it, eps + f(eps, c, beta) approaches the
// tilted noise law p0*(eps) ∝ N(eps; 0, I) exp(r(g(eps, c), c)/beta).
type Dial interface {
	hypernoise.Modulator
	Scoped
	// BetaRange is the trained range [lo, hi] of beta.
	BetaRange() (lo, hi float64)
	// ResidualAt builds f(eps, c, beta) for eps [B, NoiseShape...], prompts [B], beta [B].
	ResidualAt(ctx *context.Context, eps, prompts, beta *Node) *Node
}

// CheckBeta returns a clear error if beta lies outside the dial's trained range.
func CheckBeta(d Dial, beta float64) error {
	lo, hi := d.BetaRange()
	if !(beta >= lo && beta <= hi) {
		return fmt.Errorf("beta %g is outside the range this tilt dial was trained on, [%g, %g]", beta, lo, hi)
	}
	return nil
}

// AtBeta is the ordinary modulator eps -> f(eps, c, beta) of a dial at one beta in its range.
func AtBeta(d Dial, beta float64) (hypernoise.Modulator, error) {
	if d == nil {
		return nil, fmt.Errorf("nil tilt dial")
	}
	if err := CheckBeta(d, beta); err != nil {
		return nil, err
	}
	return &dialAt{d: d, beta: beta}, nil
}

type dialAt struct {
	d    Dial
	beta float64
}

func (m *dialAt) Name() string  { return m.d.Name() }
func (m *dialAt) Scope() string { return m.d.Scope() }
func (m *dialAt) Residual(ctx *context.Context, eps, prompts *Node) *Node {
	beta := BroadcastToDims(Scalar(eps.Graph(), eps.DType(), m.beta), eps.Shape().Dim(0))
	return m.d.ResidualAt(ctx, eps, prompts, beta)
}

// DialMLP is the MLP modulator (see MLP) conditioned on beta: every layer's input is extended
// with the features (t, sin(pi t/2), cos(pi t/2)) of t = 2 (log beta - log lo)/(log hi - log lo) - 1,
// the position of beta in the trained range on a log scale (t in [-1, 1]). The output layer
// starts at zero, so f = 0 at initialization for every beta.
type DialMLP struct {
	MLP
	Lo, Hi float64 // trained range of beta
}

// NewDialMLP returns a tilt dial for noise of the given shape, numPrompts prompts (0 for none),
// layers hidden layers of width hidden, trained over beta in [lo, hi] (0 < lo < hi), under scope
// "/"+name ("" means "hypernet_dial").
func NewDialMLP(noiseShape []int, numPrompts, hidden, layers int, lo, hi float64, name string) (*DialMLP, error) {
	if name == "" {
		name = "hypernet_dial"
	}
	m, err := NewMLP(noiseShape, numPrompts, hidden, layers, name)
	if err != nil {
		return nil, fmt.Errorf("tilt dial: %w", err)
	}
	if !(lo > 0) || !(hi > lo) || math.IsInf(hi, 0) {
		return nil, fmt.Errorf("tilt dial: beta range must satisfy 0 < lo < hi < inf, got [%g, %g]", lo, hi)
	}
	return &DialMLP{MLP: *m, Lo: lo, Hi: hi}, nil
}

// Name returns "mlp-dial".
func (m *DialMLP) Name() string { return "mlp-dial" }

// BetaRange returns [Lo, Hi].
func (m *DialMLP) BetaRange() (float64, float64) { return m.Lo, m.Hi }

// Residual is f(eps, c, beta) at the range's geometric middle sqrt(Lo Hi); use AtBeta for others.
func (m *DialMLP) Residual(ctx *context.Context, eps, prompts *Node) *Node {
	at, _ := AtBeta(m, math.Sqrt(m.Lo*m.Hi))
	return at.Residual(ctx, eps, prompts)
}

// ResidualAt builds f(eps, c, beta): h_0 = [flat(eps), E[c], phi(beta)],
// h_{l+1} = SiLU(W_l [h_l, phi(beta)] + b_l), f = W_out [h_L, phi(beta)] + b_out (zero at start).
func (m *DialMLP) ResidualAt(ctx *context.Context, eps, prompts, beta *Node) *Node {
	mctx := ctx.InAbsPath(m.Scope())
	b := eps.Shape().Dim(0)
	d := size(m.NoiseShape)
	dt := eps.DType()
	lb := Log(ConvertDType(beta, dt))
	t := AddScalar(MulScalar(AddScalar(lb, -math.Log(m.Lo)), 2/(math.Log(m.Hi)-math.Log(m.Lo))), -1)
	phi := Stack([]*Node{t, Sin(MulScalar(t, math.Pi/2)), Cos(MulScalar(t, math.Pi/2))}, -1)
	h := Reshape(eps, b, d)
	if m.NumPrompts > 0 {
		emb := nn.Embedding(mctx.In("prompt"), prompts, m.NumPrompts, m.PromptDim)
		h = Concatenate([]*Node{h, ConvertDType(emb, dt)}, -1)
	}
	for i := range m.Layers {
		h = activations.Swish(nn.Dense(mctx.Inf("dense_%d", i), Concatenate([]*Node{h, phi}, -1), m.Hidden))
	}
	f := nn.ZeroDense(mctx.In("out"), Concatenate([]*Node{h, phi}, -1), d)
	return Reshape(f, eps.Shape().Dimensions...)
}

// DialFeatures is phi(beta) = (t, sin(pi t/2), cos(pi t/2)) with t = 2 (log beta - log lo) /
// (log hi - log lo) - 1, the values DialMLP.ResidualAt computes in its graph for a dial trained over
// [lo, hi].
func DialFeatures(beta, lo, hi float64) []float32 {
	t := 2*(math.Log(beta)-math.Log(lo))/(math.Log(hi)-math.Log(lo)) - 1
	return []float32{float32(t), float32(math.Sin(math.Pi / 2 * t)), float32(math.Cos(math.Pi / 2 * t))}
}

// NewDialProblem is the tilt dial's training problem: for each sample, beta is drawn log-uniformly
// in the dial's range, eps' = eps + f(eps, c, beta), x = g(eps', c), and the per-sample loss is
// obj's with that beta: R(eps, f) - r(x, c)/beta (obj.Beta is not used). obj's regularizer must be
// tempered (kl, exact-kl or logdet).
func NewDialProblem(gen hypernoise.Generator, dial Dial, obj Objective) (*Problem, error) {
	if gen == nil || dial == nil {
		return nil, fmt.Errorf("tilt dial problem needs a generator and a dial")
	}
	if obj.Match != nil {
		return nil, fmt.Errorf("tilt matching needs one beta, and a tilt dial trains over a range of them")
	}
	if !obj.Reg.Tempered() {
		var names []string
		for _, r := range Regularizers() {
			if r.Tempered() {
				names = append(names, string(r))
			}
		}
		return nil, fmt.Errorf("a tilt dial is trained against r/beta: regularizer %q has no beta; use one of %s", obj.Reg, strings.Join(names, ", "))
	}
	lo, hi := dial.BetaRange()
	check := obj
	check.Beta = lo
	shape := slices.Clone(gen.NoiseShape())
	if err := check.Validate(shape); err != nil {
		return nil, err
	}
	inner, err := NewProblem(gen, dial, check)
	if err != nil {
		return nil, err
	}
	scope := dial.Scope()
	inner.Name = "hypernoise-dial-" + dial.Name()
	inner.Loss = func(ctx *context.Context, eps, prompts *Node) (*Node, []Metric) {
		g := eps.Graph()
		_, u := RandomUniform(stepRNG(ctx, g, scope, 2), shapes.Make(dtypes.Float32, eps.Shape().Dim(0)))
		beta := ConvertDType(Exp(AddScalar(MulScalar(u, math.Log(hi)-math.Log(lo)), math.Log(lo))), eps.DType())
		f := dial.ResidualAt(ctx, eps, prompts, beta)
		x := gen.Generate(ctx, Add(eps, f), prompts)
		loss, reward, reg, extra := obj.terms(ctx, eps, f, x, prompts, beta, problemProbes(ctx, eps, scope, obj), nil)
		return loss, append([]Metric{{"reward", reward}, {"reg", reg}, {"beta", beta}}, extra...)
	}
	return inner, nil
}
