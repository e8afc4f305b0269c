package fashion

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/hypernoise/hypernoise/nn"
)

// Shapes of the pipeline.
const (
	Side       = 28 // image height and width
	LatentSide = 7  // latent height and width
	LatentCh   = 4  // latent channels
	LatentDim  = LatentSide * LatentSide * LatentCh
	NumClasses = 10
	NullClass  = NumClasses // the "no prompt" class id used for classifier-free guidance

	flowWidth = 512 // hidden width of the teacher/student MLP
	condDim   = 128 // width of the (time, class) conditioning vector
)

// Variable scopes of the parts (each part's weights file holds exactly its scope).
const (
	ScopeAutoencoder   = "autoencoder"
	ScopeTeacher       = "teacher"
	ScopeStudent       = "student"
	ScopeClassifier    = "classifier"
	ScopeHeldOut       = "heldout"
	ScopeDiscriminator = "discriminator"
)

func silu(x *Node) *Node { return Mul(x, Sigmoid(x)) }

// spaceToDepth maps x [B,H,W,C] to [B,H/2,W/2,4C], each 2x2 block of pixels becoming channels.
func spaceToDepth(x *Node) *Node {
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]
	x = Reshape(x, b, h/2, 2, w/2, 2, c)
	x = TransposeAllDims(x, 0, 1, 3, 2, 4, 5)
	return Reshape(x, b, h/2, w/2, 4*c)
}

// depthToSpace is the inverse of spaceToDepth: [B,H,W,4C] -> [B,2H,2W,C].
func depthToSpace(x *Node) *Node {
	d := x.Shape().Dimensions
	b, h, w, c := d[0], d[1], d[2], d[3]/4
	x = Reshape(x, b, h, w, 2, 2, c)
	x = TransposeAllDims(x, 0, 1, 3, 2, 4, 5)
	return Reshape(x, b, 2*h, 2*w, c)
}

// encoderNet maps images x [B,28,28,1] in [0,1] to raw (unstandardized) latents [B,7,7,4].
// Run it in the autoencoder's scope.
func encoderNet(ctx *context.Context, x *Node) *Node {
	ctx = ctx.In("encoder")
	h := spaceToDepth(x)                                   // 14x14x4
	h = silu(nn.Conv(ctx.In("conv1"), h, 32, 3, 1))        // 14x14x32
	h = spaceToDepth(h)                                    // 7x7x128
	h = silu(nn.Conv(ctx.In("conv2"), h, 48, 1, 1))        // 7x7x48
	return nn.OutputConv(ctx.In("out"), h, LatentCh, 3, 1) // 7x7x4
}

// decoderLogits maps raw latents z [B,7,7,4] to pixel logits [B,28,28,1] (the image is their
// sigmoid). Run it in the autoencoder's scope.
func decoderLogits(ctx *context.Context, z *Node) *Node {
	ctx = ctx.In("decoder")
	h := silu(nn.Conv(ctx.In("conv1"), z, 48, 3, 1)) // 7x7x48
	h = silu(nn.Conv(ctx.In("conv2"), h, 128, 1, 1)) // 7x7x128
	h = depthToSpace(h)                              // 14x14x32
	h = nn.OutputConv(ctx.In("out"), h, 4, 3, 1)     // 14x14x4
	return depthToSpace(h)                           // 28x28x1
}

// flowNet is the MLP shared by the teacher (velocity field) and the student (one-step map): it maps
// a latent-shaped input x [B,7,7,4], a time t [B] and class ids c [B] (NullClass = unconditional) to a
// latent-shaped output. The (t, c) conditioning is added to every hidden layer.
func flowNet(ctx *context.Context, x, t, c *Node) *Node {
	b := x.Shape().Dim(0)
	cond := Concatenate([]*Node{
		nn.Dense(ctx.In("time"), nn.TimeFeatures(t, 64), condDim),
		nn.Embedding(ctx.In("class"), c, NumClasses+1, condDim),
	}, -1)
	cond = silu(nn.Dense(ctx.In("cond"), silu(cond), condDim))
	h := Reshape(x, b, LatentDim)
	h = silu(Add(nn.Dense(ctx.In("in"), h, flowWidth), nn.Dense(ctx.In("in_cond"), cond, flowWidth)))
	for _, name := range []string{"block1", "block2"} {
		u := Add(nn.Dense(ctx.In(name), h, flowWidth), nn.Dense(ctx.In(name+"_cond"), cond, flowWidth))
		h = Add(h, silu(u))
	}
	out := nn.OutputDense(ctx.In("out"), h, LatentDim)
	return Reshape(out, b, LatentSide, LatentSide, LatentCh)
}

// classifierNet is the reward classifier: images [B,28,28,1] -> class logits [B,10]. (A
// space-to-depth input, SiLU and group norm, conv widths 32/64/64: a different network from
// heldOutNet.)
func classifierNet(ctx *context.Context, x *Node) *Node {
	_, logits := classifierActivations(ctx, x)
	return logits
}

// heldOutNet is the held-out evaluator, a different architecture from classifierNet (strided
// convolutions with group normalization and ReLU, three conv layers): images [B,28,28,1] ->
// logits [B,10] and penultimate features [B,128] (used for the Fréchet distance).
func heldOutNet(ctx *context.Context, x *Node) (logits, features *Node) {
	b := x.Shape().Dim(0)
	h := activations.Relu(nn.GroupNorm(ctx.In("norm1"), nn.Conv(ctx.In("conv1"), x, 16, 3, 2), 4)) // 14x14x16
	h = activations.Relu(nn.GroupNorm(ctx.In("norm2"), nn.Conv(ctx.In("conv2"), h, 48, 3, 2), 8))  // 7x7x48
	h = activations.Relu(nn.GroupNorm(ctx.In("norm3"), nn.Conv(ctx.In("conv3"), h, 64, 3, 1), 8))  // 7x7x64
	h = Reshape(h, b, -1)
	features = activations.Relu(nn.Dense(ctx.In("dense"), h, 128))
	return nn.OutputDense(ctx.In("out"), features, NumClasses), features
}

// discriminatorNet is the realism critic: images [B,28,28,1] -> logits [B] of "real".
func discriminatorNet(ctx *context.Context, x *Node) *Node {
	b := x.Shape().Dim(0)
	h := spaceToDepth(x)                            // 14x14x4
	h = silu(nn.Conv(ctx.In("conv1"), h, 16, 3, 2)) // 7x7x16
	h = silu(nn.Conv(ctx.In("conv2"), h, 32, 3, 1)) // 7x7x32
	h = ReduceMean(h, 1, 2)                         // 32
	h = silu(nn.Dense(ctx.In("dense"), h, 32))
	return Reshape(nn.OutputDense(ctx.In("out"), h, 1), b)
}

// crossEntropy is the mean of -log softmax(logits)[label] over the batch.
func crossEntropy(logits, labels *Node) *Node {
	lp := LogSoftmax(logits, -1)
	oh := OneHot(labels, logits.Shape().Dim(-1), dtypes.Float32)
	return Neg(ReduceAllMean(ReduceSum(Mul(lp, oh), -1)))
}
