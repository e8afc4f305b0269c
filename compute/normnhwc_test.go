package compute

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// groupNormExport is PyTorch's GroupNorm as the ONNX importer builds it (Reshape, normalize,
// Reshape, per-channel Mul and Add) over x [N, C, H, W] with g groups.
func groupNormExport(x, scale, bias *graph.Node, g int) *graph.Node {
	d := x.Shape().Dimensions
	xg := graph.Reshape(x, d[0], g, -1)
	y := graph.Reshape(divNormalize(xg, 1e-6, 2), d...)
	return graph.Add(graph.Mul(y, graph.Reshape(scale, 1, d[1], 1, 1)), graph.Reshape(bias, 1, d[1], 1, 1))
}

// silu is x·σ(x), as the importer builds ONNX's Sigmoid and Mul.
func silu(x *graph.Node) *graph.Node { return graph.Mul(x, graph.Sigmoid(x)) }

// TestNormNHWCTwin: a channels-first convolution whose input is SiLU(GroupNorm(h)) is built with the
// normalization written channels-last (no transpose), reading h channels-last when h is itself a
// convolution's output; its values are SimpleGo's within 1e-5 of the largest entry, as with the
// twins switched off (then within 1e-6 of each other), in float32 and float64. A graph with the
// gradients of Σ y·sin(y) builds the twin, replaces it at compile time (the gradient reads the
// normalization's intermediates, see unfuse.go) and gives the gradients of the graph without it
// (SimpleGo has no convolution gradient to compare with; conv_vjp's are checked against finite
// differences in conv_test.go).
func TestNormNHWCTwin(t *testing.T) {
	if !MatmulPath().Fast || convDNNLLib() == nil {
		t.Skip("oneDNN is not in use here: the convolutions are not lowered for it")
	}
	fast, stock := testBackend(t), stockBackend(t)
	defer nhwcNormOn.Store(true)
	conv := func(x, k, bias *graph.Node) *graph.Node {
		c := convVariant{strides: []int{1, 1}, pads: [][2]int{{1, 1}, {1, 1}}, dil: []int{1, 1}, channelsFirst: true, x: make([]int, 4)}
		y := c.fn([]*graph.Node{x, k})
		return graph.Add(y, graph.Reshape(bias, 1, k.Shape().Dimensions[0], 1, 1))
	}
	const n, c, h, w, cout, g = 2, 8, 9, 7, 10, 4 // cout > c: float64 convolutions take the im2col form
	cases := []struct {
		name       string
		fn         func(in []*graph.Node) *graph.Node
		twins, nin int64
	}{
		{"norm-silu-conv", func(in []*graph.Node) *graph.Node {
			return conv(silu(groupNormExport(in[0], in[1], in[2], g)), in[3], in[4])
		}, 1, 0},
		{"conv-norm-silu-conv", func(in []*graph.Node) *graph.Node {
			h1 := conv(in[0], in[5], in[6])
			return conv(silu(groupNormExport(h1, in[1], in[2], g)), in[3], in[4])
		}, 1, 1},
		{"conv-norm-conv (no SiLU), instance norm", func(in []*graph.Node) *graph.Node {
			h1 := conv(in[0], in[5], in[6])
			return conv(groupNormExport(h1, in[1], in[2], c), in[3], in[4])
		}, 1, 1},
	}
	f32 := true
	inputs := func() []*tensors.Tensor {
		in := normInputs([][]int{{n, c, h, w}, {c}, {c}, {cout, c, 3, 3}, {cout}, {c, c, 3, 3}, {c}}, f32)
		return in
	}
	for _, tc := range cases {
		fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{tc.fn(in)} }
		built, in0 := statNormNHWC.Load(), statNormNHWCIn.Load()
		got := eval(t, fast, fn, inputs()...)
		if d, din := statNormNHWC.Load()-built, statNormNHWCIn.Load()-in0; d != tc.twins || din != tc.nin {
			t.Errorf("%s: %d twins built (%d reading NHWC), want %d (%d)", tc.name, d, din, tc.twins, tc.nin)
		}
		want := eval(t, stock, fn, inputs()...)
		if e := maxRelDiff(got[0], want[0]); e > 1e-5 {
			t.Errorf("%s: differs from SimpleGo by %.3g of the largest entry", tc.name, e)
		}
		nhwcNormOn.Store(false)
		off := eval(t, fast, fn, inputs()...)
		nhwcNormOn.Store(true)
		if e := maxRelDiff(got[0], off[0]); e > 1e-6 {
			t.Errorf("%s: differs from the transposed graph by %.3g of the largest entry", tc.name, e)
		}
		// float64 (convolutions on im2col): the twin is built and agrees with SimpleGo.
		f32 = false
		built = statNormNHWC.Load()
		got64 := eval(t, fast, fn, inputs()...)
		want64 := eval(t, stock, fn, inputs()...)
		f32 = true
		if statNormNHWC.Load() == built {
			t.Errorf("%s float64: no twin built", tc.name)
		}
		if e := maxRelDiff(got64[0], want64[0]); e > 1e-12 {
			t.Errorf("%s float64: differs from SimpleGo by %.3g of the largest entry", tc.name, e)
		}
		grad := func(in []*graph.Node) []*graph.Node {
			y := tc.fn(in)
			return graph.Gradient(graph.ReduceAllSum(graph.Mul(y, graph.Sin(y))), in...)
		}
		built, unfused := statNormNHWC.Load(), statNormUnfused.Load()
		gotG := eval(t, fast, grad, inputs()...)
		if statNormNHWC.Load() == built || statNormUnfused.Load() == unfused {
			t.Errorf("%s: the gradient graph built %d twins and unfused %d fused ops, want some of each", tc.name,
				statNormNHWC.Load()-built, statNormUnfused.Load()-unfused)
		}
		nhwcNormOn.Store(false)
		wantG := eval(t, fast, grad, inputs()...)
		nhwcNormOn.Store(true)
		for k := range wantG {
			if e := maxRelDiff(gotG[k], wantG[k]); e > 1e-6 {
				t.Errorf("%s: gradient %d differs from the transposed graph's by %.3g", tc.name, k, e)
			}
		}
	}
}

// BenchmarkNormNHWC times the twin's kernel on the small T2I fixture's largest GroupNorm ([2, 64,
// 128, 128], 32 groups, per-channel scale and bias) reading NCHW and reading NHWC, with and without
// the SiLU, beside the fused node's own kernel (NCHW in and out) and a transpose of the same tensor.
func BenchmarkNormNHWC(b *testing.B) {
	const n, c, hw, g = 2, 64, 128 * 128, 32
	x := make([]float32, n*c*hw)
	for i := range x {
		x[i] = float32(i%977) * 0.01
	}
	scale, bias := make([]float32, c), make([]float32, c)
	for i := range scale {
		scale[i], bias[i] = 1+0.01*float32(i), 0.1*float32(i)
	}
	d := &normNodeData{m: c / g * hw, eps: 1e-6, run: hw, stages: []normStage{
		{op: backends.OpTypeMul, in: 1, c: c, s: hw}, {op: backends.OpTypeAdd, in: 2, c: c, s: hw}}}
	out := make([]float32, len(x))
	flats := []any{x, scale, bias}
	b.Run("fused-NCHW", func(b *testing.B) {
		for range b.N {
			normParallel(out, flats, d)
		}
	})
	for _, silu := range []bool{false, true} {
		for _, in := range []bool{false, true} {
			dt := *d
			dt.nhwc = &normNHWC{n: n, c: c, hw: hw, dims: []int{n, 128, 128, c}, inNHWC: in, silu: silu}
			b.Run(fmt.Sprintf("twin-inNHWC=%v-silu=%v", in, silu), func(b *testing.B) {
				for range b.N {
					normNHWCRun(out, flats, &dt)
				}
			})
		}
	}
	b.Run("transpose", func(b *testing.B) {
		for range b.N {
			transposeInto(out, x, []int{n, c, hw}, []int{0, 2, 1})
		}
	})
}

// TestNormNHWCKernels: the vector kernels of the channels-last normalization give the scalar loops'
// bits: the per-channel float64 sums over positions (16 channels at a time, with a strided input)
// and the affine row (x - m)·a + b, on lengths with and without a remainder.
func TestNormNHWCKernels(t *testing.T) {
	if !binaryVector {
		t.Skip("no AVX2 here: the scalar loops run")
	}
	rnd := func(n int, scale float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = scale * float32(math.Sin(float64(i)*1.37+0.3)) * float32(1+i%7)
		}
		return v
	}
	for _, c := range []int{16, 48, 64} {
		const hw = 37
		x := rnd(c*hw, 3)
		shift := make([]float64, c)
		for j := range shift {
			shift[j] = float64(x[j]) + 0.25
		}
		s, q := make([]float64, c), make([]float64, c)
		ws, wq := make([]float64, c), make([]float64, c)
		for j := range c {
			s[j], q[j], ws[j], wq[j] = float64(j), 2*float64(j), float64(j), 2*float64(j)
		}
		for lo := 0; lo+16 <= c; lo += 16 {
			chanSums16AVX2(s[lo:], q[lo:], shift[lo:], x[lo:], c, hw)
		}
		for p := range hw {
			for j := range c {
				d := float64(x[p*c+j]) - shift[j]
				ws[j] += d
				wq[j] += d * d
			}
		}
		for j := range c {
			if s[j] != ws[j] || q[j] != wq[j] {
				t.Fatalf("c=%d channel %d: sums %v, %v, want %v, %v", c, j, s[j], q[j], ws[j], wq[j])
			}
		}
	}
	for _, n := range []int{8, 24, 29} {
		src, m, a, b := rnd(n, 5), rnd(n, 1), rnd(n, 2), rnd(n, 0.5)
		got := make([]float32, n)
		affineRow(got, src, m, a, b)
		for i := range n {
			if want := (src[i]-m[i])*a[i] + b[i]; got[i] != want {
				t.Fatalf("n=%d entry %d: %v, want %v", n, i, got[i], want)
			}
		}
	}
}

// TestNormNHWCTwinExact: reading NCHW, the twin's output is the fused node's (normParallel) transposed,
// bit for bit, and with the SiLU it is that times the backend's logistic of it, on shapes with more
// positions than channels and fewer (the two tile walks) and with a ragged last task.
func TestNormNHWCTwinExact(t *testing.T) {
	for _, sh := range []struct{ n, c, hw, g int }{{2, 8, 63, 4}, {2, 192, 16, 16}, {1, 40, 5, 8}, {2, 32, 2100, 16}} {
		x := make([]float32, sh.n*sh.c*sh.hw)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)*0.71)) * float32(1+i%5)
		}
		scale, bias := make([]float32, sh.c), make([]float32, sh.c)
		for i := range scale {
			scale[i], bias[i] = 1+0.01*float32(i), 0.1*float32(i)-1
		}
		d := &normNodeData{m: sh.c / sh.g * sh.hw, eps: 1e-6, run: sh.hw, stages: []normStage{
			{op: backends.OpTypeMul, in: 1, c: sh.c, s: sh.hw}, {op: backends.OpTypeAdd, in: 2, c: sh.c, s: sh.hw}}}
		flats := []any{x, scale, bias}
		fused := make([]float32, len(x))
		normParallel(fused, flats, d)
		sig := make([]float32, len(x))
		logistic32f(sig, fused)
		for _, silu := range []bool{false, true} {
			dt := *d
			dt.nhwc = &normNHWC{n: sh.n, c: sh.c, hw: sh.hw, dims: []int{sh.n, sh.hw, 1, sh.c}, silu: silu}
			got := make([]float32, len(x))
			normNHWCRun(got, flats, &dt)
			for b := range sh.n {
				for ch := range sh.c {
					for p := range sh.hw {
						k := (b*sh.c+ch)*sh.hw + p
						want := fused[k]
						if silu {
							want *= sig[k]
						}
						if g := got[(b*sh.hw+p)*sh.c+ch]; g != want {
							t.Fatalf("%+v silu=%v: [%d, %d, %d] = %v, want %v", sh, silu, b, p, ch, g, want)
						}
					}
				}
			}
		}
	}
}

// TestChanStatsNHWCBlocks: group statistics of a channels-last x [hw, c] computed from blocks of 16
// channels (the vector kernel's, then a remainder of 8 on the scalar loop), the blocks run in reverse
// order as the cores may run them, match float64 two-pass statistics of each group.
func TestChanStatsNHWCBlocks(t *testing.T) {
	const hw, c, g = 37, 40, 5
	x := make([]float32, hw*c)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37))*3 + float32(i%c)*0.5 + 7
	}
	shift, s, q := make([]float64, c), make([]float64, c), make([]float64, c)
	for c0 := (c - 1) / 16 * 16; c0 >= 0; c0 -= 16 {
		chanStatsNHWC(shift, s, q, x, c, hw, g, c0, min(c, c0+16))
	}
	mean, variance := make([]float64, g), make([]float64, g)
	groupsFromChannels(mean, variance, shift, s, q, hw)
	cg := c / g
	for j := range g {
		var vals []float64
		for p := range hw {
			for ch := j * cg; ch < (j+1)*cg; ch++ {
				vals = append(vals, float64(x[p*c+ch]))
			}
		}
		m := 0.0
		for _, v := range vals {
			m += v
		}
		m /= float64(len(vals))
		v2 := 0.0
		for _, v := range vals {
			v2 += (v - m) * (v - m)
		}
		v2 /= float64(len(vals))
		if math.Abs(mean[j]-m) > 1e-12*math.Abs(m) || math.Abs(variance[j]-v2) > 1e-10*v2 {
			t.Errorf("group %d: mean %.15g variance %.15g, want %.15g and %.15g", j, mean[j], variance[j], m, v2)
		}
	}
}

// TestNormNHWCTwinChannelBlocks: a twin reading a convolution's channels-last output with 40
// channels (statistics in blocks of 16, 16 and 8, cut over the cores) and a batch of 3 gives
// SimpleGo's values.
func TestNormNHWCTwinChannelBlocks(t *testing.T) {
	if !MatmulPath().Fast || convDNNLLib() == nil {
		t.Skip("oneDNN is not in use here: the convolutions are not lowered for it")
	}
	fast, stock := testBackend(t), stockBackend(t)
	const n, c, h, w, cout, g = 3, 40, 6, 5, 48, 8
	conv := func(x, k, bias *graph.Node) *graph.Node {
		cv := convVariant{strides: []int{1, 1}, pads: [][2]int{{1, 1}, {1, 1}}, dil: []int{1, 1}, channelsFirst: true, x: make([]int, 4)}
		return graph.Add(cv.fn([]*graph.Node{x, k}), graph.Reshape(bias, 1, k.Shape().Dimensions[0], 1, 1))
	}
	fn := func(in []*graph.Node) []*graph.Node {
		h1 := conv(in[0], in[5], in[6])
		return []*graph.Node{conv(silu(groupNormExport(h1, in[1], in[2], g)), in[3], in[4])}
	}
	in := func() []*tensors.Tensor {
		return normInputs([][]int{{n, c, h, w}, {c}, {c}, {cout, c, 3, 3}, {cout}, {c, c, 3, 3}, {c}}, true)
	}
	in0 := statNormNHWCIn.Load()
	got := eval(t, fast, fn, in()...)
	if statNormNHWCIn.Load() == in0 {
		t.Fatal("no twin read the convolution's channels-last output")
	}
	want := eval(t, stock, fn, in()...)
	if e := maxRelDiff(got[0], want[0]); e > 1e-5 {
		t.Errorf("differs from SimpleGo by %.3g of the largest entry", e)
	}
}

// TestNormNHWCStatsScratch: the channels-last statistics (normNHWCStats, reading [N, hw, c] with 40
// channels in 8 groups: blocks of 16, 16 and 8 channels) do not depend on what their pooled scratch
// held before: with the scratch full of NaNs they equal, bit for bit, those computed on a zeroed
// scratch, and each group's mean and variance are those computed directly in float64.
func TestNormNHWCStatsScratch(t *testing.T) {
	const n, hw, c, g = 3, 30, 40, 8
	x := make([]float32, n*hw*c)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.37) + 0.01*float64(i%7))
	}
	d := &normNodeData{m: c / g * hw, nhwc: &normNHWC{n: n, c: c, hw: hw, inNHWC: true}}
	stats := func(fill float64) (mean, variance []float64) {
		mean, variance = make([]float64, n*g), make([]float64, n*g)
		work := make([]float64, 3*n*c)
		for i := range work {
			work[i] = fill
		}
		normNHWCStats(mean, variance, work, x, d)
		return mean, variance
	}
	m0, v0 := stats(0)
	m1, v1 := stats(math.NaN())
	for r := range m0 {
		if m1[r] != m0[r] || v1[r] != v0[r] {
			t.Fatalf("row %d: mean, variance %g, %g with a NaN scratch, %g, %g with a zeroed one", r, m1[r], v1[r], m0[r], v0[r])
		}
		b, j := r/g, r%g
		var s, q float64
		for p := range hw {
			for ch := j * c / g; ch < (j+1)*c/g; ch++ {
				s += float64(x[(b*hw+p)*c+ch])
			}
		}
		mean := s / float64(d.m)
		for p := range hw {
			for ch := j * c / g; ch < (j+1)*c/g; ch++ {
				dv := float64(x[(b*hw+p)*c+ch]) - mean
				q += dv * dv
			}
		}
		if math.Abs(m0[r]-mean) > 1e-12 || math.Abs(v0[r]-q/float64(d.m)) > 1e-12 {
			t.Errorf("row %d: mean, variance %g, %g; direct %g, %g", r, m0[r], v0[r], mean, q/float64(d.m))
		}
	}
}
