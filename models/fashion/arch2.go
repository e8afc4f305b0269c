package fashion

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/nn"
)

// Architecture versions of the parts that have more than one. A weights file records its version
// in its metadata ("arch"); a file without one is ArchV1.
const (
	// ArchV1 is the first embedded default: a small conv autoencoder and an MLP flow network.
	ArchV1 = "v1"
	// ArchV2 is a residual conv autoencoder and a small U-Net flow network (conv blocks on the
	// 7x7 latent around a dense, global bottleneck).
	ArchV2 = "v2"
	// CurrentArch is the version of the shipped (embedded) weights, and the one training writes
	// unless told otherwise (TrainOptions.Arch, zoo train --arch). v1, the earlier default, is
	// trained on request; MODEL_CARD.md compares the two.
	CurrentArch = ArchV2
)

// versioned lists the parts whose architecture depends on the version.
var versioned = map[string]bool{"autoencoder": true, "teacher": true, "student": true}

// archParam is the context parameter holding a part's architecture version.
func archParam(part string) string { return "fashion_arch_" + part }

// SetArch records in ctx (at its root, so that every scope and LoRA context derived from it sees
// it) which architecture version a part's weights have.
func SetArch(ctx *context.Context, part, arch string) error {
	if arch != ArchV1 && arch != ArchV2 {
		return fmt.Errorf("unknown fashion architecture %q for %s (want %s or %s)", arch, part, ArchV1, ArchV2)
	}
	ctx.InAbsPath(context.ScopeSeparator).SetParam(archParam(part), arch)
	return nil
}

// archOf is the architecture version of a part as recorded in ctx (ArchV1 if unset).
func archOf(ctx *context.Context, part string) string {
	return context.GetParamOr(ctx, archParam(part), ArchV1)
}

// Widths of the v2 networks.
const (
	aeWidth2   = 48 // decoder channels at 7x7
	flowConv2  = 32 // U-Net channels at 7x7
	flowDense2 = 384
)

// encoderNet2 maps images x [B,28,28,1] to raw latents [B,7,7,4]: space-to-depth, two 3x3 convs
// (32) at 14x14, space-to-depth, a 3x3 conv (64) at 7x7, a 3x3 conv to the 4 latent channels.
func encoderNet2(ctx *context.Context, x *Node) *Node {
	ctx = ctx.In("encoder")
	h := spaceToDepth(x)                                   // 14x14x4
	h = silu(nn.Conv(ctx.In("conv1"), h, 32, 3, 1))        // 14x14x32
	h = silu(nn.Conv(ctx.In("conv2"), h, 32, 3, 1))        // 14x14x32
	h = spaceToDepth(h)                                    // 7x7x128
	h = silu(nn.Conv(ctx.In("conv3"), h, 64, 3, 1))        // 7x7x64
	return nn.OutputConv(ctx.In("out"), h, LatentCh, 3, 1) // 7x7x4
}

// decoderLogits2 maps raw latents z [B,7,7,4] to pixel logits [B,28,28,1]: a 3x3 conv (48) and a
// residual block at 7x7, a 1x1 conv to 128 and depth-to-space to 14x14x32, a 3x3 conv (32), a
// 3x3 conv to 4 channels and depth-to-space to 28x28x1.
func decoderLogits2(ctx *context.Context, z *Node) *Node {
	ctx = ctx.In("decoder")
	h := nn.Conv(ctx.In("conv1"), z, aeWidth2, 3, 1)       // 7x7x48
	h = resBlock(ctx.In("res1"), h, nil)                   // 7x7x48
	h = silu(nn.Conv(ctx.In("conv2"), silu(h), 128, 1, 1)) // 7x7x128
	h = depthToSpace(h)                                    // 14x14x32
	h = silu(nn.Conv(ctx.In("conv3"), h, 32, 3, 1))        // 14x14x32
	h = nn.OutputConv(ctx.In("out"), h, 4, 3, 1)           // 14x14x4
	return depthToSpace(h)                                 // 28x28x1
}

// resBlock is h + conv(silu(conv(silu(h)) + cond W)), two 3x3 convs of h's width; cond [B,D] (may
// be nil) adds a per-channel bias after the first conv.
func resBlock(ctx *context.Context, h, cond *Node) *Node {
	c := h.Shape().Dim(-1)
	u := nn.Conv(ctx.In("conv1"), silu(h), c, 3, 1)
	if cond != nil {
		b := nn.Dense(ctx.In("cond"), cond, c)
		u = Add(u, InsertAxes(b, 1, 1))
	}
	u = nn.Conv(ctx.In("conv2"), silu(u), c, 3, 1)
	return Add(h, u)
}

// flowCond is the (time, class) conditioning vector [B,condDim]: sinusoidal time features through a
// dense layer and a class embedding (NullClass = unconditional), concatenated, then a dense layer.
func flowCond(ctx *context.Context, t, c *Node) *Node {
	cond := Concatenate([]*Node{
		nn.Dense(ctx.In("time"), nn.TimeFeatures(t, 64), condDim),
		nn.Embedding(ctx.In("class"), c, NumClasses+1, condDim),
	}, -1)
	return silu(nn.Dense(ctx.In("cond"), silu(cond), condDim))
}

// flowNet2 is the v2 teacher/student network, a small U-Net on the 7x7 latent: a 3x3 conv (32) and
// a conditioned residual block (the skip), a dense bottleneck over the whole latent (1568 -> 384,
// two conditioned residual dense layers, 384 -> 1568) that gives every position a global view,
// added to the skip, another conditioned residual block, and a 3x3 output conv to 4 channels
// (nn.OutputConv, so LoRA OutputOnly works).
func flowNet2(ctx *context.Context, x, t, c *Node) *Node {
	b := x.Shape().Dim(0)
	cond := flowCond(ctx, t, c)
	skip := resBlock(ctx.In("down"), nn.Conv(ctx.In("in"), x, flowConv2, 3, 1), cond) // 7x7x32
	flat := Reshape(silu(skip), b, LatentSide*LatentSide*flowConv2)
	h := silu(Add(nn.Dense(ctx.In("mid_in"), flat, flowDense2), nn.Dense(ctx.In("mid_in_cond"), cond, flowDense2)))
	for _, name := range []string{"mid1", "mid2"} {
		u := Add(nn.Dense(ctx.In(name), h, flowDense2), nn.Dense(ctx.In(name+"_cond"), cond, flowDense2))
		h = Add(h, silu(u))
	}
	up := Reshape(nn.Dense(ctx.In("mid_out"), h, LatentSide*LatentSide*flowConv2), b, LatentSide, LatentSide, flowConv2)
	h4 := resBlock(ctx.In("up"), Add(skip, up), cond)
	return nn.OutputConv(ctx.In("out"), silu(h4), LatentCh, 3, 1)
}

// criticNet is the student's latent critic (used only while distilling the student): standardized
// latents [B,7,7,4] -> logits [B] of "the latent of a real image". 3x3 conv (64), 3x3 conv (64,
// stride 2), dense 128, dense 1.
func criticNet(ctx *context.Context, z *Node) *Node {
	b := z.Shape().Dim(0)
	h := leaky(nn.Conv(ctx.In("conv1"), z, 64, 3, 1)) // 7x7x64
	h = leaky(nn.Conv(ctx.In("conv2"), h, 64, 3, 2))  // 4x4x64
	h = leaky(nn.Dense(ctx.In("dense"), Reshape(h, b, -1), 128))
	return Reshape(nn.Dense(ctx.In("out"), h, 1), b)
}

// leaky is the leaky ReLU max(x, 0.2 x).
func leaky(x *Node) *Node { return Max(x, MulScalar(x, 0.2)) }

// classifierActivations runs the reward classifier (ctx in its scope) and returns its three conv
// activations (the features of the autoencoder's perceptual loss) and its logits.
func classifierActivations(ctx *context.Context, x *Node) (acts []*Node, logits *Node) {
	b := x.Shape().Dim(0)
	h := spaceToDepth(x)
	h = silu(nn.GroupNorm(ctx.In("norm1"), nn.Conv(ctx.In("conv1"), h, 32, 3, 1), 8))
	acts = append(acts, h)
	h = silu(nn.GroupNorm(ctx.In("norm2"), nn.Conv(ctx.In("conv2"), h, 64, 3, 2), 8))
	acts = append(acts, h)
	h = silu(nn.GroupNorm(ctx.In("norm3"), nn.Conv(ctx.In("conv3"), h, 64, 3, 1), 8))
	acts = append(acts, h)
	h = silu(nn.Dense(ctx.In("dense"), Reshape(h, b, -1), 128))
	return acts, nn.OutputDense(ctx.In("out"), h, NumClasses)
}

// perceptualLoss (ctx at the root of the models) is Σ_l mean((a_l(y) - a_l(x))^2) / mean(a_l(x)^2) over the reward classifier's
// conv activations a_l (the normalizer is a constant for the gradient): a reconstruction loss in
// a feature space, which penalizes blur that a pixel loss tolerates.
func perceptualLoss(ctx *context.Context, y, x *Node) *Node {
	ay, _ := classifierActivations(ctx.In(ScopeClassifier), y)
	ax, _ := classifierActivations(ctx.In(ScopeClassifier), x)
	var total *Node
	for l := range ay {
		ref := StopGradient(ax[l])
		d := Div(ReduceAllMean(Square(Sub(ay[l], ref))), AddScalar(StopGradient(ReduceAllMean(Square(ref))), 1e-6))
		if total == nil {
			total = d
		} else {
			total = Add(total, d)
		}
	}
	return total
}

// encoder dispatches to the autoencoder's encoder of the version recorded in ctx (autoencoder scope).
func encoder(ctx *context.Context, x *Node) *Node {
	if archOf(ctx, "autoencoder") == ArchV2 {
		return encoderNet2(ctx, x)
	}
	return encoderNet(ctx, x)
}

// decoder dispatches to the autoencoder's decoder of the version recorded in ctx (autoencoder scope).
func decoder(ctx *context.Context, z *Node) *Node {
	if archOf(ctx, "autoencoder") == ArchV2 {
		return decoderLogits2(ctx, z)
	}
	return decoderLogits(ctx, z)
}

// flow dispatches to the flow network of the version recorded in ctx for part (teacher or student).
func flow(ctx *context.Context, part string, x, t, c *Node) *Node {
	if archOf(ctx, part) == ArchV2 {
		return flowNet2(ctx, x, t, c)
	}
	return flowNet(ctx, x, t, c)
}
