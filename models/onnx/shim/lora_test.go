package shim

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/nn"
)

// TestOutputPathThroughBias: in output-only mode a Linear layer's output as exported (MatMul, then
// Add of the bias initializer) is its LoRA branch alone, exactly zero at initialization (the bias
// is dropped, not added), and a sum of two layers' outputs (a transformer block's residual) is
// refused with a message naming the MLP modulator.
func TestOutputPathThroughBias(t *testing.T) {
	m, err := Load(filepath.Join(testdata, "t2i_gen_bmm.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	const out = "/unet/mid.1/attn1/to_out/Add_output_0"
	layer, steps, err := m.outputPath(out)
	if err != nil {
		t.Fatal(err)
	}
	if layer.name != "/unet/mid.1/attn1/to_out/MatMul" || len(steps) != 1 {
		t.Fatalf("%s traced to %s with %d dropped terms, want the to_out MatMul and its bias", out, layer, len(steps))
	}
	ctx := context.New()
	m.CreateVariables(ctx)
	noise := make([]float32, 2*4*8*8)
	for i := range noise {
		noise[i] = float32(math.Sin(float64(i)))
	}
	e, err := context.NewExec(testutil.Backend(t), ctx, func(ctx *context.Context, x, p *Node) []*Node {
		lctx, err := nn.WithLoRA(ctx, "lora", nn.LoRA{Rank: 2, Alpha: 4, OutputOnly: true})
		if err != nil {
			panic(err)
		}
		in := map[string]*Node{"noise": x, "prompt": p}
		return []*Node{m.Call(ctx, x.Graph(), in, out)[0], m.Call(lctx, x.Graph(), in, out)[0]}
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Exec(tensors.FromFlatDataAndDimensions(noise, 2, 4, 8, 8), []int64{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	nonZero := 0
	for _, v := range tensors.MustCopyFlatData[float32](res[0]) {
		if v != 0 {
			nonZero++
		}
	}
	if nonZero == 0 {
		t.Fatal("the base layer's output is all zero: the test proves nothing")
	}
	for _, v := range tensors.MustCopyFlatData[float32](res[1]) {
		if v != 0 {
			t.Fatalf("output-only LoRA of %s is %g at initialization, want 0 (the bias must be dropped)", out, v)
		}
	}
	if err := m.CheckOutputLayer("/unet/mid.1/Add_3_output_0"); err == nil || !strings.Contains(err.Error(), "MLP modulator") {
		t.Errorf("a sum of two layers' outputs: %v, want a refusal naming the MLP modulator", err)
	}
}
