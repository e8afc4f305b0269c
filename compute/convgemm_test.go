package compute

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestConvGemmFused compares float32 convolutions run as the fused im2col + GEMM node (see
// convgemm.go) with the unfused lowering (im2col node, then one DotGeneral) and with SimpleGo's own
// convolution, on odd shapes, strides, paddings and dilations, with batches large enough to be cut into
// several chunks and, with the per-part floor lowered, over several goroutines; and checks that the
// fused node is the one that ran. Where oneDNN is loaded, the im2col-form cases run twice: on
// oneDNN's convolution primitive (checked to be the one that ran) and on im2col and a product.
func TestConvGemmFused(t *testing.T) {
	if !MatmulPath().Fast {
		t.Skip("no GEMM library: the fused convolution is not built")
	}
	fast := testBackend(t)
	stock := stockBackend(t)
	oneDNNForSmallConvs(t)
	saved := convGemmParts
	defer func() { convGemmParts = saved; convFuseOn.Store(true); convDNNLOn.Store(true) }()
	dnnlModes := []bool{false}
	if convDNNLLib() != nil {
		dnnlModes = append(dnnlModes, true)
	}
	cases := []convVariant{
		{"3x3/s1/pad1/b32x7x7x32", []int{32, 7, 7, 32}, []int{3, 3, 32, 32}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false},
		{"3x3/s1/pad1/b13x14x14x4", []int{13, 14, 14, 4}, []int{3, 3, 4, 33}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false},
		{"3x3/s2/pad(1,0)/odd", []int{11, 9, 7, 5}, []int{3, 3, 5, 7}, []int{2, 2}, [][2]int{{1, 0}, {0, 1}}, nil, 1, false},
		{"2x3/s(1,2)/dil(2,1)", []int{7, 10, 9, 3}, []int{2, 3, 3, 9}, []int{1, 2}, [][2]int{{2, 1}, {0, 2}}, []int{2, 1}, 1, false},
		{"4x4/s4/patch", []int{5, 12, 8, 3}, []int{4, 4, 3, 17}, []int{4, 4}, nil, nil, 1, false},
		{"1d/k5/pad2", []int{9, 31, 6}, []int{5, 6, 11}, []int{1}, [][2]int{{2, 2}}, nil, 1, false},
		{"channels-first/3x3", []int{6, 5, 9, 8}, []int{8, 5, 3, 3}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, true},
		// Fewer output than input channels, stride 1: the scatter form (GEMM + col2im), fused, unless
		// oneDNN's forward convolution runs it (see forwardOnDNNL).
		{"narrow/3x3/pad1/b32x14x14x32", []int{32, 14, 14, 32}, []int{3, 3, 32, 4}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false},
		{"narrow/2x3/pad(0,2)(1,0)/odd", []int{9, 7, 5, 13}, []int{2, 3, 13, 3}, []int{1, 1}, [][2]int{{0, 2}, {1, 0}}, nil, 1, false},
		{"narrow/3x3/dil2/pad(2,1)", []int{7, 9, 8, 11}, []int{3, 3, 11, 5}, []int{1, 1}, [][2]int{{2, 1}, {2, 2}}, []int{2, 2}, 1, false},
		{"narrow/channels-first/3x3", []int{10, 9, 6, 7}, []int{2, 9, 3, 3}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, true},
	}
	for _, dnnlOn := range dnnlModes {
		convDNNLOn.Store(dnnlOn)
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
				before, beforeSplit, beforeScatter := statConvFused.Load(), statConvFusedSplit.Load(), statConvScatter.Load()
				beforeOIHW := statConvOIHW.Load()
				beforeDNNL, beforeRefused := ConvDNNLStats()
				convFuseOn.Store(true)
				got := eval(t, fast, fn, x(), k())[0]
				ranDNNL, refused := ConvDNNLStats()
				// With oneDNN every case runs on its forward convolution primitive (the narrow ones
				// too: they are built in the im2col form then).
				if (ranDNNL > beforeDNNL) != dnnlOn || refused != beforeRefused {
					t.Errorf("%s, oneDNN on: %v: %d bands ran on oneDNN's convolution, %d refused", c.name, dnnlOn,
						ranDNNL-beforeDNNL, refused-beforeRefused)
				}
				if statConvFused.Load() == before {
					t.Fatalf("%s: the fused convolution node was not built", c.name)
				}
				if scatter := strings.HasPrefix(c.name, "narrow/") && !dnnlOn; scatter != (statConvScatter.Load() != beforeScatter) {
					t.Errorf("%s, oneDNN on: %v: built in the scatter form: %v, want %v", c.name, dnnlOn, !scatter, scatter)
				}
				// An OIHW kernel (channels first) goes to oneDNN without a transpose.
				if oihw := c.channelsFirst && dnnlOn; oihw != (statConvOIHW.Load() != beforeOIHW) {
					t.Errorf("%s, oneDNN on: %v: built on the OIHW kernel: %v, want %v", c.name, dnnlOn, !oihw, oihw)
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
}

// TestConvScatterFusedInputDilation compares float32 correlations of a dilated input (a strided
// convolution's input gradient), run as the fused scatter node in several chunks and over several
// goroutines, with the same correlation of the explicitly dilated input (interior zero padding) run
// unfused.
func TestConvScatterFusedInputDilation(t *testing.T) {
	if !MatmulPath().Fast {
		t.Skip("no GEMM library: the fused convolution is not built")
	}
	backend := testBackend(t)
	saved := convGemmParts
	defer func() { convGemmParts = saved; convFuseOn.Store(true) }()
	convGemmParts = func(f32 bool, nb, mnk int) int { return min(2, nb) }
	axes := backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	for _, c := range []struct {
		name  string
		x, k  []int
		inDil []int
		pads  [][2]int
		dil   []int
	}{
		{"s2/k3/pad2", []int{32, 7, 7, 16}, []int{3, 3, 16, 24}, []int{2, 2}, [][2]int{{2, 2}, {2, 1}}, []int{1, 1}},
		{"s3/k2/negative-pad", []int{11, 5, 4, 6}, []int{2, 2, 6, 5}, []int{3, 2}, [][2]int{{-1, 1}, {1, -1}}, []int{1, 1}},
		{"s2/dil2", []int{9, 6, 5, 7}, []int{3, 2, 7, 3}, []int{2, 2}, [][2]int{{2, 1}, {1, 2}}, []int{2, 1}},
	} {
		lowered := func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.ConvGeneral(in[0], in[1], axes, []int{1, 1}, c.pads, c.inDil, c.dil, 1, 1)}
		}
		explicit := func(in []*graph.Node) []*graph.Node {
			zero := graph.ScalarZero(in[0].Graph(), in[0].DType())
			xd := graph.Pad(in[0], zero, graph.PadAxis{}, graph.PadAxis{Interior: c.inDil[0] - 1},
				graph.PadAxis{Interior: c.inDil[1] - 1}, graph.PadAxis{})
			return []*graph.Node{graph.ConvGeneral(xd, in[1], axes, []int{1, 1}, c.pads, nil, c.dil, 1, 1)}
		}
		x := func() *tensors.Tensor { return randFloat32(3, c.x...) }
		k := func() *tensors.Tensor { return randFloat32(4, c.k...) }
		before, beforeSplit := statConvFused.Load(), statConvFusedSplit.Load()
		got := eval(t, backend, lowered, x(), k())[0]
		if statConvFused.Load() == before || statConvFusedSplit.Load() == beforeSplit {
			t.Fatalf("%s: not run as the fused scatter node on 2 goroutines", c.name)
		}
		convFuseOn.Store(false)
		want := eval(t, backend, explicit, x(), k())[0]
		convFuseOn.Store(true)
		scale := 0.0
		for _, v := range want {
			scale = max(scale, math.Abs(v))
		}
		if d := maxAbsDiff(got, want); d > 1e-5*scale || math.IsNaN(d) {
			t.Errorf("%s: max difference %g (%d vs %d values)", c.name, d, len(got), len(want))
		}
	}
}

// TestConvOIHWFallback runs convolutions built on an OIHW kernel for oneDNN (see convGemmNode) with
// oneDNN switched off after compilation, so that every band takes the im2col path on the transposed
// copy of the kernel, and compares them with SimpleGo's convolution.
func TestConvOIHWFallback(t *testing.T) {
	if !MatmulPath().Fast || convDNNLLib() == nil {
		t.Skip("oneDNN is not in use here: no convolution is built on an OIHW kernel")
	}
	fast := testBackend(t)
	stock := stockBackend(t)
	defer convDNNLOn.Store(true)
	for _, c := range []convVariant{
		{"channels-first/3x3/pad1", []int{3, 6, 9, 8}, []int{5, 6, 3, 3}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, true},
		{"channels-first/2x3/s2/dil(1,2)", []int{2, 4, 11, 10}, []int{7, 4, 2, 3}, []int{2, 2}, [][2]int{{1, 0}, {2, 1}}, []int{1, 2}, 1, true},
		{"channels-first/1d/k3", []int{2, 5, 13}, []int{4, 5, 3}, []int{1}, [][2]int{{1, 1}}, nil, 1, true},
	} {
		if c.dil == nil {
			c.dil = ones(len(c.x) - 2)
		}
		fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(in)} }
		x := func() *tensors.Tensor { return randFloat32(3, c.x...) }
		k := func() *tensors.Tensor { return randFloat32(4, c.k...) }
		convDNNLOn.Store(true)
		exec, err := graph.NewExec(fast, fn)
		if err != nil {
			t.Fatal(err)
		}
		beforeOIHW := statConvOIHW.Load()
		onDNNL, err := exec.Exec(x(), k()) // builds the graph, with oneDNN on
		if err != nil {
			t.Fatal(err)
		}
		if statConvOIHW.Load() == beforeOIHW {
			t.Fatalf("%s: not built on the OIHW kernel", c.name)
		}
		convDNNLOn.Store(false)
		beforeFallback := statConvOIHWFallback.Load()
		fallback, err := exec.Exec(x(), k())
		if err != nil {
			t.Fatal(err)
		}
		if statConvOIHWFallback.Load() == beforeFallback {
			t.Errorf("%s: the im2col path on the transposed kernel did not run", c.name)
		}
		convDNNLOn.Store(true)
		exec.Finalize()
		want := eval(t, stock, fn, x(), k())[0]
		scale := 0.0
		for _, v := range want {
			scale = max(scale, math.Abs(v))
		}
		for i, got := range [][]*tensors.Tensor{onDNNL, fallback} {
			g, err := flatFloat64(got[0])
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(g, want); d > 1e-5*scale || math.IsNaN(d) {
				t.Errorf("%s (%s): max difference %g from SimpleGo's convolution (scale %g)", c.name, []string{"oneDNN", "im2col"}[i], d, scale)
			}
		}
	}
}

// TestConvDNNLRowBands: a batch smaller than the cores runs each oneDNN convolution in bands of
// output rows (convRowParts); with 2, 3 and 5 bands per entry, strides, dilations, uneven paddings,
// an OIHW kernel and bands whose windows start or end in the padding, the result is SimpleGo's
// convolution's, and the row bands are the ones that ran.
func TestConvDNNLRowBands(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	if convDNNLLib() == nil {
		t.Skip("oneDNN is not in use here")
	}
	oneDNNForSmallConvs(t)
	saved := convRowParts
	defer func() { convRowParts = saved }()
	cases := []convVariant{
		{"3x3/s1/pad1", []int{1, 11, 9, 6}, []int{3, 3, 6, 8}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false},
		{"3x3/s2/pad(2,0)", []int{1, 13, 7, 5}, []int{3, 3, 5, 7}, []int{2, 1}, [][2]int{{2, 0}, {1, 1}}, nil, 1, false},
		{"3x2/dil(2,1)/pad(0,3)", []int{1, 12, 8, 4}, []int{3, 2, 4, 9}, []int{1, 1}, [][2]int{{0, 3}, {1, 0}}, []int{2, 1}, 1, false},
		{"5x5/s3/pad(4,4)", []int{1, 10, 10, 3}, []int{5, 5, 3, 4}, []int{3, 1}, [][2]int{{4, 4}, {2, 2}}, nil, 1, false},
		{"channels-first/3x3/b2", []int{2, 6, 10, 7}, []int{5, 6, 3, 3}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, true},
	}
	for _, rows := range []int{2, 3, 5} {
		convRowParts = func(nb, oh, mnk int) int { return min(rows, oh) }
		for _, c := range cases {
			if c.dil == nil {
				c.dil = ones(len(c.x) - 2)
			}
			fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(in)} }
			in := func() []*tensors.Tensor { return []*tensors.Tensor{randFloat32(7, c.x...), randFloat32(8, c.k...)} }
			before := statConvDNNLRows.Load()
			_, refusedBefore := ConvDNNLStats()
			got := eval(t, fast, fn, in()...)[0]
			if statConvDNNLRows.Load() == before {
				t.Errorf("%s, %d rows: not run in row bands", c.name, rows)
			}
			if _, refused := ConvDNNLStats(); refused != refusedBefore {
				t.Errorf("%s, %d rows: oneDNN refused a band", c.name, rows)
			}
			want := eval(t, stock, fn, in()...)[0]
			scale := 0.0
			for _, v := range want {
				scale = max(scale, math.Abs(v))
			}
			if d := maxAbsDiff(got, want); d > 1e-5*scale || math.IsNaN(d) || len(got) != len(want) {
				t.Errorf("%s, %d rows: max difference %g from SimpleGo's convolution (scale %g)", c.name, rows, d, scale)
			}
		}
	}
}

// oneDNNForSmallConvs runs every convolution of the test on oneDNN, small ones included (see
// smallConvOnGemm), so that the test's small shapes exercise its kernels.
func oneDNNForSmallConvs(t *testing.T) {
	saved := smallConvOnGemm
	smallConvOnGemm = func(int, int, int) bool { return false }
	t.Cleanup(func() { smallConvOnGemm = saved })
}

// TestSmallConvOnGemm: a convolution of at most 64 output positions per image with at most 64 input
// channels and at most 2048 output rows (the embedded default's 7x7 maps at batch 32) runs on im2col
// and a GEMM, one with more input channels, positions or rows on oneDNN, each within 1e-5 of
// SimpleGo's values.
func TestSmallConvOnGemm(t *testing.T) {
	if !MatmulPath().Fast || convDNNLLib() == nil {
		t.Skip("oneDNN is not in use here")
	}
	fast, stock := testBackend(t), stockBackend(t)
	cases := []struct {
		v     convVariant
		small bool
	}{
		{convVariant{"7x7x32", []int{6, 7, 7, 32}, []int{3, 3, 32, 24}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false}, true},
		{convVariant{"8x8x64", []int{3, 8, 8, 64}, []int{3, 3, 64, 16}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false}, true},
		{convVariant{"7x7x96", []int{4, 7, 7, 96}, []int{3, 3, 96, 32}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false}, false},
		{convVariant{"9x9x32", []int{4, 9, 9, 32}, []int{3, 3, 32, 32}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false}, false},
		{convVariant{"7x7x32 batch 32", []int{32, 7, 7, 32}, []int{3, 3, 32, 8}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false}, true},
		{convVariant{"7x7x32 batch 48", []int{48, 7, 7, 32}, []int{3, 3, 32, 8}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false}, false},
	}
	for _, tc := range cases {
		in := func() []*tensors.Tensor {
			return []*tensors.Tensor{toFloat32(randTensor(3, tc.v.x...)), toFloat32(randTensor(4, tc.v.k...))}
		}
		gemm0, dnnl0 := statConvSmallGemm.Load(), statConvDNNL.Load()
		fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{tc.v.fn(in)} }
		got := eval(t, fast, fn, in()...)
		onGemm, onDNNL := statConvSmallGemm.Load() > gemm0, statConvDNNL.Load() > dnnl0
		if onGemm != tc.small || onDNNL == tc.small {
			t.Errorf("%s: on im2col %v, on oneDNN %v; want im2col %v", tc.v.name, onGemm, onDNNL, tc.small)
		}
		want := eval(t, stock, fn, in()...)
		if e := maxRelDiff(got[0], want[0]); e > 1e-5 {
			t.Errorf("%s: differs from SimpleGo by %.3g of the largest entry", tc.v.name, e)
		}
	}
}
