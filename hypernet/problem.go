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
	if err := obj.Validate(shape); err != nil {
		return nil, err
	}
	cost := Cost{Forward: 2, Backward: 2} // modulator + generator, forward and backward
	if obj.Reg == RegExactKL {
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
			f := mod.Residual(ctx, eps, prompts)
			x := gen.Generate(ctx, Add(eps, f), prompts)
			loss, reward, reg, extra := obj.terms(ctx, eps, f, x, prompts, nil, problemProbes(ctx, eps, scope, obj))
			return loss, append([]Metric{{"reward", reward}, {"reg", reg}}, extra...)
		},
	}, nil
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
