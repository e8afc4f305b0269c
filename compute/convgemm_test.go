package compute

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestConvGemmFused compares float32 convolutions run as the fused im2col + GEMM node (see
// convgemm.go) with the unfused lowering (im2col node, then one DotGeneral) and with SimpleGo's own
// convolution, on odd shapes, strides, paddings and dilations, with batches large enough to be cut into
// several chunks and, with the per-part floor lowered, over several goroutines; and checks that the
// fused node is the one that ran.
func TestConvGemmFused(t *testing.T) {
	if !MatmulPath().Fast {
		t.Skip("no GEMM library: the fused convolution is not built")
	}
	fast := testBackend(t)
	stock, err := NewBackend(StockName)
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Finalize()
	saved := convGemmParts
	defer func() { convGemmParts = saved; convFuseOn.Store(true) }()
	cases := []convVariant{
		{"3x3/s1/pad1/b32x7x7x32", []int{32, 7, 7, 32}, []int{3, 3, 32, 32}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false},
		{"3x3/s1/pad1/b13x14x14x4", []int{13, 14, 14, 4}, []int{3, 3, 4, 33}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false},
		{"3x3/s2/pad(1,0)/odd", []int{11, 9, 7, 5}, []int{3, 3, 5, 7}, []int{2, 2}, [][2]int{{1, 0}, {0, 1}}, nil, 1, false},
		{"2x3/s(1,2)/dil(2,1)", []int{7, 10, 9, 3}, []int{2, 3, 3, 9}, []int{1, 2}, [][2]int{{2, 1}, {0, 2}}, []int{2, 1}, 1, false},
		{"4x4/s4/patch", []int{5, 12, 8, 3}, []int{4, 4, 3, 17}, []int{4, 4}, nil, nil, 1, false},
		{"1d/k5/pad2", []int{9, 31, 6}, []int{5, 6, 11}, []int{1}, [][2]int{{2, 2}}, nil, 1, false},
		{"channels-first/3x3", []int{6, 5, 9, 8}, []int{8, 5, 3, 3}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, true},
	}
	for _, parts := range []int{1, 2, 3} {
		convGemmParts = func(f32 bool, nb, mnk int) int {
			if !f32 {
				return 1
			}
			return min(parts, nb)
		}
		for _, c := range cases {
			if c.dil == nil {
				c.dil = ones(len(c.x) - 2)
			}
			fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(in)} }
			x := func() *tensors.Tensor { return randFloat32(7, c.x...) }
			k := func() *tensors.Tensor { return randFloat32(8, c.k...) }
			before, beforeSplit := statConvFused.Load(), statConvFusedSplit.Load()
			convFuseOn.Store(true)
			got := eval(t, fast, fn, x(), k())[0]
			if statConvFused.Load() == before {
				t.Fatalf("%s: the fused convolution node was not built", c.name)
			}
			if parts > 1 && statConvFusedSplit.Load() == beforeSplit {
				t.Errorf("%s: the fused convolution did not run on %d goroutines", c.name, parts)
			}
			convFuseOn.Store(false)
			unfused := eval(t, fast, fn, x(), k())[0]
			convFuseOn.Store(true)
			want := eval(t, stock, fn, x(), k())[0]
			scale := 0.0
			for _, v := range want {
				scale = max(scale, math.Abs(v))
			}
			// float32 sums of up to a few hundred terms in another order: a few ulps of the largest value.
			tol := 1e-5 * scale
			if d := maxAbsDiff(got, want); d > tol || math.IsNaN(d) {
				t.Errorf("%s, %d part(s): max difference %g from SimpleGo's convolution (tolerance %g)", c.name, parts, d, tol)
			}
			if d := maxAbsDiff(got, unfused); d > tol || math.IsNaN(d) {
				t.Errorf("%s, %d part(s): max difference %g from the unfused lowering (tolerance %g)", c.name, parts, d, tol)
			}
		}
	}
}
