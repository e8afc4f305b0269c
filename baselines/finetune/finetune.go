// Package finetune is the direct fine-tuning baseline: LoRA adapters on every dense and conv layer
// of the generator itself, g_phi(eps, c), trained to maximize the reward with no regularizer,
//
//	min_phi E_eps[ -r(g_phi(eps, c), c) ]
//
// with the same trainer (hypernet.Train) as HyperNoise. Nothing keeps g_phi close to the base
// distribution, so it drifts to the reward's maximizers (reward hacking), which is what the
// comparison shows. Sampling costs one forward pass, as for the base generator.
package finetune

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/nn"
)

// Model is the base generator with LoRA adapters (stored under /Prefix). It implements
// hypernoise.Generator and hypernet.Scoped.
type Model struct {
	Base   hypernoise.Generator
	Rank   int
	Alpha  float64
	Prefix string
}

// New returns the LoRA fine-tune of base; alpha <= 0 means 2*rank, prefix "" means "finetune".
// base must be built from package nn's layers (the adapters attach to them).
func New(base hypernoise.Generator, rank int, alpha float64, prefix string) (*Model, error) {
	if base == nil {
		return nil, fmt.Errorf("fine-tune: nil generator")
	}
	alpha, prefix, err := hypernet.LoRAParams("fine-tune", "LoRA rank", rank, alpha, prefix, "finetune")
	if err != nil {
		return nil, err
	}
	return &Model{Base: base, Rank: rank, Alpha: alpha, Prefix: prefix}, nil
}

// Name is the base generator's name with "+finetune".
func (m *Model) Name() string { return m.Base.Name() + "+" + m.Prefix }

// NoiseShape is the base generator's.
func (m *Model) NoiseShape() []int { return m.Base.NoiseShape() }

// Prompts are the base generator's.
func (m *Model) Prompts() []string { return m.Base.Prompts() }

// Scope is where the adapters live, "/" + Prefix.
func (m *Model) Scope() string { return context.ScopeSeparator + m.Prefix }

// Generate builds g_phi(eps, c): the base generator run with LoRA adapters (base weights frozen).
func (m *Model) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	lctx, err := nn.WithLoRA(ctx, m.Prefix, nn.LoRA{Rank: m.Rank, Alpha: m.Alpha})
	if err != nil {
		panic(err)
	}
	return m.Base.Generate(lctx, eps, prompts)
}

// Problem is the fine-tuning objective for reward: per-sample loss -r(g_phi(eps, c), c), trained
// over the adapters only.
func (m *Model) Problem(reward hypernoise.Reward) (*hypernet.Problem, error) {
	if reward == nil {
		return nil, fmt.Errorf("fine-tune: nil reward")
	}
	return &hypernet.Problem{
		Name:       "finetune",
		Scope:      m.Scope(),
		NoiseShape: m.NoiseShape(),
		NumPrompts: len(m.Prompts()),
		StepCost:   hypernet.Cost{Forward: 1, Backward: 1},
		Models:     "generator " + hypernoise.Describe(m.Base) + ", reward " + hypernoise.Describe(reward),
		Loss: func(ctx *context.Context, eps, prompts *Node) (*Node, []hypernet.Metric) {
			r := reward.Score(ctx, m.Generate(ctx, eps, prompts), prompts)
			r = ConvertDType(r, eps.DType())
			return Neg(r), []hypernet.Metric{{Name: "reward", Value: r}}
		},
	}, nil
}

// Name is the fine-tune baseline's name in the method registry.
const Name = "finetune"

// Method is the registry entry of the fine-tune baseline: sampling from env.Finetuned (a Model
// whose adapters were trained, e.g. by hypernet.Train on Model.Problem), one forward per sample.
var Method = hypernoise.MethodInfo{
	Name:    Name,
	Summary: "LoRA fine-tune of the generator on the reward alone (no regularizer), then sampling",
	Needs:   hypernoise.NeedsFinetuned,
	New: func(env hypernoise.MethodEnv) (hypernoise.Method, error) {
		return hypernet.NewSamplerMethod(env, Name, env.Finetuned, nil)
	},
}
