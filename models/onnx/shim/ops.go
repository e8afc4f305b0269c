package shim

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// op is one of our own conversions: fn builds the node's outputs; check (optional) returns why a
// node's configuration is unsupported ("" if it is supported), which Load reports.
type op struct {
	fn    func(b *builder, n *node, in []*Node) []*Node
	check func(g *Model, n *node) string
}

// ours are the ops this package converts itself: those onnx-gomlx v0.3.4 lacks, those it gets
// wrong (Gather with negative indices, Gemm's beta), those whose weights take LoRA adapters, and
// those that must treat FLOAT16/BFLOAT16 as float32 (Constant, Cast).
var ours map[string]op

// delegated are the ops converted by onnx-gomlx unchanged; each is covered by the ONNX node
// conformance tests (conformance_test.go).
var delegated = map[string]bool{}

func init() {
	for _, name := range []string{"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Erf", "Relu", "Abs",
		"Neg", "Tanh", "Sin", "Cos", "Identity", "Floor", "Ceil", "Sign", "Not", "And", "Or", "Equal", "Less",
		"LessOrEqual", "Greater", "GreaterOrEqual", "Where", "Min", "Max", "Clip", "Concat", "Softmax",
		"Transpose", "Flatten", "Squeeze", "Unsqueeze", "Slice", "Reshape", "Shape", "ConstantOfShape",
		"Expand", "Tile", "Range", "Split", "LayerNormalization", "BatchNormalization", "AveragePool",
		"MaxPool", "GlobalAveragePool", "Pad", "CumSum"} {
		delegated[name] = true
	}
	ours = map[string]op{
		"Constant":              {fn: opConstant, check: checkConstant},
		"Cast":                  {fn: opCast},
		"Gather":                {fn: opGather},
		"Sigmoid":               {fn: unary(Sigmoid)},
		"Reciprocal":            {fn: unary(func(x *Node) *Node { return Div(OnesLike(x), x) })},
		"Softplus":              {fn: unary(Softplus)},
		"LeakyRelu":             {fn: opLeakyRelu},
		"Gelu":                  {fn: opGelu},
		"InstanceNormalization": {fn: opInstanceNorm},
		"GroupNormalization":    {fn: opGroupNorm},
		"Conv":                  {fn: opConv, check: checkConv},
		"ConvTranspose":         {fn: opConvTranspose, check: checkConvTranspose},
		"Gemm":                  {fn: opGemm},
		"MatMul":                {fn: opMatMul},
		"Resize":                {fn: opResize, check: checkResize},
		"ReduceSum":             {fn: reduceOp("sum")},
		"ReduceMean":            {fn: reduceOp("mean")},
		"ReduceMax":             {fn: reduceOp("max")},
		"ReduceMin":             {fn: reduceOp("min")},
		"ReduceL2":              {fn: reduceOp("l2")},
		"ReduceSumSquare":       {fn: reduceOp("sumsquare")},
		"ArgMax":                {fn: argOp(true)},
		"ArgMin":                {fn: argOp(false)},
	}
}

func one(x *Node) []*Node { return []*Node{x} }

func unary(f func(*Node) *Node) func(*builder, *node, []*Node) []*Node {
	return func(_ *builder, _ *node, in []*Node) []*Node { return one(f(in[0])) }
}

func panicf(format string, args ...any) { panic(fmt.Errorf(format, args...)) }

// constInts reads a constant integer input (axes, scales, sizes, ...) as ints.
func (b *builder) constInts(n *node, x *Node, what string) []int {
	t := b.constTensor(x)
	if t == nil {
		panicf("%s: %s must be a constant (computed from shapes only), it depends on the graph's inputs", n, what)
	}
	var out []int
	t.MustConstFlatData(func(flat any) {
		switch v := flat.(type) {
		case []int64:
			for _, e := range v {
				out = append(out, int(e))
			}
		case []int32:
			for _, e := range v {
				out = append(out, int(e))
			}
		default:
			panicf("%s: %s must be integers, got %s", n, what, t.DType())
		}
	})
	return out
}

func (b *builder) constFloats(n *node, x *Node, what string) []float64 {
	t := b.constTensor(x)
	if t == nil {
		panicf("%s: %s must be a constant, it depends on the graph's inputs", n, what)
	}
	var out []float64
	t.MustConstFlatData(func(flat any) {
		switch v := flat.(type) {
		case []float32:
			for _, e := range v {
				out = append(out, float64(e))
			}
		case []float64:
			out = append(out, v...)
		default:
			panicf("%s: %s must be floats, got %s", n, what, t.DType())
		}
	})
	return out
}

// axis normalizes a possibly negative axis for rank r.
func axis(n *node, a, r int) int {
	if a < 0 {
		a += r
	}
	if a < 0 || a >= r {
		panicf("%s: axis out of range for rank %d", n, r)
	}
	return a
}

func checkConstant(_ *Model, n *node) string {
	for _, k := range []string{"sparse_value", "value_string", "value_strings"} {
		if _, ok := n.attrs[k]; ok {
			return k
		}
	}
	return ""
}

// opConstant: value (a tensor), value_float(s) or value_int(s).
func opConstant(b *builder, n *node, _ []*Node) []*Node {
	g := b.cur
	if a, ok := n.attrs["value"]; ok && a.t != nil {
		return one(b.mkConst(g, a.t))
	}
	if a, ok := n.attrs["value_float"]; ok {
		return one(Const(g, a.f))
	}
	if a, ok := n.attrs["value_floats"]; ok {
		return one(Const(g, slices.Clone(a.floats)))
	}
	if a, ok := n.attrs["value_int"]; ok {
		return one(Const(g, a.i))
	}
	if a, ok := n.attrs["value_ints"]; ok {
		return one(Const(g, slices.Clone(a.ints)))
	}
	panicf("%s: no value attribute", n)
	return nil
}

// opCast converts to the "to" type; FLOAT16 and BFLOAT16 mean float32 here.
func opCast(_ *builder, n *node, in []*Node) []*Node {
	dt, err := dtypeOf(n.intAttr("to", 0))
	if err != nil {
		panicf("%s: %v", n, err)
	}
	if in[0].DType() == dt {
		return one(in[0])
	}
	return one(ConvertDType(in[0], dt))
}

// opGather: y = data indexed by indices on axis (numpy take); negative indices count from the end.
func opGather(_ *builder, n *node, in []*Node) []*Node {
	data, idx := in[0], in[1]
	ax := axis(n, n.intAttr("axis", 0), data.Rank())
	dim := data.Shape().Dim(ax)
	idx = ConvertDType(idx, dtypes.Int64)
	idx = Where(LessThan(idx, ZerosLike(idx)), AddScalar(idx, float64(dim)), idx)
	return one(takeAlong(data, idx, ax))
}

// takeAlong gathers data[..., idx, ...] on axis ax: the output has data's axes before ax, then
// idx's axes, then data's axes after ax.
func takeAlong(data, idx *Node, ax int) *Node {
	r := data.Rank()
	perm := []int{ax}
	for i := 0; i < r; i++ {
		if i != ax {
			perm = append(perm, i)
		}
	}
	front := data
	if ax != 0 {
		front = TransposeAllAxes(data, perm...)
	}
	y := Gather(front, ExpandAxes(idx, -1)) // [idx..., rest...]
	if ax == 0 {
		return y
	}
	ir := idx.Rank()
	// y axes: idx (ir), then data's axes except ax, in order. Want data[:ax], idx, data[ax+1:].
	var out []int
	for i := 0; i < ax; i++ {
		out = append(out, ir+i)
	}
	for i := 0; i < ir; i++ {
		out = append(out, i)
	}
	for i := ax; i < r-1; i++ {
		out = append(out, ir+i)
	}
	return TransposeAllAxes(y, out...)
}

func opLeakyRelu(_ *builder, n *node, in []*Node) []*Node {
	x := in[0]
	alpha := n.floatAttr("alpha", 0.01)
	return one(Where(GreaterOrEqual(x, ZerosLike(x)), x, MulScalar(x, alpha)))
}

// opGelu: x Φ(x) (approximate "none"), or the tanh approximation.
func opGelu(_ *builder, n *node, in []*Node) []*Node {
	x := in[0]
	if n.strAttr("approximate", "none") == "tanh" {
		inner := MulScalar(Add(x, MulScalar(Mul(Mul(x, x), x), 0.044715)), math.Sqrt(2/math.Pi))
		return one(Mul(MulScalar(x, 0.5), AddScalar(Tanh(inner), 1)))
	}
	return one(Mul(MulScalar(x, 0.5), AddScalar(Erf(MulScalar(x, 1/math.Sqrt2)), 1)))
}

// normalize returns (x - mean) / sqrt(var + eps) with mean and (biased) variance over axes.
func normalize(x *Node, eps float64, axes ...int) *Node {
	mean := ReduceAndKeep(x, ReduceMean, axes...)
	c := Sub(x, mean)
	v := ReduceAndKeep(Mul(c, c), ReduceMean, axes...)
	return Div(c, Sqrt(AddScalar(v, eps)))
}

// channelVec reshapes a per-channel vector [C] to broadcast over x [N, C, spatial...].
func channelVec(v *Node, rank int) *Node {
	dims := make([]int, rank)
	for i := range dims {
		dims[i] = 1
	}
	dims[1] = v.Shape().Size()
	return Reshape(v, dims...)
}

// opInstanceNorm: y = scale[c] (x - mean_{n,c}) / sqrt(var_{n,c} + eps) + B[c], statistics over
// the spatial axes of x [N, C, spatial...].
func opInstanceNorm(_ *builder, n *node, in []*Node) []*Node {
	x := in[0]
	var axes []int
	for i := 2; i < x.Rank(); i++ {
		axes = append(axes, i)
	}
	y := normalize(x, n.floatAttr("epsilon", 1e-5), axes...)
	return one(Add(Mul(y, channelVec(in[1], x.Rank())), channelVec(in[2], x.Rank())))
}

// opGroupNorm: statistics over each group of C/num_groups channels and the spatial axes; scale and
// bias are per channel [C] (opset 21) or per group [num_groups] (opset 18).
func opGroupNorm(_ *builder, n *node, in []*Node) []*Node {
	x := in[0]
	groups := n.intAttr("num_groups", 0)
	dims := x.Shape().Dimensions
	c := dims[1]
	if groups <= 0 || c%groups != 0 {
		panicf("%s: %d channels are not divisible into %d groups", n, c, groups)
	}
	gd := append([]int{dims[0], groups, c / groups}, dims[2:]...)
	xg := Reshape(x, gd...)
	var axes []int
	for i := 2; i < len(gd); i++ {
		axes = append(axes, i)
	}
	y := Reshape(normalize(xg, n.floatAttr("epsilon", 1e-5), axes...), dims...)
	scale, bias := in[1], in[2]
	if scale.Shape().Size() == groups && groups != c {
		// per-group parameters: repeat each over its channels
		scale = Reshape(BroadcastToDims(Reshape(scale, groups, 1), groups, c/groups), c)
		bias = Reshape(BroadcastToDims(Reshape(bias, groups, 1), groups, c/groups), c)
	}
	return one(Add(Mul(y, channelVec(scale, x.Rank())), channelVec(bias, x.Rank())))
}

// convAxes is ONNX's layout: x [N, C, spatial...], kernel [O, I, spatial...].
func convAxes(rank int) backends.ConvolveAxesConfig {
	sp := make([]int, rank-2)
	for i := range sp {
		sp[i] = i + 2
	}
	return backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: sp,
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: sp,
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: sp}
}

func checkConv(_ *Model, n *node) string {
	switch n.strAttr("auto_pad", "NOTSET") {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
		return ""
	}
	return "auto_pad=" + n.strAttr("auto_pad", "")
}

// convPads returns the [begin, end] padding per spatial axis of a Conv or pooling node.
func convPads(n *node, in []int, kernel, strides, dil []int) [][2]int {
	k := len(in)
	pads := make([][2]int, k)
	switch n.strAttr("auto_pad", "NOTSET") {
	case "VALID":
	case "SAME_UPPER", "SAME_LOWER":
		for i := range k {
			out := (in[i] + strides[i] - 1) / strides[i]
			total := max(0, (out-1)*strides[i]+(kernel[i]-1)*dil[i]+1-in[i])
			lo := total / 2
			if n.strAttr("auto_pad", "") == "SAME_LOWER" {
				lo = total - total/2
			}
			pads[i] = [2]int{lo, total - lo}
		}
	default:
		p := n.intsAttr("pads")
		if len(p) == 2*k {
			for i := range k {
				pads[i] = [2]int{p[i], p[i+k]}
			}
		}
	}
	return pads
}

func orOnes(v []int, k int) []int {
	if len(v) == k {
		return v
	}
	out := make([]int, k)
	for i := range out {
		out[i] = 1
	}
	return out
}

// conv computes ONNX's Conv of x [N, C, sp...] with kernel w [O, C/group, k...].
func conv(x, w *Node, strides, dil []int, pads [][2]int, group int) *Node {
	c := Convolve(x, w).AxesConfig(convAxes(x.Rank())).StridePerAxis(strides...).
		DilationPerAxis(dil...).PaddingPerDim(pads)
	if group > 1 {
		c = c.ChannelGroupCount(group)
	}
	return c.Done()
}

// opConv: y = conv(x, W) + B, with a LoRA adapter on W when the builder is in LoRA mode:
// + (alpha/r) conv1x1(conv(x, A), B_lora), A [r, C, k...] (same strides, pads, dilations).
func opConv(b *builder, n *node, in []*Node) []*Node {
	x, w := in[0], in[1]
	k := x.Rank() - 2
	kernel := w.Shape().Dimensions[2:]
	strides := orOnes(n.intsAttr("strides"), k)
	dil := orOnes(n.intsAttr("dilations"), k)
	pads := convPads(n, x.Shape().Dimensions[2:], kernel, strides, dil)
	group := n.intAttr("group", 1)
	lora := b.loraFor(n)
	var y *Node
	if !b.outputOnly[n] {
		y = conv(x, w, strides, dil, pads, group)
		if len(in) > 2 && in[2] != nil {
			y = Add(y, channelVec(in[2], y.Rank()))
		}
	}
	if lora != nil {
		out := w.Shape().Dim(0)
		aDims := append([]int{}, kernel...)
		aDims = append(aDims, w.Shape().Dim(1), b.adapter.Rank) // [k..., C, r], as nn.Conv
		A, B := b.adapter.Factors(lora, x.Graph(), x.DType(), aDims, out)
		perm := []int{k + 1, k} // -> [r, C, k...]
		for i := range k {
			perm = append(perm, i)
		}
		h := conv(x, TransposeAllAxes(A, perm...), strides, dil, pads, 1) // [N, r, sp...]
		d := MulScalar(alongAxis(h, B, 1), b.adapter.Alpha/float64(b.adapter.Rank))
		if y == nil {
			return one(d)
		}
		y = Add(y, d)
	}
	return one(y)
}

func checkConvTranspose(_ *Model, n *node) string {
	if g := n.intAttr("group", 1); g != 1 {
		return fmt.Sprintf("group=%d", g)
	}
	if ap := n.strAttr("auto_pad", "NOTSET"); ap != "NOTSET" && ap != "VALID" {
		return "auto_pad=" + ap
	}
	return ""
}

// opConvTranspose: the transpose of Conv (the gradient of a strided conv with respect to its
// input), for x [N, C, sp...] and W [C, O, k...]: insert (stride-1) zeros between input pixels,
// pad by dilation*(k-1) - pad on each side (+ output_padding at the end) and convolve with the
// spatially flipped kernel with its two channel axes swapped.
func opConvTranspose(_ *builder, n *node, in []*Node) []*Node {
	x, w := in[0], in[1]
	k := x.Rank() - 2
	kernel := w.Shape().Dimensions[2:]
	strides := orOnes(n.intsAttr("strides"), k)
	dil := orOnes(n.intsAttr("dilations"), k)
	outPad := n.intsAttr("output_padding")
	if len(outPad) != k {
		outPad = make([]int, k)
	}
	pads := make([][2]int, k)
	if p := n.intsAttr("pads"); len(p) == 2*k {
		for i := range k {
			pads[i] = [2]int{p[i], p[i+k]}
		}
	}
	if os := n.intsAttr("output_shape"); len(os) >= k {
		os = os[len(os)-k:]
		for i := range k {
			inD := x.Shape().Dim(2 + i)
			total := strides[i]*(inD-1) + outPad[i] + (kernel[i]-1)*dil[i] + 1 - os[i]
			if n.strAttr("auto_pad", "NOTSET") == "SAME_LOWER" {
				pads[i] = [2]int{total - total/2, total / 2}
			} else {
				pads[i] = [2]int{total / 2, total - total/2}
			}
		}
	}
	// zero insertion
	z := x
	for i := range k {
		s := strides[i]
		if s == 1 {
			continue
		}
		ax := 2 + i
		dims := z.Shape().Dimensions
		e := ExpandAxes(z, ax+1)
		zeros := ZerosLike(e)
		parts := []*Node{e}
		for range s - 1 {
			parts = append(parts, zeros)
		}
		st := Concatenate(parts, ax+1)
		nd := slices.Clone(dims)
		nd[ax] = dims[ax] * s
		st = Reshape(st, nd...)
		z = SliceAxis(st, ax, AxisRange(0, dims[ax]*s-(s-1)))
	}
	cpads := make([][2]int, k)
	var crop []SliceAxisSpec
	needCrop := false
	for i := range k {
		span := dil[i] * (kernel[i] - 1)
		lo, hi := span-pads[i][0], span-pads[i][1]+outPad[i]
		if lo < 0 || hi < 0 {
			needCrop = true
		}
		cpads[i] = [2]int{max(lo, 0), max(hi, 0)}
	}
	// flip spatial axes, swap channel axes: [C, O, k...] -> [O, C, k...]
	spatial := make([]int, k)
	for i := range spatial {
		spatial[i] = 2 + i
	}
	perm := append([]int{1, 0}, spatial...)
	wf := TransposeAllAxes(Reverse(w, spatial...), perm...)
	y := conv(z, wf, orOnes(nil, k), dil, cpads, 1)
	if needCrop {
		crop = append(crop, AxisRange(), AxisRange())
		for i := range k {
			span := dil[i] * (kernel[i] - 1)
			lo, hi := span-pads[i][0], span-pads[i][1]+outPad[i]
			d := y.Shape().Dim(2 + i)
			crop = append(crop, AxisRange(max(-lo, 0), d-max(-hi, 0)))
		}
		y = Slice(y, crop...)
	}
	if len(in) > 2 && in[2] != nil {
		y = Add(y, channelVec(in[2], y.Rank()))
	}
	return one(y)
}

// opGemm: Y = alpha A' B' + beta C (A' = A or A^T per transA, same for B), with a LoRA adapter on
// B when it is a stored weight: + alpha (alpha_lora/r) (A' L_a) L_b.
func opGemm(b *builder, n *node, in []*Node) []*Node {
	a, w := in[0], in[1]
	if n.intAttr("transA", 0) != 0 {
		a = TransposeAllAxes(a, 1, 0)
	}
	if n.intAttr("transB", 0) != 0 {
		w = TransposeAllAxes(w, 1, 0)
	}
	alpha, beta := n.floatAttr("alpha", 1), n.floatAttr("beta", 1)
	var y *Node
	if !b.outputOnly[n] {
		y = Dot(a, w)
		if alpha != 1 {
			y = MulScalar(y, alpha)
		}
		if len(in) > 2 && in[2] != nil {
			c := in[2]
			if beta != 1 {
				c = MulScalar(c, beta)
			}
			y = Add(y, broadcastTo(c, y))
		}
	}
	if lora := b.loraFor(n); lora != nil {
		A, B := b.adapter.Factors(lora, a.Graph(), a.DType(), []int{w.Shape().Dim(0), b.adapter.Rank}, w.Shape().Dim(1))
		d := MulScalar(Dot(Dot(a, A), B), alpha*b.adapter.Alpha/float64(b.adapter.Rank))
		if y == nil {
			return one(d)
		}
		y = Add(y, d)
	}
	return one(y)
}

// broadcastTo broadcasts c (ONNX unidirectional broadcasting) to y's shape.
func broadcastTo(c, y *Node) *Node {
	if c.Rank() < y.Rank() {
		c = ExpandLeftToRank(c, y.Rank())
	}
	if !slices.Equal(c.Shape().Dimensions, y.Shape().Dimensions) {
		c = BroadcastToDims(c, y.Shape().Dimensions...)
	}
	return c
}

// opMatMul: numpy matmul, with a LoRA adapter on a stored rank-2 right operand W [K, N]:
// + (alpha/r) (x L_a) L_b.
func opMatMul(b *builder, n *node, in []*Node) []*Node {
	x, w := in[0], in[1]
	var y *Node
	if !b.outputOnly[n] {
		y = MatMul(x, w)
	}
	if lora := b.loraFor(n); lora != nil {
		A, B := b.adapter.Factors(lora, x.Graph(), x.DType(), []int{w.Shape().Dim(0), b.adapter.Rank}, w.Shape().Dim(1))
		d := MulScalar(MatMul(MatMul(x, A), B), b.adapter.Alpha/float64(b.adapter.Rank))
		if y == nil {
			return one(d)
		}
		y = Add(y, d)
	}
	return one(y)
}

// reduceOp implements ReduceSum/Mean/Max/Min/L2/SumSquare: axes from the attribute (older
// opsets) or the second input (ReduceSum from opset 13, all from 18); keepdims (default 1);
// noop_with_empty_axes (default 0: no axes means all axes).
func reduceOp(kind string) func(*builder, *node, []*Node) []*Node {
	return func(b *builder, n *node, in []*Node) []*Node {
		x := in[0]
		var axes []int
		if len(in) > 1 && in[1] != nil {
			axes = b.constInts(n, in[1], "axes")
		} else {
			axes = n.intsAttr("axes")
		}
		if len(axes) == 0 {
			if n.intAttr("noop_with_empty_axes", 0) != 0 {
				return one(x)
			}
			axes = nil
			for i := range x.Rank() {
				axes = append(axes, i)
			}
		}
		for i := range axes {
			axes[i] = axis(n, axes[i], x.Rank())
		}
		var f func(*Node, ...int) *Node
		switch kind {
		case "sum":
			f = ReduceSum
		case "mean":
			f = ReduceMean
		case "max":
			f = ReduceMax
		case "min":
			f = ReduceMin
		case "l2":
			f = func(v *Node, a ...int) *Node { return Sqrt(ReduceSum(Mul(v, v), a...)) }
		case "sumsquare":
			f = func(v *Node, a ...int) *Node { return ReduceSum(Mul(v, v), a...) }
		}
		if n.intAttr("keepdims", 1) != 0 {
			return one(ReduceAndKeep(x, f, axes...))
		}
		return one(f(x, axes...))
	}
}

// argOp implements ArgMax/ArgMin (int64 indices; ties: first index, or last with
// select_last_index=1).
func argOp(isMax bool) func(*builder, *node, []*Node) []*Node {
	return func(_ *builder, n *node, in []*Node) []*Node {
		x := in[0]
		ax := axis(n, n.intAttr("axis", 0), x.Rank())
		last := n.intAttr("select_last_index", 0) != 0
		if last {
			x = Reverse(x, ax)
		}
		var y *Node
		if isMax {
			y = ArgMax(x, ax, dtypes.Int64)
		} else {
			y = ArgMin(x, ax, dtypes.Int64)
		}
		if last {
			y = Sub(Scalar(y.Graph(), dtypes.Int64, x.Shape().Dim(ax)-1), y)
		}
		if n.intAttr("keepdims", 1) != 0 {
			y = ExpandAxes(y, ax)
		}
		return one(y)
	}
}
