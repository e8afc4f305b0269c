package compute

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestDotTransposeFold: products reading a transposed operand (a Gemm's W^T, attention's K^T, a
// transposed lhs) read the transpose's source (counted) and give the plain graph's values (rewrite
// off) within 1e-12 of its largest entry (float64) and SimpleGo's within 1e-9, and so do their
// gradients of Σ y·sin(y); a transpose that reorders the product's cross axes is left alone and
// still gives SimpleGo's values.
func TestDotTransposeFold(t *testing.T) {
	fast, stock := testBackend(t), stockBackend(t)
	defer dotTransposeFoldOn.Store(true)
	cases := []struct {
		name   string
		fn     func(in []*graph.Node) *graph.Node
		dims   [][]int
		folded bool
	}{
		{"x · W^T (Gemm transB)", func(in []*graph.Node) *graph.Node {
			return graph.DotGeneral(in[0], []int{1}, nil, graph.Transpose(in[1], 0, 1), []int{0}, nil)
		}, [][]int{{3, 5}, {4, 5}}, true},
		{"Q · K^T (attention)", func(in []*graph.Node) *graph.Node {
			kt := graph.TransposeAllAxes(in[1], 0, 2, 1)
			return graph.DotGeneral(in[0], []int{2}, []int{0}, kt, []int{1}, []int{0})
		}, [][]int{{2, 6, 8}, {2, 7, 8}}, true},
		{"A^T · B (transposed lhs)", func(in []*graph.Node) *graph.Node {
			return graph.DotGeneral(graph.Transpose(in[0], 0, 1), []int{1}, nil, in[1], []int{0}, nil)
		}, [][]int{{5, 3}, {5, 4}}, true},
		{"cross axes reordered", func(in []*graph.Node) *graph.Node {
			st := graph.TransposeAllAxes(in[1], 0, 2, 1) // [3 5 4]: its cross axes (5, 4) are s's axes 2, 1
			return graph.DotGeneral(in[0], []int{1}, nil, st, []int{0}, nil)
		}, [][]int{{2, 3}, {3, 4, 5}}, false},
	}
	for _, c := range cases {
		run := func(in []*graph.Node) []*graph.Node {
			y := c.fn(in)
			grads := graph.Gradient(graph.ReduceAllSum(graph.Mul(y, graph.Sin(y))), in...)
			return append([]*graph.Node{y}, grads...)
		}
		inputs := func() []*tensors.Tensor { // fresh tensors for each backend
			var ts []*tensors.Tensor
			for i, d := range c.dims {
				ts = append(ts, randTensor(uint64(40+i), d...))
			}
			return ts
		}
		// Counted on the forward alone: the gradient's own products may fold transposes of theirs.
		before := statDotTransposeFolded.Load()
		eval(t, fast, func(in []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(in)} }, inputs()...)
		if folded := statDotTransposeFolded.Load() > before; folded != c.folded {
			t.Errorf("%s: transpose folded into the product: %v, want %v", c.name, folded, c.folded)
		}
		got := eval(t, fast, run, inputs()...)
		dotTransposeFoldOn.Store(false)
		plain := eval(t, fast, run, inputs()...)
		dotTransposeFoldOn.Store(true)
		want := eval(t, stock, run, inputs()...)
		for k := range want {
			if e := maxRelDiff(got[k], plain[k]); e > 1e-12 {
				t.Errorf("%s: output %d differs from the plain graph's by %.3g of its largest entry", c.name, k, e)
			}
			if e := maxRelDiff(got[k], want[k]); e > 1e-9 {
				t.Errorf("%s: output %d differs from SimpleGo's by %.3g of its largest entry", c.name, k, e)
			}
		}
	}
}
