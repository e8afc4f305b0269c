package compute

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestTransposesCancel: channels-first graphs whose convolutions read other convolutions' outputs
// (a 1x1 shortcut), residual sums of two convolution outputs, and a nearest upsampling written
// channels-last between two convolutions are built with the transposes cancelled and the sums carried
// channels-last (counted), and give SimpleGo's values within 1e-5 of the largest entry and the plain
// graph's (rewrites off) within 1e-6; their gradients of Σ y·sin(y) equal the plain graph's. A graph
// whose two outputs become one op after a cancellation compiles and returns both.
func TestTransposesCancel(t *testing.T) {
	if !MatmulPath().Fast || convDNNLLib() == nil {
		t.Skip("oneDNN is not in use here: the convolutions are not lowered channels-last")
	}
	fast, stock := testBackend(t), stockBackend(t)
	defer transposeCancelOn.Store(true)
	conv := func(x, k, bias *graph.Node) *graph.Node {
		kd := k.Shape().Dimensions
		p := kd[2] / 2
		c := convVariant{strides: []int{1, 1}, pads: [][2]int{{p, p}, {p, p}}, dil: []int{1, 1}, channelsFirst: true, x: make([]int, 4)}
		y := c.fn([]*graph.Node{x, k})
		return graph.Add(y, graph.Reshape(bias, 1, kd[0], 1, 1))
	}
	// upsample is the nearest 2x upsampling the ONNX Resize shim writes channels-last (resize.go).
	upsample := func(x *graph.Node) *graph.Node {
		d := x.Shape().Dimensions
		y := graph.TransposeAllAxes(x, 0, 2, 3, 1)
		y = graph.Reshape(graph.BroadcastToDims(graph.Reshape(y, d[0], d[2], 1, d[3], d[1]), d[0], d[2], 2, d[3], d[1]), d[0], 2*d[2], d[3], d[1])
		y = graph.Reshape(graph.BroadcastToDims(graph.Reshape(y, d[0], 2*d[2], d[3], 1, d[1]), d[0], 2*d[2], d[3], 2, d[1]), d[0], 2*d[2], 2*d[3], d[1])
		return graph.TransposeAllAxes(y, 0, 3, 1, 2)
	}
	const n, c, h, w, cout = 2, 8, 9, 7, 10
	cases := []struct {
		name              string
		fn                func(in []*graph.Node) []*graph.Node
		cancelled, summed int64 // at least
	}{
		{"shortcut: conv of a conv output", func(in []*graph.Node) []*graph.Node {
			h1 := conv(in[0], in[1], in[2])
			return []*graph.Node{conv(h1, in[3], in[4])}
		}, 1, 0},
		{"residual block: conv(x) + conv(conv(x)), then a conv", func(in []*graph.Node) []*graph.Node {
			h1 := conv(in[0], in[1], in[2])
			s := graph.Add(conv(h1, in[5], in[6]), conv(in[0], in[7], in[8]))
			return []*graph.Node{conv(s, in[3], in[4])}
		}, 1, 1},
		{"upsampled conv output into a conv", func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{conv(upsample(conv(in[0], in[1], in[2])), in[3], in[4])}
		}, 2, 0},
		{"two outputs that become one op", func(in []*graph.Node) []*graph.Node {
			nhwc := graph.TransposeAllAxes(conv(in[0], in[1], in[2]), 0, 2, 3, 1) // the convolution's own output
			again := graph.TransposeAllAxes(graph.TransposeAllAxes(nhwc, 0, 3, 1, 2), 0, 2, 3, 1)
			return []*graph.Node{nhwc, again}
		}, 2, 0},
	}
	inputs := func() []*tensors.Tensor {
		return normInputs([][]int{{n, c, h, w}, {c, c, 3, 3}, {c}, {cout, c, 1, 1}, {cout}, {c, c, 3, 3}, {c}, {c, c, 1, 1}, {c}}, true)
	}
	for _, tc := range cases {
		c0, s0 := statTransposeCancelled.Load(), statSumCarried.Load()
		got := eval(t, fast, tc.fn, inputs()...)
		if dc, ds := statTransposeCancelled.Load()-c0, statSumCarried.Load()-s0; dc < tc.cancelled || ds < tc.summed {
			t.Errorf("%s: %d transposes cancelled and %d sums carried, want at least %d and %d", tc.name, dc, ds, tc.cancelled, tc.summed)
		}
		want := eval(t, stock, tc.fn, inputs()...)
		transposeCancelOn.Store(false)
		off := eval(t, fast, tc.fn, inputs()...)
		transposeCancelOn.Store(true)
		if len(got) != len(want) {
			t.Fatalf("%s: %d outputs, want %d", tc.name, len(got), len(want))
		}
		for k := range got {
			if e := maxRelDiff(got[k], want[k]); e > 1e-5 {
				t.Errorf("%s: output %d differs from SimpleGo by %.3g of the largest entry", tc.name, k, e)
			}
			if e := maxRelDiff(got[k], off[k]); e > 1e-6 {
				t.Errorf("%s: output %d differs from the plain graph by %.3g of the largest entry", tc.name, k, e)
			}
		}
		grad := func(in []*graph.Node) []*graph.Node {
			y := tc.fn(in)[0]
			return graph.Gradient(graph.ReduceAllSum(graph.Mul(y, graph.Sin(y))), in...)
		}
		gotG := eval(t, fast, grad, inputs()...)
		transposeCancelOn.Store(false)
		wantG := eval(t, fast, grad, inputs()...)
		transposeCancelOn.Store(true)
		for k := range wantG {
			if e := maxRelDiff(gotG[k], wantG[k]); e > 1e-5 {
				t.Errorf("%s: gradient %d differs from the plain graph's by %.3g", tc.name, k, e)
			}
		}
	}
}
