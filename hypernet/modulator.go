package hypernet

import (
	"fmt"
	"slices"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/nn"
)

// Scoped is implemented by modulators (and other trainable models) that keep all their trainable
// variables under one absolute scope, e.g. "/hypernet". The trainer updates exactly those.
type Scoped interface {
	Scope() string
}

// LoRA is the paper's modulator: a copy of the generator's own noise-shaped network (its
// Backbone) run with LoRA adapters on every dense and conv layer, the output layer replaced by its
// LoRA branch alone, so that f_phi(eps, c) = 0 exactly at initialization. The base weights are the
// generator's, frozen; the adapters live under /Prefix/<the generator's scopes>.
type LoRA struct {
	Backbone hypernoise.Backbone
	Rank     int
	Alpha    float64 // LoRA scale numerator: the adapter adds (Alpha/Rank) B A x
	Prefix   string  // scope root of the adapters
}

// NewLoRA returns the LoRA modulator of backbone with the given rank; alpha <= 0 means the
// reference's 2*rank; prefix "" means "hypernet".
func NewLoRA(backbone hypernoise.Backbone, rank int, alpha float64, prefix string) (*LoRA, error) {
	if backbone == nil {
		return nil, fmt.Errorf("LoRA modulator: nil backbone")
	}
	alpha, prefix, err := LoRAParams("LoRA modulator", "rank", rank, alpha, prefix, "hypernet")
	if err != nil {
		return nil, err
	}
	return &LoRA{Backbone: backbone, Rank: rank, Alpha: alpha, Prefix: prefix}, nil
}

// LoRAParams checks the rank and the scope prefix of LoRA adapters and fills in the defaults:
// alpha <= 0 means 2*rank, prefix "" means defaultPrefix. Errors start with what and call the
// rank rankName ("LoRA modulator: rank must be positive, got 0").
func LoRAParams(what, rankName string, rank int, alpha float64, prefix, defaultPrefix string) (float64, string, error) {
	if rank <= 0 {
		return 0, "", fmt.Errorf("%s: %s must be positive, got %d", what, rankName, rank)
	}
	if alpha <= 0 {
		alpha = 2 * float64(rank)
	}
	if prefix == "" {
		prefix = defaultPrefix
	}
	if strings.Contains(prefix, context.ScopeSeparator) {
		return 0, "", fmt.Errorf("%s: prefix %q must be a single scope name", what, prefix)
	}
	return alpha, prefix, nil
}

// Name returns "lora".
func (m *LoRA) Name() string { return "lora" }

// Scope returns "/" + Prefix.
func (m *LoRA) Scope() string { return context.ScopeSeparator + m.Prefix }

// Residual builds f_phi(eps, c) = Backbone_LoRA(eps, c) (output layer: LoRA branch only).
// ctx is the context the generator itself is called with.
func (m *LoRA) Residual(ctx *context.Context, eps, prompts *Node) *Node {
	lctx, err := nn.WithLoRA(ctx, m.Prefix, nn.LoRA{Rank: m.Rank, Alpha: m.Alpha, OutputOnly: true})
	if err != nil {
		panic(err)
	}
	f := m.Backbone.Backbone(lctx, eps, prompts)
	if !slices.Equal(f.Shape().Dimensions, eps.Shape().Dimensions) {
		panic(fmt.Sprintf("LoRA modulator: backbone output shape %s differs from the noise shape %s", f.Shape(), eps.Shape()))
	}
	return f
}

// MLP is a small standalone modulator: eps (flattened) and a learned prompt embedding go through
// Layers hidden dense layers of width Hidden with SiLU, then a zero-initialized dense layer back
// to the noise shape, so f_phi(eps, c) = 0 exactly at initialization.
type MLP struct {
	NoiseShape []int
	NumPrompts int // 0 for an unconditional generator (no embedding)
	Hidden     int
	Layers     int
	PromptDim  int    // prompt embedding width (ignored if NumPrompts == 0)
	ScopeName  string // scope root of its variables
}

// NewMLP returns an MLP modulator for noise of the given shape and numPrompts prompts (0 for
// none), with layers hidden layers of width hidden, under scope "/"+name ("" means "hypernet_mlp").
func NewMLP(noiseShape []int, numPrompts, hidden, layers int, name string) (*MLP, error) {
	if len(noiseShape) == 0 || size(noiseShape) <= 0 {
		return nil, fmt.Errorf("MLP modulator: invalid noise shape %v", noiseShape)
	}
	if hidden <= 0 || layers <= 0 {
		return nil, fmt.Errorf("MLP modulator: hidden width and layer count must be positive, got %d and %d", hidden, layers)
	}
	if numPrompts < 0 {
		return nil, fmt.Errorf("MLP modulator: negative prompt count %d", numPrompts)
	}
	if name == "" {
		name = "hypernet_mlp"
	}
	if strings.Contains(name, context.ScopeSeparator) {
		return nil, fmt.Errorf("MLP modulator: scope name %q must be a single scope name", name)
	}
	return &MLP{NoiseShape: slices.Clone(noiseShape), NumPrompts: numPrompts, Hidden: hidden,
		Layers: layers, PromptDim: 32, ScopeName: name}, nil
}

// Name returns "mlp".
func (m *MLP) Name() string { return "mlp" }

// Scope returns "/" + ScopeName.
func (m *MLP) Scope() string { return context.ScopeSeparator + m.ScopeName }

// Residual builds f_phi(eps, c) = W_out h_L + b_out with h_0 = [flat(eps), E[c]],
// h_{l+1} = SiLU(W_l h_l + b_l); W_out, b_out start at zero.
func (m *MLP) Residual(ctx *context.Context, eps, prompts *Node) *Node {
	mctx := ctx.InAbsPath(m.Scope())
	b := eps.Shape().Dim(0)
	d := size(m.NoiseShape)
	h := Reshape(eps, b, d)
	if m.NumPrompts > 0 {
		emb := nn.Embedding(mctx.In("prompt"), prompts, m.NumPrompts, m.PromptDim)
		h = Concatenate([]*Node{h, ConvertDType(emb, h.DType())}, -1)
	}
	for i := range m.Layers {
		h = activations.Swish(nn.Dense(mctx.Inf("dense_%d", i), h, m.Hidden))
	}
	f := nn.ZeroDense(mctx.In("out"), h, d)
	return Reshape(f, eps.Shape().Dimensions...)
}
