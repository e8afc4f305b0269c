package shim

import (
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestClassicAttentionNoLargeConstants: diffusers' classic attention export
// (baddbmm(torch.empty(...), q, k^T, beta=0)) builds without any constant of the attention
// scores' size: the empty tensor and its product by 0 stay splats and the addition of zeros
// disappears. (TestT2IParity checks the same graph's values against PyTorch.)
func TestClassicAttentionNoLargeConstants(t *testing.T) {
	m, err := Load(filepath.Join(testdata, "t2i_gen.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	m.CreateVariables(ctx)
	gr := NewGraph(testutil.Backend(t), "classic")
	defer gr.Finalize()
	noise, _ := m.Input("noise")
	in := map[string]*Node{"noise": Parameter(gr, "noise", shapes.Make(dtypes.Float32, append([]int{4}, noise.Dims[1:]...)...)),
		"prompt": Parameter(gr, "prompt", shapes.Make(dtypes.Int64, 4))}
	m.Call(ctx, gr, in, "image")
	for _, n := range gr.Nodes() {
		if n.Type() == NodeTypeConstant && n.Shape().Size() >= minSplat {
			t.Fatalf("constant %s of %d values in the graph", n.Shape(), n.Shape().Size())
		}
	}
}
