// Package nn holds the few layers the project's networks are made of (dense, 3x3 convolution,
// group normalization, embeddings, sinusoidal time features), written so that any network built
// from them can be re-run with low-rank adapters (LoRA) on every dense and conv layer.
//
// That is what makes the paper's hypernetwork possible: the modulator f_phi is "a copy of the
// generator's network with LoRA adapters", and the fine-tune baseline is "the generator with LoRA".
// Both are obtained by calling the unchanged model function in a context returned by WithLoRA.
//
// Layers create their variables in ctx's current scope, reusing them if they exist, so a model
// function may be called several times in one graph and shares its weights.
package nn

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/hypernoise/hypernoise/compute"
)

// Context parameter keys used to switch a network into LoRA mode (set by WithLoRA).
const (
	paramLoRARank       = "nn_lora_rank"
	paramLoRAAlpha      = "nn_lora_alpha"
	paramLoRAPrefix     = "nn_lora_prefix"
	paramLoRAOutputOnly = "nn_lora_output_only"
)

// LoRA configures low-rank adapters: W x  ->  W x + (Alpha/Rank) B A x, with A [in, Rank] drawn
// from N(0, (1/Rank)^2) and B [Rank, out] zero, so the adapted layer equals the base at step 0.
type LoRA struct {
	Rank  int
	Alpha float64 // scale numerator; the reference uses Alpha = 2*Rank
	// OutputOnly replaces every layer built with Output() by its LoRA branch alone (no base weight,
	// no bias): the network's output is then exactly zero at step 0. This is the hypernetwork's
	// residual head f_phi(eps) in the paper's reference code.
	OutputOnly bool
}

// WithLoRA returns a context in which a network built from this package's layers runs with LoRA
// adapters. prefix names a new scope root (for example "hypernet" or "finetune", or a path such as
// "hypernet/coupling_0" for several adapter sets under one root) under which the adapters live: a layer that normally lives at scope /S reads its frozen base weights from /S and
// keeps its adapters under /prefix/S. base is the context (scope) the network normally runs in.
func WithLoRA(base *context.Context, prefix string, cfg LoRA) (*context.Context, error) {
	if cfg.Rank <= 0 {
		return nil, fmt.Errorf("LoRA rank must be positive, got %d", cfg.Rank)
	}
	if cfg.Alpha <= 0 {
		return nil, fmt.Errorf("LoRA alpha must be positive, got %g", cfg.Alpha)
	}
	for _, name := range strings.Split(prefix, context.ScopeSeparator) {
		if name == "" {
			return nil, fmt.Errorf("LoRA prefix must be a non-empty scope name or a path of them (a/b), got %q", prefix)
		}
	}
	root := base.InAbsPath(context.ScopeSeparator + prefix)
	root.SetParam(paramLoRARank, cfg.Rank)
	root.SetParam(paramLoRAAlpha, cfg.Alpha)
	root.SetParam(paramLoRAPrefix, prefix)
	root.SetParam(paramLoRAOutputOnly, cfg.OutputOnly)
	scope := base.Scope()
	if scope == context.ScopeSeparator {
		return root, nil
	}
	return root.InAbsPath(root.Scope() + scope), nil
}

// loraState is the LoRA configuration visible from ctx, or rank 0 if none.
type loraState struct {
	rank       int
	alpha      float64
	outputOnly bool
	baseCtx    *context.Context // where the frozen base weights of this layer live
}

func loraOf(ctx *context.Context) loraState {
	rank := context.GetParamOr(ctx, paramLoRARank, 0)
	if rank <= 0 {
		return loraState{baseCtx: ctx}
	}
	prefix := context.GetParamOr(ctx, paramLoRAPrefix, "")
	root := context.ScopeSeparator + prefix
	baseScope := strings.TrimPrefix(ctx.Scope(), root)
	if baseScope == "" {
		baseScope = context.ScopeSeparator
	}
	return loraState{
		rank:       rank,
		alpha:      context.GetParamOr(ctx, paramLoRAAlpha, 2*float64(rank)),
		outputOnly: context.GetParamOr(ctx, paramLoRAOutputOnly, false),
		baseCtx:    ctx.InAbsPath(baseScope),
	}
}

// Adapter is the LoRA configuration in effect in a context, for layers written outside this
// package (for example an imported ONNX graph's convolutions and matrix products) that must behave
// like Dense and Conv under WithLoRA. Rank is 0 when ctx is not a LoRA context.
type Adapter struct {
	Rank       int
	Alpha      float64 // the adapter adds (Alpha/Rank) B A x
	OutputOnly bool    // the network's output layer is replaced by its LoRA branch alone
	// Base is the context (same scope) holding the frozen base weights; ctx itself when Rank is 0.
	Base *context.Context
}

// AdapterOf returns the LoRA configuration in effect in ctx (see WithLoRA).
func AdapterOf(ctx *context.Context) Adapter {
	ls := loraOf(ctx)
	return Adapter{Rank: ls.rank, Alpha: ls.alpha, OutputOnly: ls.outputOnly, Base: ls.baseCtx}
}

// Factors returns the adapter's two factors for a layer in ctx's scope, creating them if needed
// with the package's initialization: A of shape aDims (its last axis must be Rank) drawn from
// N(0, (1/Rank)^2), and B [Rank, out] zero. They are named "lora_a" and "lora_b", as in Dense/Conv.
func (a Adapter) Factors(ctx *context.Context, g *Graph, dt dtypes.DType, aDims []int, out int) (A, B *Node) {
	A = variable(ctx, "lora_a", shapes.Make(dt, aDims...),
		initializers.RandomNormalFn(ctx, 1/float64(a.Rank))).ValueGraph(g)
	B = variable(ctx, "lora_b", shapes.Make(dt, a.Rank, out), initializers.Zero).ValueGraph(g)
	return A, B
}

// variable returns (creating if needed) a variable in ctx with the given initializer.
func variable(ctx *context.Context, name string, shape shapes.Shape, init context.VariableInitializer) *context.Variable {
	return ctx.Checked(false).WithInitializer(init).VariableWithShape(name, shape)
}

// lecun is N(0, 1/fanIn), the usual initialization for layers followed by smooth activations.
func lecun(ctx *context.Context, fanIn int) context.VariableInitializer {
	return initializers.RandomNormalFn(ctx, 1/math.Sqrt(float64(fanIn)))
}

// Dense computes y = x W + b over the last axis of x (any leading axes), W [in, out].
func Dense(ctx *context.Context, x *Node, out int) *Node {
	return dense(ctx, x, out, false, false)
}

// ZeroDense is Dense with W and b initialized to zero, so y = 0 until it is trained: the last
// layer of a residual network that must start as the identity map. (Under WithLoRA it behaves
// like Dense: frozen base weights plus adapters.)
func ZeroDense(ctx *context.Context, x *Node, out int) *Node {
	return dense(ctx, x, out, false, true)
}

// OutputDense is Dense for a network's final layer. Under WithLoRA(OutputOnly) it returns only the
// LoRA branch (Alpha/Rank) x A B, which is zero until B is trained.
func OutputDense(ctx *context.Context, x *Node, out int) *Node {
	return dense(ctx, x, out, true, false)
}

func dense(ctx *context.Context, x *Node, out int, isOutput, zeroInit bool) *Node {
	in := x.Shape().Dim(-1)
	dt := x.DType()
	ls := loraOf(ctx)
	var y *Node
	if !(isOutput && ls.outputOnly && ls.rank > 0) {
		winit := lecun(ctx, in)
		if zeroInit {
			winit = initializers.Zero
		}
		w := variable(ls.baseCtx, "weights", shapes.Make(dt, in, out), winit).ValueGraph(x.Graph())
		b := variable(ls.baseCtx, "biases", shapes.Make(dt, out), initializers.Zero).ValueGraph(x.Graph())
		y = Add(matLast(x, w), ExpandLeftToRank(b, x.Rank()))
	}
	if ls.rank > 0 {
		a := variable(ctx, "lora_a", shapes.Make(dt, in, ls.rank),
			initializers.RandomNormalFn(ctx, 1/float64(ls.rank))).ValueGraph(x.Graph())
		bb := variable(ctx, "lora_b", shapes.Make(dt, ls.rank, out), initializers.Zero).ValueGraph(x.Graph())
		delta := MulScalar(matLast(matLast(x, a), bb), ls.alpha/float64(ls.rank))
		if y == nil {
			return delta
		}
		y = Add(y, delta)
	}
	return y
}

// matLast contracts the last axis of x with the first axis of the matrix m.
func matLast(x, m *Node) *Node {
	if x.Rank() == 2 {
		return Dot(x, m)
	}
	dims := x.Shape().Dimensions
	flat := Reshape(x, -1, dims[len(dims)-1])
	y := Dot(flat, m)
	outDims := append(append([]int{}, dims[:len(dims)-1]...), m.Shape().Dim(-1))
	return Reshape(y, outDims...)
}

// Conv computes a k x k "same"-padded convolution with stride s, x [B,H,W,Cin] -> [B,H/s,W/s,out],
// plus a bias. Under WithLoRA the adapter is a k x k conv to Rank channels followed by a 1x1 conv
// to out channels (the usual LoRA for convolutions).
func Conv(ctx *context.Context, x *Node, out, k, stride int) *Node {
	return conv(ctx, x, out, k, stride, false)
}

// OutputConv is Conv for a network's final layer; see OutputDense.
func OutputConv(ctx *context.Context, x *Node, out, k, stride int) *Node {
	return conv(ctx, x, out, k, stride, true)
}

func conv(ctx *context.Context, x *Node, out, k, stride int, isOutput bool) *Node {
	in := x.Shape().Dim(-1)
	dt := x.DType()
	ls := loraOf(ctx)
	g := x.Graph()
	var y *Node
	if !(isOutput && ls.outputOnly && ls.rank > 0) {
		w := variable(ls.baseCtx, "weights", shapes.Make(dt, k, k, in, out), lecun(ctx, k*k*in)).ValueGraph(g)
		b := variable(ls.baseCtx, "biases", shapes.Make(dt, out), initializers.Zero).ValueGraph(g)
		y = Add(compute.Conv2D(x, w, stride), ExpandLeftToRank(b, x.Rank()))
	}
	if ls.rank > 0 {
		a := variable(ctx, "lora_a", shapes.Make(dt, k, k, in, ls.rank),
			initializers.RandomNormalFn(ctx, 1/float64(ls.rank))).ValueGraph(g)
		bb := variable(ctx, "lora_b", shapes.Make(dt, ls.rank, out), initializers.Zero).ValueGraph(g)
		delta := MulScalar(matLast(compute.Conv2D(x, a, stride), bb), ls.alpha/float64(ls.rank))
		if y == nil {
			return delta
		}
		y = Add(y, delta)
	}
	return y
}

// GroupNorm normalizes x [B,...,C] per (sample, group of C/groups channels) and applies a learned
// per-channel scale and offset. Under LoRA these stay frozen (they are read from the base scope).
func GroupNorm(ctx *context.Context, x *Node, groups int) *Node {
	c := x.Shape().Dim(-1)
	ls := loraOf(ctx)
	g := x.Graph()
	scale := variable(ls.baseCtx, "scale", shapes.Make(x.DType(), c), initializers.One).ValueGraph(g)
	offset := variable(ls.baseCtx, "offset", shapes.Make(x.DType(), c), initializers.Zero).ValueGraph(g)
	r := x.Rank()
	return Add(Mul(compute.GroupNorm(x, groups, 1e-5), ExpandLeftToRank(scale, r)), ExpandLeftToRank(offset, r))
}

// Embedding maps integer ids [B] in [0, vocab) to learned vectors [B, dim] (frozen under LoRA).
func Embedding(ctx *context.Context, ids *Node, vocab, dim int) *Node {
	ls := loraOf(ctx)
	table := variable(ls.baseCtx, "embeddings", shapes.Make(dtypes.Float32, vocab, dim),
		initializers.RandomNormalFn(ctx, 1)).ValueGraph(ids.Graph())
	return Gather(table, ExpandAxes(ConvertDType(ids, dtypes.Int32), -1))
}

// TimeFeatures maps times t [B] in [0,1] to sinusoidal features [B, dim]:
// (sin(2^k pi t), cos(2^k pi t)) for k = 0..dim/2-1 scaled frequencies 1..1000 (geometric).
func TimeFeatures(t *Node, dim int) *Node {
	half := dim / 2
	freqs := make([]float32, half)
	for i := range freqs {
		freqs[i] = float32(math.Exp(math.Log(1000) * float64(i) / float64(max(half-1, 1))))
	}
	f := Const(t.Graph(), freqs)
	arg := Mul(ExpandAxes(ConvertDType(t, dtypes.Float32), -1), ExpandAxes(f, 0))
	return Concatenate([]*Node{Sin(arg), Cos(arg)}, -1)
}
