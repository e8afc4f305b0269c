package compute

import (
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Convolution gradient.
//
// GoMLX v0.26's reverse-mode rule for ConvGeneral gets the input gradient's padding wrong for even
// kernel sizes (about 2x relative error on a 2x2 stride-2 patch convolution) and panics when the padding
// exceeds 2·floor((k-1)/2). This file registers a rule derived from the convolution written as im2col.
// With x̃ the zero-padded input (channels last), n spatial axes, strides s, kernel dilations d, and
// the kernel positions u = (u_1..u_n),
//
//	P[b,o,u,c] = x̃[b, s⊙o + d⊙u, c]                       (patches, o the output position)
//	y[b,o,f]   = Σ_{u,c} P[b,o,u,c] · K[u,c,f]             (within each channel group)
//
// so, with v = ∂L/∂y,
//
//	∂L/∂K[u,c,f] = Σ_{b,o} P[b,o,u,c] · v[b,o,f]           (one matrix product Pᵀv)
//	∂L/∂x[b,h,c] = Σ_{u,o: s⊙o + d⊙u = h + lo} Σ_f v[b,o,f] · K[u,c,f]
//
// and the second is itself a correlation: of v dilated by s (s-1 zeros between entries) and padded by
// d(K-1)-lo before and H+lo-s(O-1)-1 after (negative values crop), with the kernel flipped in space
// and its input/output channels swapped, dilation d, stride 1. Channel groups (channelGroupCount G)
// are a batch axis of the product and the groups of that correlation. Batch grouping and input
// dilation keep GoMLX's own rule.

var stockConvVJP = graph.VJPRegistration[graph.NodeTypeConvGeneral]

func init() {
	graph.VJPRegistration[graph.NodeTypeConvGeneral] = singleOutput(convGeneralVJP)
}

// convParams are a ConvGeneral node's static parameters, with nil strides/dilations as ones and nil
// paddings as zeros.
type convParams struct {
	axes                      backends.ConvolveAxesConfig
	strides, inDil, kernelDil []int
	paddings                  [][2]int
	groups, batchGroups       int
}

// readConvParams reads them by reflection from the node (GoMLX keeps them unexported); ok is false when
// the layout is not the expected one.
func readConvParams(node *graph.Node) (p convParams, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	params, ok := nodeParams(node)
	if !ok {
		return p, false
	}
	axes := params.FieldByName("axes")
	if !axes.IsValid() || axes.Type() != reflect.TypeOf(backends.ConvolveAxesConfig{}) {
		return p, false
	}
	intOf := func(v reflect.Value, name string) (int, bool) {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.Int {
			return 0, false
		}
		return int(f.Int()), true
	}
	var oks [16]bool
	a := &p.axes
	a.InputBatch, oks[0] = intOf(axes, "InputBatch")
	a.InputChannels, oks[1] = intOf(axes, "InputChannels")
	a.InputSpatial, oks[2] = intsField(axes, "InputSpatial")
	a.KernelInputChannels, oks[3] = intOf(axes, "KernelInputChannels")
	a.KernelOutputChannels, oks[4] = intOf(axes, "KernelOutputChannels")
	a.KernelSpatial, oks[5] = intsField(axes, "KernelSpatial")
	a.OutputBatch, oks[6] = intOf(axes, "OutputBatch")
	a.OutputChannels, oks[7] = intOf(axes, "OutputChannels")
	a.OutputSpatial, oks[8] = intsField(axes, "OutputSpatial")
	p.strides, oks[9] = intsField(params, "strides")
	p.inDil, oks[10] = intsField(params, "inputDilations")
	p.kernelDil, oks[11] = intsField(params, "kernelDilations")
	p.groups, oks[12] = intOf(params, "channelGroupCount")
	p.batchGroups, oks[13] = intOf(params, "batchGroupCount")
	pads := params.FieldByName("paddings")
	oks[14] = pads.IsValid() && pads.Kind() == reflect.Slice && pads.Type().Elem() == reflect.TypeOf([2]int{})
	oks[15] = true
	for _, o := range oks {
		if !o {
			return p, false
		}
	}
	n := len(a.InputSpatial)
	if len(a.KernelSpatial) != n || len(a.OutputSpatial) != n {
		return p, false
	}
	p.paddings = make([][2]int, n)
	for i := 0; i < pads.Len() && i < n; i++ {
		p.paddings[i] = [2]int{int(pads.Index(i).Index(0).Int()), int(pads.Index(i).Index(1).Int())}
	}
	fill := func(v []int) []int {
		out := ones(n)
		for i := 0; i < len(v) && i < n; i++ {
			if v[i] > 0 {
				out[i] = v[i]
			}
		}
		return out
	}
	p.strides, p.inDil, p.kernelDil = fill(p.strides), fill(p.inDil), fill(p.kernelDil)
	p.groups, p.batchGroups = max(p.groups, 1), max(p.batchGroups, 1)
	return p, true
}

// convLayout holds the canonical orders of a convolution's operands: x as [B, S..., Cin], the kernel as
// [K..., Cin/G, Cout], the output as [B, O..., Cout].
type convLayout struct {
	xPerm, kPerm, yPerm []int // canonical axis j = original axis perm[j]
	b, cin, cout, g     int
	in, k, out          []int // spatial sizes
}

func newConvLayout(a backends.ConvolveAxesConfig, xDims, kDims []int, groups int) convLayout {
	n := len(a.InputSpatial)
	l := convLayout{g: groups, b: xDims[a.InputBatch], cin: xDims[a.InputChannels], cout: kDims[a.KernelOutputChannels]}
	l.xPerm = slices.Concat([]int{a.InputBatch}, a.InputSpatial, []int{a.InputChannels})
	l.kPerm = slices.Concat(a.KernelSpatial, []int{a.KernelInputChannels, a.KernelOutputChannels})
	l.yPerm = slices.Concat([]int{a.OutputBatch}, a.OutputSpatial, []int{a.OutputChannels})
	l.in, l.k = make([]int, n), make([]int, n)
	for i := range n {
		l.in[i], l.k[i] = xDims[a.InputSpatial[i]], kDims[a.KernelSpatial[i]]
	}
	return l
}

// outSizes fills l.out: O = floor((S + lo + hi - d(K-1) - 1)/s) + 1.
func (l *convLayout) outSizes(strides, dil []int, pads [][2]int) {
	l.out = make([]int, len(l.in))
	for i := range l.in {
		l.out[i] = (l.in[i]+pads[i][0]+pads[i][1]-dil[i]*(l.k[i]-1)-1)/strides[i] + 1
	}
}

// inversePerm returns q with q[perm[j]] = j.
func inversePerm(perm []int) []int {
	q := make([]int, len(perm))
	for j, p := range perm {
		q[p] = j
	}
	return q
}

// kernelPositions lists every kernel position u (row-major over the kernel's spatial sizes).
func kernelPositions(k []int) [][]int {
	total := prod(k)
	out := make([][]int, 0, total)
	u := make([]int, len(k))
	for range total {
		out = append(out, slices.Clone(u))
		for i := len(k) - 1; i >= 0; i-- {
			u[i]++
			if u[i] < k[i] {
				break
			}
			u[i] = 0
		}
	}
	return out
}

// convGeneralVJP is the im2col rule described at the top of this file.
func convGeneralVJP(node, v *graph.Node) []*graph.Node {
	p, ok := readConvParams(node)
	if !ok || p.batchGroups > 1 || slices.ContainsFunc(p.inDil, func(d int) bool { return d > 1 }) {
		return stockConvVJP(node, []*graph.Node{v}, shapes.Shape{})
	}
	inputs := node.Inputs()
	x, kernel := inputs[0], inputs[1]
	l := newConvLayout(p.axes, x.Shape().Dimensions, kernel.Shape().Dimensions, p.groups)
	l.outSizes(p.strides, p.kernelDil, p.paddings)
	n := len(l.in)
	g, cg, coutg := l.g, l.cin/l.g, l.cout/l.g

	xc := transposeTo(x, l.xPerm)      // [B, S..., Cin]
	kc := transposeTo(kernel, l.kPerm) // [K..., Cg, Cout]
	vc := transposeTo(v, l.yPerm)      // [B, O..., Cout]

	dK := kernelGradAsConv(xc, vc, l, p)
	if dK == nil {
		dK = kernelGradByPatches(xc, vc, l, p)
	}
	dK = transposeTo(dK, inversePerm(l.kPerm))

	// ∂L/∂x as a convolution (the adjoint of the strided, dilated, padded correlation): v dilated by
	// the stride (input dilation s), padded by d(K-1)-lo before and H+lo-s(O-1)-1 after (negative
	// values crop), correlated with the kernel flipped in space and with its channel roles swapped,
	// dilation d, stride 1. The patched backend runs it as GEMM + col2im (no zeros materialised) when
	// s > 1, as im2col + GEMM when s = 1; XLA runs it as its own transposed convolution.
	vpads := make([][2]int, n)
	for i := range n {
		vpads[i] = [2]int{p.kernelDil[i]*(l.k[i]-1) - p.paddings[i][0],
			l.in[i] + p.paddings[i][0] - p.strides[i]*(l.out[i]-1) - 1}
	}
	kt := graph.Reshape(kc, slices.Concat(l.k, []int{cg, g, coutg})...)
	kperm := slices.Concat(iotaFrom(0, n), []int{n + 2, n + 1, n}) // [K..., Coutg, G, Cg]
	kt = graph.TransposeAllAxes(kt, kperm...)
	kt = graph.Reshape(kt, slices.Concat(l.k, []int{coutg, l.cin})...)
	kt = graph.Reverse(kt, iotaFrom(0, n)...)
	canon := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: n + 1, InputSpatial: iotaFrom(1, n),
		KernelInputChannels: n, KernelOutputChannels: n + 1, KernelSpatial: iotaFrom(0, n),
		OutputBatch: 0, OutputChannels: n + 1, OutputSpatial: iotaFrom(1, n)}
	// Negative paddings (crops) are applied to the result instead, so every backend sees ordinary
	// non-negative convolution padding: the output then starts max(lo,0)-lo entries later.
	clamped := make([][2]int, n)
	crop := make([]graph.SliceAxisSpec, n+2)
	crop[0], crop[n+1] = graph.AxisRange(), graph.AxisRange()
	needCrop := false
	for i := range n {
		clamped[i] = [2]int{max(vpads[i][0], 0), max(vpads[i][1], 0)}
		start := clamped[i][0] - vpads[i][0]
		crop[1+i] = graph.AxisRange(start, start+l.in[i])
		needCrop = needCrop || clamped[i] != vpads[i]
	}
	dx := graph.ConvGeneral(vc, kt, canon, ones(n), clamped, p.strides, p.kernelDil, g, 1)
	if needCrop {
		dx = graph.Slice(dx, crop...)
	}
	dx = transposeTo(dx, inversePerm(l.xPerm))
	return []*graph.Node{dx, dK}
}

// kernelGradByPatches is ∂L/∂K = Pᵀv in the kernel's canonical layout [K..., Cg, Cout], from the
// patches written out as strided slices of the zero-padded input (any channel grouping).
func kernelGradByPatches(xc, vc *graph.Node, l convLayout, p convParams) *graph.Node {
	n := len(l.in)
	g, cg, coutg := l.g, l.cin/l.g, l.cout/l.g
	// Zero-padded input and its patches.
	padCfg := make([]graph.PadAxis, n+2)
	padded := make([]int, n)
	for i := range n {
		padCfg[1+i] = graph.PadAxis{Start: p.paddings[i][0], End: p.paddings[i][1]}
		padded[i] = l.in[i] + p.paddings[i][0] + p.paddings[i][1]
	}
	zero := graph.ScalarZero(xc.Graph(), xc.DType())
	xp := graph.Pad(xc, zero, padCfg...)
	positions := kernelPositions(l.k)
	parts := make([]*graph.Node, len(positions))
	for pi, u := range positions {
		ranges := make([]graph.SliceAxisSpec, n+2)
		ranges[0], ranges[n+1] = graph.AxisRange(), graph.AxisRange()
		for i := range n {
			start := u[i] * p.kernelDil[i]
			ranges[1+i] = graph.AxisRange(start, start+(l.out[i]-1)*p.strides[i]+1).Stride(p.strides[i])
		}
		parts[pi] = graph.InsertAxes(graph.Slice(xp, ranges...), n+1) // [B, O..., 1, Cin]
	}
	patches := parts[0]
	if len(parts) > 1 {
		patches = graph.Concatenate(parts, n+1) // [B, O..., Kpos, Cin]
	}
	rows := l.b
	for _, o := range l.out {
		rows *= o
	}
	kpos := len(positions)
	p4 := graph.Reshape(patches, rows, kpos, g, cg)
	v3 := graph.Reshape(vc, rows, g, coutg)

	// ∂L/∂K = Pᵀv per group: [G, Kpos, Cg, Coutg] -> [Kpos, Cg, G, Coutg] -> kernel layout.
	dK := graph.DotGeneral(p4, []int{0}, []int{2}, v3, []int{0}, []int{1})
	dK = graph.TransposeAllAxes(dK, 1, 2, 0, 3)
	dK = graph.Reshape(dK, slices.Concat(l.k, []int{cg, l.cout})...)
	return dK
}

// kernelGradAsConv is ∂L/∂K[u,c,f] = Σ_{b,o} x̃[b, s⊙o + d⊙u, c] · v[b,o,f] written as one
// convolution, so that a backend runs it as its own convolution (the patched one as one im2col node
// and one product instead of Kpos slices and a concatenation): x with its channels as the batch and
// its batch as the channels, correlated with v as the kernel (its output positions as the kernel's
// spatial axes, its batch as input channels), window stride d, kernel dilation s, the same leading
// padding and a trailing one that makes the output K long; the result is [C, K..., F]. It returns
// nil (use kernelGradByPatches) with channel groups or negative leading padding.
func kernelGradAsConv(xc, vc *graph.Node, l convLayout, p convParams) *graph.Node {
	n := len(l.in)
	if l.g != 1 {
		return nil
	}
	pads := make([][2]int, n)
	crop := make([]graph.SliceAxisSpec, n+2)
	crop[0], crop[n+1] = graph.AxisRange(), graph.AxisRange()
	needCrop := false
	for i := range n {
		lo := p.paddings[i][0]
		if lo < 0 {
			return nil
		}
		// The last input entry read is s(O-1) + d(K-1) - lo; padding after it up to there.
		last := p.strides[i]*(l.out[i]-1) + p.kernelDil[i]*(l.k[i]-1) - lo
		hi := last + 1 - l.in[i]
		crop[1+i] = graph.AxisRange()
		if hi < 0 { // entries past the last one read: cut them off instead of padding negatively
			crop[1+i] = graph.AxisRange(0, last+1)
			needCrop, hi = true, 0
		}
		pads[i] = [2]int{lo, hi}
	}
	x := xc
	if needCrop {
		x = graph.Slice(xc, crop...)
	}
	axes := graph.ConvolveAxesConfig{InputBatch: n + 1, InputChannels: 0, InputSpatial: iotaFrom(1, n),
		KernelInputChannels: 0, KernelOutputChannels: n + 1, KernelSpatial: iotaFrom(1, n),
		OutputBatch: 0, OutputChannels: n + 1, OutputSpatial: iotaFrom(1, n)}
	dK := graph.ConvGeneral(x, vc, axes, p.kernelDil, pads, nil, p.strides, 1, 1) // [C, K..., F]
	statKernelGradConv.Add(1)
	return graph.TransposeAllAxes(dK, slices.Concat(iotaFrom(1, n), []int{0, n + 1})...)
}

// statKernelGradConv counts kernel gradients built as a convolution (for tests).
var statKernelGradConv atomic.Int64
