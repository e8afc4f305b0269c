package compute

import (
	"slices"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Convolution forward pass on the GEMM.
//
// SimpleGo's ConvGeneral is a direct loop (about 0.45 GFLOP/s). The patched builder writes every float
// ConvGeneral (without batch grouping) as im2col instead, from operations that have fast kernels here:
// with x̃ the input in [B, S..., Cin] order, zero-padded,
//
//	P[b,o,u,c] = x̃[b, s⊙o + d⊙u, c]          (one im2col node, which also pads, see im2col.go)
//	y[b,o,(g,f)] = Σ_{u,c∈g} P[b,o,u,c] · K[u,c,(g,f)]   (one DotGeneral, channel groups g as its batch)
//
// then y is transposed to the requested output layout. Input dilation has already been rewritten as
// interior padding (see ConvGeneral in patched.go). Without channel groups, when products run on the
// GEMM library, the im2col node and the DotGeneral are one node that never holds all of P at once
// (see convgemm.go).

// lowerConv builds the im2col form, or returns ok=false to leave the convolution to SimpleGo. It only
// composes builder operations, so it also runs when the fast kernels are off (then the patches are
// Kpos strided Slices and a Concatenate instead of the im2col node).
func (b *patchedBuilder) lowerConv(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, kernelDil []int, groups, batchGroups int) (y backends.Op, ok bool, err error) {
	if batchGroups > 1 || groups < 1 {
		return nil, false, nil
	}
	xs, l, pads, ok, err := b.convOperands(input, kernel, axes, paddings, groups, strides, kernelDil)
	if !ok || err != nil {
		return nil, false, err
	}
	n := len(axes.InputSpatial)
	l.outSizes(strides, kernelDil, pads)
	for _, o := range l.out {
		if o <= 0 {
			return nil, false, nil
		}
	}
	g, cg, coutg := groups, l.cin/groups, l.cout/groups

	xc, twin, err := b.nhwcConvInput(input, l.xPerm) // SiLU(GroupNorm(h)) written channels-last
	if err != nil {
		return nil, false, err
	}
	if !twin {
		if xc, err = b.transposeIfNeeded(input, l.xPerm); err != nil {
			return nil, false, err
		}
	}
	padCfg := make([]backends.PadAxis, n+2)
	padded := slices.Clone(l.in)
	anyPad, negPad := false, false
	for i := range n {
		padCfg[1+i] = backends.PadAxis{Start: pads[i][0], End: pads[i][1]}
		padded[i] += pads[i][0] + pads[i][1]
		anyPad = anyPad || pads[i] != [2]int{}
		negPad = negPad || pads[i][0] < 0 || pads[i][1] < 0
	}
	positions := kernelPositions(l.k)
	if g == 1 {
		if yc, fused, err := b.lowerConvFused(xc, kernel, xs, l, twin, strides, kernelDil, pads); err != nil || fused {
			return yc, fused, err
		}
	}
	var patches backends.Op
	isNode := false
	if !negPad { // the im2col node pads with zeros itself
		if patches, isNode, err = b.im2colNode(xc, l.k, strides, kernelDil, l.out, pads); err != nil {
			return nil, false, err
		}
	}
	if !isNode && anyPad {
		zero, err := b.zeroScalar(xs)
		if err != nil {
			return nil, false, err
		}
		if xc, err = b.Pad(xc, zero, padCfg...); err != nil {
			return nil, false, err
		}
		if patches, isNode, err = b.im2colNode(xc, l.k, strides, kernelDil, l.out, nil); err != nil {
			return nil, false, err
		}
	}
	if !isNode {
		if patches, err = b.slicePatches(xc, l, positions, padded, strides, kernelDil); err != nil {
			return nil, false, err
		}
	}
	yc, err := b.patchProduct(patches, kernel, l, len(positions), g, cg, coutg)
	if err != nil {
		return nil, false, err
	}
	statConvLowered.Add(1)
	return yc, true, nil
}

// lowerConvFused builds an ungrouped convolution of the channels-last input xc (twin: written by a
// normalization's channels-last twin) as one fused node (see convgemm.go), or as the low-resolution
// form of a convolution of an upsampling (upconv.go), transposed to the output layout; ok=false
// when neither applies. A kernel in ONNX's OIHW layout goes to oneDNN as it is (it reorders the
// kernel on every call anyway), without a transpose.
func (b *patchedBuilder) lowerConvFused(xc, kernel backends.Op, xs shapes.Shape, l convLayout, twin bool,
	strides, kernelDil []int, pads [][2]int) (backends.Op, bool, error) {
	n := len(strides)
	onDNNL := b.forwardOnDNNL(xs, n, 1)
	km, kOIHW := kernel, onDNNL && isOIHW(l.kPerm)
	if !kOIHW {
		kc, err := b.transposeIfNeeded(kernel, l.kPerm)
		if err != nil {
			return nil, false, err
		}
		if km, err = b.Builder.Reshape(kc, prod(l.k)*l.cin, l.cout); err != nil {
			return nil, false, err
		}
	}
	var yc backends.Op
	fused := false
	var err error
	if kOIHW && !twin { // a 3x3 convolution of a nearest 2x upsampling, at the low resolution
		if yc, fused, err = b.upsampledConv(xc, km, l.k, strides, kernelDil, pads, l.cout); err != nil {
			return nil, false, err
		}
	}
	if !fused {
		if yc, fused, err = b.convGemmNode(xc, km, kOIHW, l.k, strides, kernelDil, l.out, pads, l.cout); err != nil || !fused {
			return nil, false, err
		}
	}
	cn, perm := yc, inversePerm(l.yPerm)
	if yc, err = b.transposeIfNeeded(yc, perm); err != nil {
		return nil, false, err
	}
	if onDNNL {
		b.rememberConv(yc, cn, perm) // its bias may be folded in (see convbias.go)
	}
	statConvLowered.Add(1)
	return yc, true, nil
}

// slicePatches builds the patches of the im2col form without the im2col node: one strided Slice of
// the (already padded) input per kernel position, concatenated on a new axis.
func (b *patchedBuilder) slicePatches(xc backends.Op, l convLayout, positions [][]int, padded, strides, kernelDil []int) (backends.Op, error) {
	n := len(l.out)
	sliceOut := slices.Concat([]int{l.b}, l.out, []int{1, l.cin})
	parts := make([]backends.Op, len(positions))
	for pi, u := range positions {
		starts := make([]int, n+2)
		limits := slices.Concat([]int{l.b}, padded, []int{l.cin})
		st := ones(n + 2)
		for i := range n {
			starts[1+i] = u[i] * kernelDil[i]
			limits[1+i] = starts[1+i] + (l.out[i]-1)*strides[i] + 1
			st[1+i] = strides[i]
		}
		p, err := b.Builder.Slice(xc, starts, limits, st)
		if err != nil {
			return nil, err
		}
		if parts[pi], err = b.Builder.Reshape(p, sliceOut...); err != nil {
			return nil, err
		}
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return b.Builder.Concatenate(n+1, parts...)
}

// patchProduct multiplies the patches [rows, Kpos, G, Cg] by the kernel [Kpos, Cg, G, Coutg] per
// group and brings the result to the output layout.
func (b *patchedBuilder) patchProduct(patches, kernel backends.Op, l convLayout, kpos, g, cg, coutg int) (backends.Op, error) {
	rows := l.b
	for _, o := range l.out {
		rows *= o
	}
	p4, err := b.Builder.Reshape(patches, rows, kpos, g, cg)
	if err != nil {
		return nil, err
	}
	kc, err := b.transposeIfNeeded(kernel, l.kPerm)
	if err != nil {
		return nil, err
	}
	k4, err := b.Builder.Reshape(kc, kpos, cg, g, coutg)
	if err != nil {
		return nil, err
	}
	yc, err := b.Builder.DotGeneral(p4, []int{1, 3}, []int{2}, k4, []int{0, 1}, []int{2}) // [G, N, Coutg]
	if err != nil {
		return nil, err
	}
	if g > 1 {
		if yc, err = b.Builder.Transpose(yc, 1, 0, 2); err != nil {
			return nil, err
		}
	}
	if yc, err = b.Builder.Reshape(yc, slices.Concat([]int{l.b}, l.out, []int{l.cout})...); err != nil {
		return nil, err
	}
	return b.transposeIfNeeded(yc, inversePerm(l.yPerm))
}

// statConvLowered counts convolutions built on the GEMM (im2col or scatter form), statConvScatter those
// built as GEMM + col2im (for tests).
var statConvLowered, statConvScatter atomic.Int64

// transposeIfNeeded applies Transpose(x, perm) unless perm is the identity.
func (b *patchedBuilder) transposeIfNeeded(x backends.Op, perm []int) (backends.Op, error) {
	for i, p := range perm {
		if i != p {
			return b.Transpose(x, perm...)
		}
	}
	return x, nil
}

// lowerDilatedConv builds a stride-1 correlation of an input dilated by s (the transposed convolution
// that a strided convolution's input gradient is) without materialising the zeros: x[i] meets kernel
// entry u at output h = s⊙i + lo - d⊙u, so with the undilated input as rows,
//
//	Q[b,i,u,(g,f)] = Σ_{c∈g} x[b,i,c] · K[u,c,(g,f)]        (one DotGeneral)
//	y[b,h,:] = Σ_{i,u: s⊙i - d⊙u + lo = h} Q[b,i,u,:]        (one col2im node)
//
// The same form also serves an ordinary stride-1 convolution (s = 1) with fewer output than input
// channels per group: the im2col form copies Kpos·Cin values per output position (after a zero-padded
// copy of the input) and multiplies by a Cout-column kernel, while this one multiplies by a
// Kpos·Cout-column kernel and scatters Kpos·Cout values per input position, so it moves less data and
// gives the GEMM a wider right-hand side (OpenBLAS runs a 6272×288×4 product at about a quarter of
// the speed of the 6272×32×36 one with the same work).
//
// It returns ok=false (leaving the convolution to lowerConv, or the rewrite as interior padding to
// ConvGeneral) unless every stride is 1, the custom nodes are on, and either some input dilation
// exceeds 1 or there is no input dilation and the scatter moves fewer values (input positions times
// output channels) than im2col would copy (output positions times input channels) and the forward
// convolution would not run on oneDNN (see forwardOnDNNL).
func (b *patchedBuilder) lowerDilatedConv(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inDil, kernelDil []int, groups, batchGroups int) (backends.Op, bool, error) {
	if !b.fastPad || !padNodeOn.Load() || batchGroups > 1 || groups < 1 ||
		slices.ContainsFunc(strides, func(s int) bool { return s != 1 }) {
		return nil, false, nil
	}
	xs, l, pads, ok, err := b.convOperands(input, kernel, axes, paddings, groups, inDil, kernelDil)
	if !ok || err != nil {
		return nil, false, err
	}
	n := len(axes.InputSpatial)
	out := make([]int, n)
	negDil := make([]int, n)
	off := make([]int, n)
	for i := range n {
		out[i] = inDil[i]*(l.in[i]-1) + 1 + pads[i][0] + pads[i][1] - kernelDil[i]*(l.k[i]-1)
		if out[i] <= 0 {
			return nil, false, nil
		}
		negDil[i], off[i] = -kernelDil[i], pads[i][0]
	}
	if !slices.ContainsFunc(inDil, func(d int) bool { return d > 1 }) && !b.scatterPays(xs, l, out, groups) {
		return nil, false, nil
	}
	g, cg, coutg := groups, l.cin/groups, l.cout/groups
	rows, kpos := l.b*prod(l.in), prod(l.k)
	xc, err := b.transposeIfNeeded(input, l.xPerm)
	if err != nil {
		return nil, false, err
	}
	if g == 1 {
		// The product and the scatter fused in one node (see convgemm.go).
		km, err := b.scatterKernel(kernel, l, kpos)
		if err != nil {
			return nil, false, err
		}
		y, fused, err := b.convScatterNode(xc, km, l.k, inDil, negDil, off, out, l.cout)
		if err != nil {
			return nil, false, err
		}
		if fused {
			if y, err = b.transposeIfNeeded(y, inversePerm(l.yPerm)); err != nil {
				return nil, false, err
			}
			statConvLowered.Add(1)
			statConvScatter.Add(1)
			return y, true, nil
		}
	}
	x3, err := b.Builder.Reshape(xc, rows, g, cg)
	if err != nil {
		return nil, false, err
	}
	kc, err := b.transposeIfNeeded(kernel, l.kPerm)
	if err != nil {
		return nil, false, err
	}
	k4, err := b.Builder.Reshape(kc, kpos, cg, g, coutg)
	if err != nil {
		return nil, false, err
	}
	q, err := b.Builder.DotGeneral(x3, []int{2}, []int{1}, k4, []int{1}, []int{2}) // [G, N, Kpos, Coutg]
	if err != nil {
		return nil, false, err
	}
	if g > 1 {
		if q, err = b.Builder.Transpose(q, 1, 2, 0, 3); err != nil {
			return nil, false, err
		}
	}
	if q, err = b.Builder.Reshape(q, slices.Concat([]int{l.b}, l.in, []int{kpos, l.cout})...); err != nil {
		return nil, false, err
	}
	y, ok, err := b.col2imNode(q, l.k, inDil, negDil, off, out)
	if err != nil || !ok {
		return nil, false, err
	}
	if y, err = b.transposeIfNeeded(y, inversePerm(l.yPerm)); err != nil {
		return nil, false, err
	}
	statConvLowered.Add(1)
	statConvScatter.Add(1)
	return y, true, nil
}

// scatterPays reports whether a convolution without input dilation (input x of shape xs, output
// spatial sizes out) is better built in the scatter form than by lowerConv: only when oneDNN's
// forward convolution would not run it (see forwardOnDNNL) and the scatter moves fewer values than
// im2col would copy (input positions x Cout against output positions x Cin, per batch entry and
// kernel position).
func (b *patchedBuilder) scatterPays(xs shapes.Shape, l convLayout, out []int, groups int) bool {
	return !b.forwardOnDNNL(xs, len(out), groups) && prod(l.in)*l.cout < prod(out)*l.cin
}

// forwardOnDNNL reports whether an ordinary convolution (no input dilation) of x (shape xs, n
// spatial axes, groups channel groups) built by lowerConv would run on oneDNN's forward convolution
// primitive: then the scatter form is not used for it, since oneDNN's direct kernels need no im2col
// copy, and the scatter form's run on oneDNN (the backward-data primitive) costs a flipped copy of
// the kernel per call (a fresh 2.6 MB allocation and copy for a 384-to-192-channel 3x3 kernel). On
// the small T2I fixture's forward (bench's BenchmarkModelForward, batch 2, old and new alternated
// twice under the heavy lock, 2026-12-05) the median went from 64.6-73.9 to 59.9-64.1 ms per image.
func (b *patchedBuilder) forwardOnDNNL(xs shapes.Shape, n, groups int) bool {
	return groups == 1 && n >= 1 && n <= 2 && xs.DType == dtypes.Float32 && b.fastPad && b.fastGemm &&
		padNodeOn.Load() && convFuseOn.Load() && convDNNLLib() != nil
}

// isOIHW reports whether a kernel permutation (see convLayout) is that of a kernel in the layout
// [Cout, Cin, K...] (PyTorch's and ONNX's OIHW).
func isOIHW(kPerm []int) bool {
	n := len(kPerm) - 2
	for i := range n {
		if kPerm[i] != i+2 {
			return false
		}
	}
	return kPerm[n] == 1 && kPerm[n+1] == 0
}

// scatterKernel is the convolution kernel as the fused scatter node takes it, [Cin, Kpos·Cout].
func (b *patchedBuilder) scatterKernel(kernel backends.Op, l convLayout, kpos int) (backends.Op, error) {
	kc, err := b.transposeIfNeeded(kernel, l.kPerm)
	if err != nil {
		return nil, err
	}
	km, err := b.Builder.Reshape(kc, kpos, l.cin, l.cout)
	if err != nil {
		return nil, err
	}
	if km, err = b.Builder.Transpose(km, 1, 0, 2); err != nil {
		return nil, err
	}
	return b.Builder.Reshape(km, l.cin, kpos*l.cout)
}

// convOperands reads the shapes of a convolution's input and kernel, copies its paddings and builds
// its layout, for the im2col lowerings. ok is false (with a nil error) when they do not apply: a dtype
// other than float32 and float64, a rank or a per-axis list (spatial: the caller's strides or
// dilations) that does not match the number of spatial axes, or channel counts the groups do not
// divide.
func (b *patchedBuilder) convOperands(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	paddings [][2]int, groups int, spatial ...[]int) (xs shapes.Shape, l convLayout, pads [][2]int, ok bool, err error) {
	if xs, err = b.OpShape(input); err != nil {
		return xs, l, nil, false, err
	}
	ks, err := b.OpShape(kernel)
	if err != nil {
		return xs, l, nil, false, err
	}
	if (xs.DType != dtypes.Float32 && xs.DType != dtypes.Float64) || ks.DType != xs.DType {
		return xs, l, nil, false, nil
	}
	n := len(axes.InputSpatial)
	if len(axes.KernelSpatial) != n || len(axes.OutputSpatial) != n || xs.Rank() != n+2 || ks.Rank() != n+2 {
		return xs, l, nil, false, nil
	}
	for _, list := range spatial {
		if len(list) != n {
			return xs, l, nil, false, nil
		}
	}
	pads = make([][2]int, n)
	copy(pads, paddings)
	l = newConvLayout(axes, xs.Dimensions, ks.Dimensions, groups)
	if l.cin%groups != 0 || l.cout%groups != 0 || ks.Dimensions[axes.KernelInputChannels]*groups != l.cin {
		return xs, l, nil, false, nil
	}
	return xs, l, pads, true, nil
}
