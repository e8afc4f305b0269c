package hypernet

import (
	"fmt"
	"slices"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
)

// Cost is what a method spends per sample (see hypernoise.Cost).
type Cost = hypernoise.Cost

// Metric is a named per-sample ([B]) or scalar quantity a training step reports (its batch mean).
type Metric struct {
	Name  string
	Value *Node
}

// Problem is what Train minimizes: the batch mean of a per-sample loss of noise eps [B, NoiseShape...]
// and prompts [B], over the trainable variables under Scope (and nothing else).
type Problem struct {
	Name       string
	Scope      string // absolute scope of the trainable variables, e.g. "/hypernet"; not "/"
	NoiseShape []int
	NumPrompts int // prompt ids are drawn uniformly in [0, NumPrompts); 0 for unconditional
	// Loss builds the per-sample loss [B] and metrics to report.
	Loss func(ctx *context.Context, eps, prompts *Node) (loss *Node, metrics []Metric)
	// StepCost is the network evaluations one training sample costs per step (Seconds unused).
	StepCost Cost
	// Models names the generator and reward the loss evaluates (hypernoise.Describe: with their
	// files for imported ones), and Saves what a finished run is saved as (e.g. "hypernetwork"), for
	// messages.
	Models, Saves string
}

func (p *Problem) validate() error {
	if p == nil || p.Loss == nil {
		return fmt.Errorf("training problem has no loss")
	}
	if p.Scope == "" || p.Scope == context.ScopeSeparator || p.Scope[0] != context.ScopeSeparator[0] {
		return fmt.Errorf("training problem %q: trainable scope must be an absolute scope below the root, got %q", p.Name, p.Scope)
	}
	if len(p.NoiseShape) == 0 || size(p.NoiseShape) <= 0 {
		return fmt.Errorf("training problem %q: invalid noise shape %v", p.Name, p.NoiseShape)
	}
	if p.NumPrompts < 0 {
		return fmt.Errorf("training problem %q: negative prompt count", p.Name)
	}
	return nil
}

// NewProblem is the HyperNoise training problem: eps' = eps + f(eps, c), x = g(eps', c), per-sample
// loss from obj (see Objective). mod must implement Scoped (both LoRA and MLP do); only its
// variables are trained, the generator and the reward stay frozen.
func NewProblem(gen hypernoise.Generator, mod hypernoise.Modulator, obj Objective) (*Problem, error) {
	if gen == nil || mod == nil {
		return nil, fmt.Errorf("hypernoise problem needs a generator and a modulator")
	}
	sc, ok := mod.(Scoped)
	if !ok {
		return nil, fmt.Errorf("modulator %q does not report the scope of its variables (implement Scope() string)", mod.Name())
	}
	shape := slices.Clone(gen.NoiseShape())
	ldm, exact := mod.(LogDetModulator)
	obj.ExactLogDet = exact
	if err := obj.Validate(shape); err != nil {
		return nil, err
	}
	cost := Cost{Forward: 2, Backward: 2} // modulator + generator, forward and backward
	if _, ok := mod.(Invertible); ok && obj.Reg == RegExactKL {
		// The path gradient: the inverse map and its reverse pass.
		cost.Forward++
		cost.Backward += 2
	}
	if obj.Reg == RegExactKL && !exact {
		// D extra reverse passes through the modulator for the Jacobian rows, and the
		// backward of those (second order) again about twice that.
		d := float64(size(shape))
		cost.Backward += 3 * d
	}
	if obj.Reg == RegLogDet {
		// Per probe: Terms reverse passes through the modulator, one more whose parameter
		// gradient (second order) costs about two more.
		cost.Backward += float64(obj.LogDet.Probes * (obj.LogDet.Terms + 3))
	}
	scope := sc.Scope()
	return &Problem{
		Name:       "hypernoise-" + mod.Name(),
		Scope:      scope,
		NoiseShape: shape,
		NumPrompts: len(gen.Prompts()),
		StepCost:   cost,
		Models:     "generator " + hypernoise.Describe(gen) + ", reward " + hypernoise.Describe(obj.Reward),
		Saves:      "hypernetwork",
		Loss: func(ctx *context.Context, eps, prompts *Node) (*Node, []Metric) {
			var f, logDet, kl *Node
			if exact {
				f, logDet = ldm.ResidualLogDet(ctx, eps, prompts)
				if obj.Reg == RegExactKL {
					kl = FlowKL(eps, f, logDet)
					if inv, ok := mod.(Invertible); ok {
						kl = PathKL(ctx, inv, eps, f, logDet, prompts)
					}
					if c, ok := mod.(ClosedFormKL); ok {
						kl = c.KL(ctx, eps, prompts)
					}
				}
			} else {
				f = mod.Residual(ctx, eps, prompts)
			}
			x := gen.Generate(ctx, Add(eps, f), prompts)
			loss, reward, reg, extra := obj.terms(ctx, eps, f, x, prompts, nil, problemProbes(ctx, eps, scope, obj), kl)
			if obj.Match != nil && obj.Match.Ref == nil && !obj.Match.Auto {
				panic("tilt matching: no reference set (Match.Ref) was drawn")
			}
			if obj.Match != nil && obj.Match.Ref != nil { // an Auto term dropped before training has none
				z := Add(eps, f)
				if obj.Match.Space == MatchImage {
					z = x
				}
				e := EnergyMatch(z, prompts, ConstCachedTensor(eps.Graph(), obj.Match.Ref), ConstCachedTensor(eps.Graph(), obj.Match.refSq()))
				loss = Add(loss, MulScalar(e, obj.Match.Weight))
				extra = append(extra, Metric{"match", e})
			}
			if logDet != nil {
				// The exact KL(T#N || N) and log-det are reported whatever the objective.
				extra = append(extra, Metric{"logdet", StopGradient(logDet)}, Metric{"kl_exact", StopGradient(FlowKL(eps, f, logDet))})
			}
			return loss, append([]Metric{{"reward", reward}, {"reg", reg}}, extra...)
		},
	}, nil
}

// ClosedFormKL is a LogDetModulator whose KL(T#N || N) has a closed form (Gaussian): the exact
// KL objective then uses it, per row [B] of eps and prompts, instead of sampling it.
type ClosedFormKL interface {
	LogDetModulator
	KL(ctx *context.Context, eps, prompts *Node) *Node
}

// Invertible is a LogDetModulator that can also undo its map: Inverse builds T^{-1}(z, c) and the
// forward log|det dT/deps| at that point. With it the exact KL is trained with the path gradient
// (PathKL).
type Invertible interface {
	LogDetModulator
	Inverse(ctx *context.Context, z, prompts *Node) (eps, logDet *Node)
}

// PathKL is the per-sample estimate of KL(T#N || N) for z = T(eps) = eps + f (FlowKL's value:
// log q(z) - log N(z) with q = T#N, log q(z) = log N(eps) - logDet) whose gradient is the path
// gradient: (∇_z log q(z) + z) · ∂z/∂phi with q's own parameters held fixed, ∇_z log q computed
// through inv's inverse. It drops the score term E[∇_phi log q_phi(z)], which is zero in
// expectation, so its mean gradient is the KL's; its variance vanishes where q matches the target
// ("sticking the landing", Roeder et al. 2017; path gradients for flows, Vaitl et al. 2022),
// whereas the plain estimator's gradient keeps the noise of eps·∂f/∂phi.
func PathKL(ctx *context.Context, inv Invertible, eps, f, logDet, prompts *Node) *Node {
	z := Add(eps, f)
	// Identity: Gradient does not differentiate with respect to a stop-gradient node itself.
	zs := Identity(StopGradient(z))
	back, ld := inv.Inverse(ctx, zs, prompts)
	logQ := Neg(Add(MulScalar(ReduceSum(Square(perSample(back)), -1), 0.5), ConvertDType(ld, back.DType())))
	dir := StopGradient(Add(Gradient(ReduceAllSum(logQ), zs)[0], z))
	path := ReduceSum(perSample(Mul(dir, z)), -1)
	return Add(StopGradient(Sub(FlowKL(eps, f, logDet), path)), path)
}

// problemProbes draws the Rademacher probes obj needs (nil if none) from a stream that depends
// only on the count of applied optimizer steps, so a resumed run matches an uninterrupted one.
func problemProbes(ctx *context.Context, eps *Node, scope string, obj Objective) *Node {
	if obj.Reg != RegLogDet {
		return nil
	}
	b, d := eps.Shape().Dim(0), size(eps.Shape().Dimensions[1:])
	_, probes := Rademacher(stepRNG(ctx, eps.Graph(), scope, 1), obj.LogDet.Probes, b, d, eps.DType())
	return probes
}
