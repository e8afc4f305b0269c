// Package hypernoise defines the three roles every method in this toolkit talks to: a frozen
// one-step Generator g(eps, c), a differentiable Reward r(x, c), and a Modulator f_phi(eps, c) (the
// noise hypernetwork). All three are GoMLX graph functions, so any GoMLX model plugs in.
//
// The method (Eyring et al. 2025, "Noise Hypernetworks"): sample eps ~ N(0, I), modulate it to
// eps' = eps + f_phi(eps, c), and generate x = g(eps', c). f_phi is trained so that the law of x
// approaches the reward-tilted distribution p*(x) ∝ p_base(x) exp(r(x, c)/beta).
//
// Where things live:
//   - hypernet/   the modulators, the objective, the trainer (the method itself)
//   - baselines/  best-of-N, ReNO, direct fine-tuning
//   - rewards/    reward functions and weighted combinations
//   - models/     generators: the 2-D toy and the embedded Fashion-MNIST default
//   - eval/       metrics and the benchmarks that compare methods
package hypernoise

import (
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Generator is a frozen one-step generator x = g(eps, c).
type Generator interface {
	// Name identifies the generator (and its weights) in configs and reports.
	Name() string
	// NoiseShape is the shape of one noise sample, without the batch axis (e.g. [2] or [7,7,4]).
	NoiseShape() []int
	// Prompts lists the prompts the generator is conditioned on, indexed by prompt id;
	// nil for an unconditional generator (prompt ids are then ignored).
	Prompts() []string
	// Generate builds x = g(eps, c) for a batch: eps [B, NoiseShape...] float32, prompts [B] int32.
	// It must be differentiable in eps. Its variables live in ctx.
	Generate(ctx *context.Context, eps, prompts *graph.Node) *graph.Node
}

// Backbone is implemented by generators whose first stage is a network that maps the noise to a
// tensor of the noise's own shape (a one-step flow student: eps -> latent). The LoRA modulator is a
// copy of that network with adapters; its output layer must be built with nn.OutputDense/OutputConv.
type Backbone interface {
	Generator
	// Backbone builds the noise-shaped network's output for eps [B, NoiseShape...], prompts [B].
	Backbone(ctx *context.Context, eps, prompts *graph.Node) *graph.Node
}

// Reward scores samples: higher is better.
type Reward interface {
	// Name is the reward's name as used in reward specs (e.g. "align").
	Name() string
	// Score builds r(x, c) [B] for samples x [B, ...] and prompts [B] int32; differentiable in x.
	Score(ctx *context.Context, x, prompts *graph.Node) *graph.Node
}

// Modulator is a noise hypernetwork: it outputs the residual f_phi(eps, c), of eps's shape.
type Modulator interface {
	// Name identifies the architecture in configs ("lora", "mlp").
	Name() string
	// Residual builds f_phi(eps, c) for eps [B, NoiseShape...] and prompts [B] int32.
	// Its trainable variables live in ctx under the modulator's own scope.
	Residual(ctx *context.Context, eps, prompts *graph.Node) *graph.Node
}
