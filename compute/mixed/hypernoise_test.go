package mixed_test

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/hypernoise/hypernoise/compute/mixed"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/pipeline"
)

// lossAndGradient builds the default HyperNoise problem (LoRA rank 8 on the embedded student, align
// reward, the reference's regularizer) in a fresh copy of the embedded model, and returns on backend
// the batch loss, its gradient with respect to the hypernetwork's variables (flattened, in path
// order) and those variables' dtypes.
func lossAndGradient(t *testing.T, backend backends.Backend, batch int) (float64, []float64, []dtypes.DType) {
	t.Helper()
	m, err := fashion.Default()
	if err != nil {
		t.Fatal(err)
	}
	opts := pipeline.DefaultTrainOptions()
	reward, err := fashion.Rewards(m).Parse("align=1")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := opts.Modulator.Build(m, "mixed_test")
	if err != nil {
		t.Fatal(err)
	}
	p, err := hypernet.NewProblem(m, mod, hypernet.Objective{Reward: reward, Reg: opts.Reg, Weight: opts.RegWeight})
	if err != nil {
		t.Fatal(err)
	}
	ctx := m.Context()
	if err := ctx.SetRNGStateFromSeed(7); err != nil {
		t.Fatal(err)
	}
	eps, prompts := hypernet.TrainingBatch(hypernet.NoiseFresh, 3, 0, batch, batch, p.NoiseShape, p.NumPrompts)
	epsT := tensors.FromFlatDataAndDimensions(eps, append([]int{batch}, p.NoiseShape...)...)
	var dts []dtypes.DType
	outs, err := context.ExecOnceN(backend, ctx, func(ctx *context.Context, e, c *Node) []*Node {
		perSample, _ := p.Loss(ctx, e, c)
		loss := ReduceAllMean(perSample)
		var vars []*Node
		for v := range ctx.IterVariables() {
			if v.Trainable && v.InUseByGraph(e.Graph()) && len(v.Scope()) >= len(p.Scope) && v.Scope()[:len(p.Scope)] == p.Scope {
				vars = append(vars, v.ValueGraph(e.Graph()))
				dts = append(dts, v.DType())
			}
		}
		grads := Gradient(loss, vars...)
		flat := make([]*Node, len(grads))
		for i, g := range grads {
			flat[i] = Reshape(ConvertDType(g, dtypes.Float64), -1)
		}
		return []*Node{ConvertDType(loss, dtypes.Float64), Concatenate(flat, 0)}
	}, epsT, tensors.FromFlatDataAndDimensions(prompts, batch))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.ToScalar[float64](outs[0]), tensors.MustCopyFlatData[float64](outs[1]), dts
}

// TestHyperNoiseBF16AgainstF32: the HyperNoise loss and its gradient for the hypernetwork on the
// embedded default (batch 8) computed with bfloat16 products and convolutions agree with float32:
// the loss (a log-probability of about 0.1 here, computed from logits of magnitude ~10 that bfloat16
// rounds by up to 2^-8 relative) within 0.025, the gradient's direction within a cosine of 0.98 and
// its norm within 15% (measured on the 2-core CPU: 0.0101, 0.9914 and 7.3%); the hypernetwork's
// variables stay float32.
func TestHyperNoiseBF16AgainstF32(t *testing.T) {
	const batch = 8
	l32, g32, _ := lossAndGradient(t, goBackend(t), batch)
	l16, g16, dts := lossAndGradient(t, mixed.Wrap(goBackend(t), dtypes.BFloat16), batch)
	if len(g32) == 0 || len(g32) != len(g16) {
		t.Fatalf("gradient sizes %d and %d", len(g32), len(g16))
	}
	for _, dt := range dts {
		if dt != dtypes.Float32 {
			t.Errorf("a hypernetwork variable is %s, want float32", dt)
		}
	}
	var dot, n32, n16 float64
	for i := range g32 {
		dot += g32[i] * g16[i]
		n32 += g32[i] * g32[i]
		n16 += g16[i] * g16[i]
	}
	cos := dot / math.Sqrt(n32*n16)
	ratio := math.Sqrt(n16 / n32)
	dLoss := math.Abs(l16 - l32)
	t.Logf("loss f32 %.6g bf16 %.6g (difference %.3g); gradient cosine %.5f, norm ratio %.4f (%d values)",
		l32, l16, dLoss, cos, ratio, len(g32))
	if dLoss > 0.025 || cos < 0.98 || math.Abs(ratio-1) > 0.15 {
		t.Errorf("bfloat16 outside tolerance: loss difference %.3g, cosine %.4f, norm ratio %.4f", dLoss, cos, ratio)
	}
	if dLoss == 0 && cos == 1 {
		t.Error("bfloat16 and float32 agree exactly: nothing ran in bfloat16")
	}
}
