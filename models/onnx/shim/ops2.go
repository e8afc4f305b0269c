package shim

import (
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// More ops onnx-gomlx v0.3.4 gets wrong in cases the conformance tests exercise (see
// conformance_test.go): LayerNormalization's Mean/InvStdDev outputs, GlobalAveragePool's kept
// axes, Pow of mixed types, Clip with omitted bounds, Shape's clamped start/end, Slice with
// out-of-range or negative steps, Reshape with allowzero.
func init() {
	ours["LayerNormalization"] = op{fn: opLayerNorm}
	ours["GlobalAveragePool"] = op{fn: opGlobalAveragePool}
	ours["Pow"] = op{fn: opPow}
	ours["Clip"] = op{fn: opClip}
	ours["Shape"] = op{fn: opShape}
	ours["Slice"] = op{fn: opSlice}
	ours["Reshape"] = op{fn: opReshape}
	for _, name := range []string{"LayerNormalization", "GlobalAveragePool", "Pow", "Clip", "Shape", "Slice", "Reshape",
		"MaxPool", "AveragePool"} { // onnx-gomlx's pools default the strides to the kernel size

		delete(delegated, name)
	}
	delegatedCheck["BatchNormalization"] = func(_ *Model, n *node) string {
		if n.intAttr("training_mode", 0) != 0 {
			return "training_mode=1"
		}
		return ""
	}
	delegatedCheck["Pad"] = func(_ *Model, n *node) string {
		if m := n.strAttr("mode", "constant"); m != "constant" {
			return "mode=" + m
		}
		return ""
	}
}

// delegatedCheck holds load-time checks for configurations of delegated ops onnx-gomlx does not
// handle.
var delegatedCheck = map[string]func(g *Model, n *node) string{}

// opLayerNorm: Y = (X - mean) / sqrt(var + eps) * scale + B over the axes from `axis` on; the
// optional outputs are Mean and InvStdDev (kept dims).
func opLayerNorm(_ *builder, n *node, in []*Node) []*Node {
	x := in[0]
	r := x.Rank()
	ax := axis(n, n.intAttr("axis", -1), r)
	var axes []int
	for i := ax; i < r; i++ {
		axes = append(axes, i)
	}
	eps := n.floatAttr("epsilon", 1e-5)
	mean := ReduceAndKeep(x, ReduceMean, axes...)
	c := Sub(x, mean)
	inv := Rsqrt(AddScalar(ReduceAndKeep(Mul(c, c), ReduceMean, axes...), eps))
	y := Mul(Mul(c, inv), broadcastTo(in[1], x))
	if len(in) > 2 && in[2] != nil {
		y = Add(y, broadcastTo(in[2], x))
	}
	return []*Node{y, mean, inv}
}

// opGlobalAveragePool: the mean over the spatial axes of x [N, C, sp...], kept as size-1 axes.
func opGlobalAveragePool(_ *builder, _ *node, in []*Node) []*Node {
	x := in[0]
	var axes []int
	for i := 2; i < x.Rank(); i++ {
		axes = append(axes, i)
	}
	return one(ReduceAndKeep(x, ReduceMean, axes...))
}

// bcast applies ONNX multidirectional broadcasting to two operands.
func bcast(a, b *Node) (*Node, *Node) {
	r := max(a.Rank(), b.Rank())
	a, b = ExpandLeftToRank(a, r), ExpandLeftToRank(b, r)
	dims := make([]int, r)
	for i := range dims {
		dims[i] = max(a.Shape().Dim(i), b.Shape().Dim(i))
	}
	if !slices.Equal(a.Shape().Dimensions, dims) {
		a = BroadcastToDims(a, dims...)
	}
	if !slices.Equal(b.Shape().Dimensions, dims) {
		b = BroadcastToDims(b, dims...)
	}
	return a, b
}

// opPow: x^y in x's type (y converted); an integer base is computed in float64 and rounded back.
func opPow(_ *builder, _ *node, in []*Node) []*Node {
	x, y := bcast(in[0], in[1])
	if x.DType().IsFloat() {
		return one(Pow(x, ConvertDType(y, x.DType())))
	}
	p := Pow(ConvertDType(x, dtypes.Float64), ConvertDType(y, dtypes.Float64))
	return one(ConvertDType(Round(p), x.DType()))
}

// opClip: min(max(x, lo), hi), either bound optional (input "" or absent).
func opClip(_ *builder, n *node, in []*Node) []*Node {
	x := in[0]
	if len(in) > 1 && in[1] != nil {
		x = Max(x, BroadcastToDims(ConvertDType(in[1], x.DType()), x.Shape().Dimensions...))
	} else if _, ok := n.attrs["min"]; ok {
		x = Max(x, BroadcastToDims(Scalar(x.Graph(), x.DType(), n.floatAttr("min", 0)), x.Shape().Dimensions...))
	}
	if len(in) > 2 && in[2] != nil {
		x = Min(x, BroadcastToDims(ConvertDType(in[2], x.DType()), x.Shape().Dimensions...))
	} else if _, ok := n.attrs["max"]; ok {
		x = Min(x, BroadcastToDims(Scalar(x.Graph(), x.DType(), n.floatAttr("max", 0)), x.Shape().Dimensions...))
	}
	return one(x)
}

// clampRange clamps an ONNX start/end pair to [0, r] (negative values count from the end).
func clampIndex(i, r int) int {
	if i < 0 {
		i += r
	}
	return min(max(i, 0), r)
}

// opShape: x's dimensions [start, end) as int64 (a constant).
func opShape(b *builder, n *node, in []*Node) []*Node {
	dims := in[0].Shape().Dimensions
	r := len(dims)
	start := clampIndex(n.intAttr("start", 0), r)
	end := r
	if _, ok := n.attrs["end"]; ok {
		end = clampIndex(n.intAttr("end", r), r)
	}
	out := []int64{}
	for i := start; i < end; i++ {
		out = append(out, int64(dims[i]))
	}
	return one(b.mkConst(b.cur, tensors.FromValue(out)))
}

// opSlice: numpy slicing x[starts:ends:steps] on the given axes (constants), with ONNX's clamping
// and negative steps (computed as a reversed axis sliced forwards).
func opSlice(b *builder, n *node, in []*Node) []*Node {
	x := in[0]
	var starts, ends, axes, steps []int
	if len(in) >= 3 {
		starts, ends = b.constInts(n, in[1], "starts"), b.constInts(n, in[2], "ends")
		if len(in) > 3 && in[3] != nil {
			axes = b.constInts(n, in[3], "axes")
		}
		if len(in) > 4 && in[4] != nil {
			steps = b.constInts(n, in[4], "steps")
		}
	} else { // opset < 10: attributes
		starts, ends, axes = n.intsAttr("starts"), n.intsAttr("ends"), n.intsAttr("axes")
	}
	if axes == nil {
		for i := range starts {
			axes = append(axes, i)
		}
	}
	if steps == nil {
		for range starts {
			steps = append(steps, 1)
		}
	}
	dims := x.Shape().Dimensions
	specs := make([]SliceAxisSpec, x.Rank())
	for i := range specs {
		specs[i] = AxisRange()
	}
	var reverse []int
	for k, a := range axes {
		a = axis(n, a, x.Rank())
		d, st := dims[a], steps[k]
		if st == 0 {
			panicf("%s: step 0", n)
		}
		if st > 0 {
			s := clampIndex(starts[k], d)
			e := clampIndex(ends[k], d)
			if e < s {
				e = s
			}
			specs[a] = AxisRange(s, e).Stride(st)
			continue
		}
		// negative step: start clamped to [0, d-1], end to [-1, d-1]; on the reversed axis
		// index i maps to d-1-i.
		s := starts[k]
		if s < 0 {
			s += d
		}
		s = min(max(s, 0), d-1)
		e := ends[k]
		if e < 0 {
			e += d
		}
		e = min(max(e, -1), d-1)
		rs, re := d-1-s, d-1-e
		if re < rs {
			re = rs
		}
		reverse = append(reverse, a)
		specs[a] = AxisRange(rs, re).Stride(-st)
	}
	if len(reverse) > 0 {
		x = Reverse(x, reverse...)
	}
	return one(Slice(x, specs...))
}

// opReshape: the target shape (constant); 0 copies the input's dimension unless allowzero=1, and
// one -1 is inferred.
func opReshape(b *builder, n *node, in []*Node) []*Node {
	x := in[0]
	shape := b.constInts(n, in[1], "shape")
	allowZero := n.intAttr("allowzero", 0) != 0
	dims := make([]int, len(shape))
	infer := -1
	known := 1
	for i, d := range shape {
		switch {
		case d == 0 && !allowZero:
			dims[i] = x.Shape().Dim(i)
		case d == -1:
			infer = i
			continue
		default:
			dims[i] = d
		}
		known *= dims[i]
	}
	if infer >= 0 {
		if known == 0 {
			dims[infer] = 0
		} else {
			dims[infer] = x.Shape().Size() / known
		}
	}
	return one(Reshape(x, dims...))
}
