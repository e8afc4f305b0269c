package compute

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestGatherRows: a row gather (an embedding-table read, indices [..., 1]) runs on the row-gather node
// and gives SimpleGo's values bit for bit, out-of-range indices clamped as SimpleGo clamps them, for
// float32 and float64 tables, int32 and int64 indices, one and two batch axes; its gradient (GoMLX's
// scatter-add, for indices in range) is SimpleGo's too. A gather that picks along two axes stays SimpleGo's.
func TestGatherRows(t *testing.T) {
	fast, stock := testBackend(t), stockBackend(t)
	table := func() *tensors.Tensor { return randTensor(3, 8, 7, 5) } // one tensor per backend
	cases := []struct {
		name    string
		dt      dtypes.DType
		indices func() *tensors.Tensor
		noGrad  bool // SimpleGo's scatter-add (the gradient) does not take out-of-range indices
	}{
		{"f32 int64 [2 1]", dtypes.Float32, func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions([]int64{3, 0}, 2, 1) }, false},
		{"f64 int32 [2 3 1]", dtypes.Float64, func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions([]int32{7, 1, 1, 4, 0, 2}, 2, 3, 1) }, false},
		{"f32 out of range", dtypes.Float32, func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions([]int64{-5, 99, 7, 8}, 4, 1) }, true},
		{"f32 int32 [1]", dtypes.Float32, func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions([]int32{6}, 1) }, false},
	}
	for _, c := range cases {
		fn := func(in []*graph.Node) []*graph.Node {
			x := graph.ConvertDType(in[0], c.dt)
			y := graph.Gather(x, in[1])
			if c.noGrad {
				return []*graph.Node{y}
			}
			// the gradient of sum(y * sin(y)) with respect to the table
			g := graph.Gradient(graph.ReduceAllSum(graph.Mul(y, graph.Sin(y))), in[0])[0]
			return []*graph.Node{y, g}
		}
		before := statGatherRows.Load()
		got := eval(t, fast, fn, table(), c.indices())
		if statGatherRows.Load() == before {
			t.Errorf("%s: the gather did not run on the row-gather node", c.name)
		}
		want := eval(t, stock, fn, table(), c.indices())
		for k := range want {
			if len(got[k]) != len(want[k]) {
				t.Fatalf("%s: output %d has %d values, SimpleGo's %d", c.name, k, len(got[k]), len(want[k]))
			}
			for i := range want[k] {
				if got[k][i] != want[k][i] {
					t.Errorf("%s: output %d differs from SimpleGo's at %d: %g, want %g", c.name, k, i, got[k][i], want[k][i])
					break
				}
			}
		}
	}
	// Two index components (a point gather): not a row gather.
	points := func() *tensors.Tensor { return tensors.FromFlatDataAndDimensions([]int32{1, 2, 3, 4}, 2, 2) }
	fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{graph.Gather(in[0], in[1])} }
	before := statGatherRows.Load()
	got := eval(t, fast, fn, table(), points())
	want := eval(t, stock, fn, table(), points())
	if statGatherRows.Load() != before {
		t.Error("a two-axis gather ran on the row-gather node")
	}
	if maxAbsDiff(got[0], want[0]) != 0 {
		t.Error("a two-axis gather differs from SimpleGo's")
	}
}
