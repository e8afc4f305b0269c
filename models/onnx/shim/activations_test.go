package shim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/onnxpb"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestActivations: on x [1, 1000] float32 (4000 bytes a tensor), a chain a = relu(x),
// b = relu(a), c = relu(b) computes 12000 bytes but holds at most two tensors at once (8000); in
// d = relu(x), e = relu(d), f = d + e, d stays alive until f, so three tensors are alive (12000).
func TestActivations(t *testing.T) {
	relu := func(in, out string) onnxpb.Node {
		return onnxpb.Node{Op: "Relu", Name: out, Inputs: []string{in}, Outputs: []string{out}}
	}
	m := onnxpb.Model{IRVersion: 8, Opsets: map[string]int64{"": 17}, Graph: onnxpb.Graph{Name: "g",
		Nodes: []onnxpb.Node{relu("x", "a"), relu("a", "b"), relu("b", "c"), relu("x", "d"), relu("d", "e"),
			{Op: "Add", Name: "f", Inputs: []string{"d", "e"}, Outputs: []string{"f"}}},
		Inputs: []onnxpb.Value{{Name: "x", Type: onnxpb.Float, Dims: []int64{1, 1000}}},
		Outputs: []onnxpb.Value{{Name: "c", Type: onnxpb.Float, Dims: []int64{1, 1000}},
			{Name: "f", Type: onnxpb.Float, Dims: []int64{1, 1000}}}}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "chain.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		out         string
		total, peak int64
	}{{"c", 12000, 8000}, {"f", 12000, 12000}} {
		gr := NewGraph(testutil.Backend(t), "activations")
		x := Parameter(gr, "x", shapes.Make(dtypes.Float32, 1, 1000))
		_, act := g.CallStats(context.New(), gr, map[string]*Node{"x": x}, c.out)
		if act.Total != c.total || act.Peak != c.peak {
			t.Errorf("output %s: activations %+v, want total %d and peak %d", c.out, act, c.total, c.peak)
		}
		gr.Finalize()
	}
}
