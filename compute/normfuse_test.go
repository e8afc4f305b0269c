package compute

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// divNormalize is the ONNX importer's normalize: (x - mean) / √(var + ε) over axes.
func divNormalize(x *graph.Node, eps float64, axes ...int) *graph.Node {
	mean := graph.ReduceAndKeep(x, graph.ReduceMean, axes...)
	c := graph.Sub(x, mean)
	v := graph.ReduceAndKeep(graph.Mul(c, c), graph.ReduceMean, axes...)
	return graph.Div(c, graph.Sqrt(graph.AddScalar(v, eps)))
}

// rsqrtNormalize is the ONNX importer's LayerNormalization: (x - mean) · Rsqrt(var + ε).
func rsqrtNormalize(x *graph.Node, eps float64, axes ...int) *graph.Node {
	mean := graph.ReduceAndKeep(x, graph.ReduceMean, axes...)
	c := graph.Sub(x, mean)
	inv := graph.Rsqrt(graph.AddScalar(graph.ReduceAndKeep(graph.Mul(c, c), graph.ReduceMean, axes...), eps))
	return graph.Mul(c, inv)
}

// normCases are normalization graphs as the ONNX importer builds them (InstanceNormalization,
// PyTorch's GroupNorm export, LayerNormalization), with the number of fused nodes each must build
// (0: a look-alike that is not a normalization over trailing axes).
var normCases = []struct {
	name  string
	fn    func(in []*graph.Node) *graph.Node
	dims  [][]int
	fused int
}{
	{"normalize-only", func(in []*graph.Node) *graph.Node { return divNormalize(in[0], 1e-5, 2, 3) },
		[][]int{{2, 3, 5, 4}}, 1},
	{"instance-norm", func(in []*graph.Node) *graph.Node {
		y := divNormalize(in[0], 1e-5, 2, 3)
		return graph.Add(graph.Mul(y, graph.Reshape(in[1], 1, 3, 1, 1)), graph.Reshape(in[2], 1, 3, 1, 1))
	}, [][]int{{2, 3, 5, 4}, {3}, {3}}, 3},
	{"groupnorm-export", func(in []*graph.Node) *graph.Node {
		// Reshape -> InstanceNormalization (per-group scale, bias) -> Reshape -> Mul -> Add.
		xg := graph.Reshape(in[0], 2, 3, 24)
		y := divNormalize(xg, 1e-5, 2)
		y = graph.Add(graph.Mul(y, graph.Reshape(in[1], 1, 3, 1)), graph.Reshape(in[2], 1, 3, 1))
		y = graph.Reshape(y, 2, 6, 4, 3)
		return graph.Add(graph.Mul(y, graph.Reshape(in[3], 1, 6, 1, 1)), graph.Reshape(in[4], 1, 6, 1, 1))
	}, [][]int{{2, 6, 4, 3}, {3}, {3}, {6}, {6}}, 5},
	{"groupnorm-scale-left-sub", func(in []*graph.Node) *graph.Node {
		xg := graph.Reshape(in[0], 2, 2, 36)
		y := graph.Reshape(divNormalize(xg, 1e-3, 2), 2, 6, 3, 4)
		return graph.Sub(graph.Mul(graph.Reshape(in[1], 1, 6, 1, 1), y), graph.Reshape(in[2], 1, 6, 1, 1))
	}, [][]int{{2, 6, 3, 4}, {6}, {6}}, 3},
	{"layernorm", func(in []*graph.Node) *graph.Node {
		y := rsqrtNormalize(in[0], 1e-5, 2)
		y = graph.Mul(y, graph.BroadcastToDims(graph.Reshape(in[1], 1, 1, 8), 2, 5, 8))
		return graph.Add(y, graph.BroadcastToDims(graph.Reshape(in[2], 1, 1, 8), 2, 5, 8))
	}, [][]int{{2, 5, 8}, {8}, {8}}, 3},
	{"layernorm-two-axes-scalar", func(in []*graph.Node) *graph.Node {
		y := rsqrtNormalize(in[0], 1e-5, 1, 2)
		y = graph.Mul(graph.Reshape(in[1], 1, 4, 6), y)
		return graph.Add(y, graph.Reshape(in[2]))
	}, [][]int{{3, 4, 6}, {4, 6}, {1}}, 3},
	{"large-rows", func(in []*graph.Node) *graph.Node {
		y := divNormalize(in[0], 1e-5, 2)
		return graph.Mul(y, graph.Reshape(in[1], 1, 8, 1))
	}, [][]int{{2, 8, 4100}, {8}}, 2},
	{"times-full-size", func(in []*graph.Node) *graph.Node {
		return graph.Add(graph.Mul(divNormalize(in[0], 1e-5, 1), in[1]), in[1])
	}, [][]int{{3, 7}, {3, 7}}, 1},
	{"not-trailing", func(in []*graph.Node) *graph.Node { return divNormalize(in[0], 1e-5, 1) },
		[][]int{{2, 3, 4}}, 0},
	{"not-a-mean", func(in []*graph.Node) *graph.Node {
		x := in[0]
		mean := graph.MulScalar(graph.ReduceAndKeep(x, graph.ReduceSum, 1), 0.3)
		c := graph.Sub(x, mean)
		v := graph.ReduceAndKeep(graph.Mul(c, c), graph.ReduceMean, 1)
		return graph.Div(c, graph.Sqrt(graph.AddScalar(v, 1e-5)))
	}, [][]int{{4, 3}}, 0},
	{"centred-on-other", func(in []*graph.Node) *graph.Node {
		mean := graph.ReduceAndKeep(in[0], graph.ReduceMean, 1)
		c := graph.Sub(in[1], mean)
		v := graph.ReduceAndKeep(graph.Mul(c, c), graph.ReduceMean, 1)
		return graph.Div(c, graph.Sqrt(graph.AddScalar(v, 1e-5)))
	}, [][]int{{4, 3}, {4, 3}}, 0},
}

// normInputs are the case's random inputs (x scaled and shifted so that the mean is far from 0).
func normInputs(dims [][]int, f32 bool) []*tensors.Tensor {
	out := make([]*tensors.Tensor, len(dims))
	for i, d := range dims {
		t := randTensor(uint64(21+i), d...)
		if i == 0 {
			v := tensors.MustCopyFlatData[float64](t)
			for j := range v {
				v[j] = 3*v[j] + 5
			}
			t = tensors.FromFlatDataAndDimensions(v, d...)
		}
		if f32 {
			t = toFloat32(t)
		}
		out[i] = t
	}
	return out
}

// TestNormFused: each normalization graph gives, on the patched backend, SimpleGo's values within
// 1e-5 of the output's largest magnitude in float32 (1e-12 in float64), building the fused nodes it
// should; its gradients (GoMLX's, of the unfused graph) match central differences of the fused
// forward and SimpleGo's gradients.
func TestNormFused(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	for _, c := range normCases {
		for _, f32 := range []bool{true, false} {
			before := statNormFused.Load()
			fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(in)} }
			got := eval(t, fast, fn, normInputs(c.dims, f32)...)
			if n := int(statNormFused.Load() - before); n != c.fused {
				t.Errorf("%s float32 %v: %d fused normalization nodes built, want %d", c.name, f32, n, c.fused)
			}
			want := eval(t, stock, fn, normInputs(c.dims, f32)...)
			tol := 1e-12
			if f32 {
				tol = 1e-5
			}
			if e := maxRelDiff(got[0], want[0]); e > tol {
				t.Errorf("%s float32 %v: differs from SimpleGo by %.3g of the largest entry (tolerance %g)", c.name, f32, e, tol)
			}
		}
		e, err := CheckGradient(fast, c.fn, normInputs(c.dims, false), nil)
		if err != nil {
			t.Fatalf("%s: %+v", c.name, err)
		}
		if e > gradTol {
			t.Errorf("%s: gradient differs from central differences by %.3g", c.name, e)
		}
		grad := func(in []*graph.Node) []*graph.Node {
			loss := graph.ReduceAllSum(graph.Mul(c.fn(in), graph.Sin(c.fn(in))))
			return graph.Gradient(loss, in...)
		}
		got := eval(t, fast, grad, normInputs(c.dims, false)...)
		want := eval(t, stock, grad, normInputs(c.dims, false)...)
		for k := range want {
			if e := maxRelDiff(got[k], want[k]); e > 1e-10 {
				t.Errorf("%s: gradient %d differs from SimpleGo's by %.3g", c.name, k, e)
			}
		}
	}
}

// maxRelDiff is max |a-b| over the largest |b|.
func maxRelDiff(a, b []float64) float64 {
	scale, d := 0.0, 0.0
	for i := range b {
		scale = max(scale, math.Abs(b[i]))
		d = max(d, math.Abs(a[i]-b[i]))
	}
	if len(a) != len(b) || math.IsNaN(d) {
		return math.Inf(1)
	}
	return d / max(scale, 1e-300)
}

// TestNormRows: the kernel with stages of every layout (per row, per channel spanning several runs,
// per entry, scalar), cut into bands anywhere, in place or not, equals the definition computed in
// float64 on float32 data.
func TestNormRows(t *testing.T) {
	const rows, m = 6, 12
	x := make([]float32, rows*m)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.73))*2 + 10
	}
	p1 := []float32{1.5, -0.5, 2}                                         // c=3, s=24: spans two rows
	p2 := []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 3} // c=12, s=1: per entry
	p3 := []float32{-1, 1}                                                // c=2, s=3: runs of 3 within a row
	p4 := []float32{0.25}
	d := &normNodeData{m: m, eps: 1e-3, stages: []normStage{
		{op: backends.OpTypeMul, in: 1, c: 3, s: 24},
		{op: backends.OpTypeAdd, in: 2, c: 12, s: 1},
		{op: backends.OpTypeMul, in: 3, c: 2, s: 3},
		{op: backends.OpTypeSub, in: 4, c: 1, s: 1},
	}, run: 1}
	// the same without the per-entry stage: runs of 3 entries.
	d3 := &normNodeData{m: m, eps: d.eps, stages: []normStage{d.stages[0], d.stages[2], d.stages[3]}, run: 3}
	params := [][]float32{nil, p1, p2, p3, p4}
	want, want3 := make([]float64, len(x)), make([]float64, len(x))
	check := func(d *normNodeData, want []float64) { t.Helper(); checkNormRows(t, x, params, rows, d, want) }
	for r := range rows {
		mean, rstd := refMeanRstd(x[r*m:(r+1)*m], d.eps)
		for j := range m {
			i := r*m + j
			v := (float64(x[i]) - mean) * rstd
			v *= float64(p1[(i/24)%3])
			v3 := v
			v += float64(p2[i%12])
			want[i] = v*float64(p3[(i/3)%2]) - float64(p4[0])
			want3[i] = v3*float64(p3[(i/3)%2]) - float64(p4[0])
		}
	}
	check(d, want)
	check(d3, want3)

	// Stages that repeat with each row (the periodic path): per entry, per run of 4, a scalar.
	p5 := []float32{0.5, 2, -1}
	dp := &normNodeData{m: m, eps: d.eps, stages: []normStage{
		{op: backends.OpTypeMul, in: 2, c: 12, s: 1},
		{op: backends.OpTypeAdd, in: 5, c: 3, s: 4},
		{op: backends.OpTypeSub, in: 4, c: 1, s: 1},
	}, run: 1}
	dq := &normNodeData{m: m, eps: d.eps, stages: dp.stages[1:], run: 4}
	params = append(params, p5)
	wantP, wantQ := make([]float64, len(x)), make([]float64, len(x))
	for r := range rows {
		mean, rstd := refMeanRstd(x[r*m:(r+1)*m], d.eps)
		for j := range m {
			v := (float64(x[r*m+j]) - mean) * rstd
			wantP[r*m+j] = v*float64(p2[j]) + float64(p5[j/4]) - float64(p4[0])
			wantQ[r*m+j] = v + float64(p5[j/4]) - float64(p4[0])
		}
	}
	check(dp, wantP)
	check(dq, wantQ)
}

func checkNormRows(t *testing.T, x []float32, params [][]float32, rows int, d *normNodeData, want []float64) {
	for _, cut := range []int{0, 1, 3, 5} {
		for _, inPlace := range []bool{false, true} {
			xs := append([]float32(nil), x...)
			out := make([]float32, len(x))
			if inPlace {
				out = xs
			}
			normRows(out, xs, params, d, 0, cut)
			normRows(out, xs, params, d, cut, rows)
			got := make([]float64, len(out))
			for i, v := range out {
				got[i] = float64(v)
			}
			if e := maxRelDiff(got, want); e > 1e-6 {
				t.Errorf("run %d, cut %d in place %v: differs from the definition by %.3g", d.run, cut, inPlace, e)
			}
		}
	}
}

// refMeanRstd is row's mean and 1/sqrt(variance + eps) (population variance), in float64.
func refMeanRstd(row []float32, eps float64) (mean, rstd float64) {
	for _, v := range row {
		mean += float64(v)
	}
	mean /= float64(len(row))
	var q float64
	for _, v := range row {
		q += (float64(v) - mean) * (float64(v) - mean)
	}
	return mean, 1 / math.Sqrt(q/float64(len(row))+eps)
}
