package compute

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// im2col as one node: from x [B, S..., C] it writes the patches of x̃, x zero-padded by lo entries
// before (and enough after) each spatial axis,
//
//	P[b, o, u, c] = x̃[b, s⊙o + d⊙u, c] = x[b, s⊙o + d⊙u - lo, c] (0 outside x)      P: [B, O..., Kpos, C]
//
// in one pass, instead of a Pad, Kpos strided Slices and a Concatenate. It is a node of this package
// (see fastpad.go), built by the patched builder's convolution lowering.
type im2colNodeData struct {
	k, strides, dil, out []int // kernel spatial sizes, strides, kernel dilations, output spatial sizes
	lo                   []int // zero padding before each spatial axis (nil: none)
}

// errNegativePad is patchLayout's error for a negative padding (the callers crop instead, or leave
// the convolution to another lowering).
var errNegativePad = errors.New("negative padding")

// patchLayout checks the windows of an im2col of x (dimensions xDims [B, S..., C]) with kernel sizes
// k, strides, kernel dilations dil, out output positions per axis and pads (before, after; missing
// axes unpadded), and returns the number of kernel positions and the zero padding before each
// spatial axis (nil when nothing is padded).
func patchLayout(xDims, k, strides, dil, out []int, pads [][2]int) (kpos int, lo []int, err error) {
	n := len(k)
	kpos = 1
	for i := range n {
		kpos *= k[i]
		var p [2]int
		if i < len(pads) {
			p = pads[i]
		}
		if p[0] < 0 || p[1] < 0 {
			return 0, nil, fmt.Errorf("%w %v on axis %d", errNegativePad, p, 1+i)
		}
		if last := (out[i]-1)*strides[i] + (k[i]-1)*dil[i]; last >= xDims[1+i]+p[0]+p[1] {
			return 0, nil, fmt.Errorf("window reaches %d on axis %d of %v padded by %v", last, 1+i, xDims, p)
		}
		if p != [2]int{} {
			if lo == nil {
				lo = make([]int, n)
			}
			lo[i] = p[0]
		}
	}
	return kpos, lo, nil
}

// im2colNode builds the node for x padded by pads (non-negative) on its spatial axes, or returns
// ok=false when the custom nodes are off.
func (b *patchedBuilder) im2colNode(xp backends.Op, k, strides, dil, out []int, pads [][2]int) (backends.Op, bool, error) {
	if !b.fastPad || !padNodeOn.Load() {
		return nil, false, nil
	}
	xn, ok := xp.(*simplego.Node)
	if !ok {
		return nil, false, nil
	}
	xs, err := b.OpShape(xp)
	if err != nil {
		return nil, false, err
	}
	n := len(k)
	if xs.Rank() != n+2 {
		return nil, false, fmt.Errorf("im2col: input %s for a %d-D kernel", xs, n)
	}
	kpos, lo, err := patchLayout(xs.Dimensions, k, strides, dil, out, pads)
	if err != nil {
		return nil, false, fmt.Errorf("im2col: %w", err)
	}
	dims := slices.Concat([]int{xs.Dimensions[0]}, out, []int{kpos, xs.Dimensions[n+1]})
	node := simplegoNewNode(b.Builder, backends.OpTypePad, shapes.Make(xs.DType, dims...), xn)
	if !setNodeData(node, &im2colNodeData{k: slices.Clone(k), strides: slices.Clone(strides),
		dil: slices.Clone(dil), out: slices.Clone(out), lo: lo}) {
		return nil, false, nil
	}
	return node, true, nil
}

// execIm2col runs an im2col node.
func execIm2col(backend *simplego.Backend, data *im2colNodeData, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	xs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	n := len(data.k)
	kpos := 1
	for _, k := range data.k {
		kpos *= k
	}
	dims := slices.Concat([]int{xs.Dimensions[0]}, data.out, []int{kpos, xs.Dimensions[n+1]})
	xf, _ := backend.BufferData(inputs[0])
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(xs.DType, dims...))
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		im2colParallel(out, xf.([]float32), xs.Dimensions, data)
	case []float64:
		im2colParallel(out, xf.([]float64), xs.Dimensions, data)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: im2col of dtype %s", xs.DType)
	}
	statFastOps.Add(1)
	if data.lo != nil {
		statIm2colPadded.Add(1)
	}
	return outBuf.(*simplego.Buffer), nil
}

// statIm2colPadded counts im2col nodes run with their own zero padding (for tests).
var statIm2colPadded atomic.Int64

// im2colKernel writes P[b, o, u, :] = x[b, s⊙o + d⊙u - lo, :] (0 outside x) for x of dimensions
// xDims = [B, S..., C].
func im2colKernel[T float32 | float64](out, x []T, xDims []int, p *im2colNodeData) {
	if p.lo != nil {
		im2colPaddedKernel(out, x, xDims, p)
		return
	}
	n := len(p.k)
	c := xDims[n+1]
	// Strides of x in elements for its spatial axes.
	xStrides := make([]int, n)
	st := c
	for i := n - 1; i >= 0; i-- {
		xStrides[i] = st
		st *= xDims[1+i]
	}
	batchStride := st
	// Offset of each kernel position u within x. When the last kernel axis has dilation 1, its k
	// positions are k·C consecutive values of x (and of P), copied as one run.
	positions := kernelPositions(p.k)
	run := c
	if p.dil[n-1] == 1 {
		run = p.k[n-1] * c
	}
	var offU []int
	for _, u := range positions {
		if run != c && u[n-1] != 0 {
			continue // covered by the run starting at u[n-1] = 0
		}
		off := 0
		for i := range n {
			off += u[i] * p.dil[i] * xStrides[i]
		}
		offU = append(offU, off)
	}
	// Output positions o: odometer; step of the base offset per output index on each axis.
	stepO := make([]int, n)
	for i := range n {
		stepO[i] = p.strides[i] * xStrides[i]
	}
	numO := 1
	for _, o := range p.out {
		numO *= o
	}
	w := 0
	idx := make([]int, n)
	for b := range xDims[0] {
		base := b * batchStride
		for i := range idx {
			idx[i] = 0
		}
		for range numO {
			if run <= 16 {
				for _, off := range offU {
					src, dst := x[base+off:base+off+run], out[w:w+run]
					for j, v := range src {
						dst[j] = v
					}
					w += run
				}
			} else {
				for _, off := range offU {
					copy(out[w:w+run], x[base+off:base+off+run])
					w += run
				}
			}
			for i := n - 1; i >= 0; i-- {
				idx[i]++
				base += stepO[i]
				if idx[i] < p.out[i] {
					break
				}
				base -= idx[i] * stepO[i]
				idx[i] = 0
			}
		}
	}
}

// im2colPaddedKernel is im2colKernel with zero padding: every kernel position's coordinates are
// checked against x's extent; on the last axis, with dilation 1, the k·C values of a run are cut into
// zeros, a copied middle and zeros.
func im2colPaddedKernel[T float32 | float64](out, x []T, xDims []int, p *im2colNodeData) {
	n := len(p.k)
	c := xDims[n+1]
	in := xDims[1 : n+1]
	xStrides := make([]int, n)
	st := c
	for i := n - 1; i >= 0; i-- {
		xStrides[i] = st
		st *= in[i]
	}
	batchStride := st
	last := n - 1
	kl, dl, sl, lol := p.k[last], p.dil[last], p.strides[last], p.lo[last]
	// Kernel positions over the leading axes (the last axis is walked inside).
	lead := kernelPositions(p.k[:last])
	numO := 1
	for _, o := range p.out {
		numO *= o
	}
	o := make([]int, n)
	w := 0
	for b := range xDims[0] {
		xb := x[b*batchStride : (b+1)*batchStride]
		for i := range o {
			o[i] = 0
		}
		for range numO {
			h0 := sl*o[last] - lol // coordinate of u = 0 on the last axis
			for _, u := range lead {
				row, inside := 0, true
				for i := range last {
					h := p.strides[i]*o[i] + p.dil[i]*u[i] - p.lo[i]
					if h < 0 || h >= in[i] {
						inside = false
						break
					}
					row += h * xStrides[i]
				}
				dst := out[w : w+kl*c]
				w += kl * c
				if !inside {
					clear(dst)
					continue
				}
				if dl == 1 {
					// u in [ua, ub) lands inside x on the last axis.
					ua, ub := max(0, -h0), min(kl, in[last]-h0)
					if ub <= ua {
						clear(dst)
						continue
					}
					clear(dst[:ua*c])
					copy(dst[ua*c:ub*c], xb[row+(h0+ua)*c:row+(h0+ub)*c])
					clear(dst[ub*c:])
					continue
				}
				for ul := range kl {
					d := dst[ul*c : (ul+1)*c]
					if h := h0 + dl*ul; h >= 0 && h < in[last] {
						copy(d, xb[row+h*c:row+(h+1)*c])
					} else {
						clear(d)
					}
				}
			}
			for i := last; i >= 0; i-- {
				o[i]++
				if o[i] < p.out[i] {
					break
				}
				o[i] = 0
			}
		}
	}
}

// col2im as one node, the adjoint of im2col's patch extraction: from Q [B, I..., Kpos, C] it writes
//
//	y[b, h, c] = Σ_{i,u: s⊙i + d⊙u + off = h} Q[b, i, u, c]      y: [B, O..., C]
//
// (entries landing outside y are dropped). A correlation of an input dilated by s (interior padding
// s-1), with stride 1 and kernel dilation d, is exactly such a scatter of the matrix product of the
// undilated input with the kernel, with d negated for the correlation's direction; see lowerConv.
type col2imNodeData struct {
	k, strides, dil, off, out []int
}

// col2imNode builds the node, or returns ok=false when the custom nodes are off.
func (b *patchedBuilder) col2imNode(q backends.Op, k, strides, dil, off, out []int) (backends.Op, bool, error) {
	if !b.fastPad || !padNodeOn.Load() {
		return nil, false, nil
	}
	qn, ok := q.(*simplego.Node)
	if !ok {
		return nil, false, nil
	}
	qs, err := b.OpShape(q)
	if err != nil {
		return nil, false, err
	}
	n := len(k)
	if qs.Rank() != n+3 {
		return nil, false, fmt.Errorf("col2im: input %s for a %d-D kernel", qs, n)
	}
	dims := slices.Concat([]int{qs.Dimensions[0]}, out, []int{qs.Dimensions[n+2]})
	node := simplegoNewNode(b.Builder, backends.OpTypePad, shapes.Make(qs.DType, dims...), qn)
	if !setNodeData(node, &col2imNodeData{k: slices.Clone(k), strides: slices.Clone(strides),
		dil: slices.Clone(dil), off: slices.Clone(off), out: slices.Clone(out)}) {
		return nil, false, nil
	}
	return node, true, nil
}

// execCol2im runs a col2im node.
func execCol2im(backend *simplego.Backend, data *col2imNodeData, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	qs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	n := len(data.k)
	dims := slices.Concat([]int{qs.Dimensions[0]}, data.out, []int{qs.Dimensions[n+2]})
	qf, _ := backend.BufferData(inputs[0])
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(qs.DType, dims...))
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		col2imParallel(out, qf.([]float32), qs.Dimensions, data)
	case []float64:
		col2imParallel(out, qf.([]float64), qs.Dimensions, data)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: col2im of dtype %s", qs.DType)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// col2imKernel writes y (zeroed first) with y[b, s⊙i + d⊙u + off, :] += Q[b, i, u, :] for Q of
// dimensions qDims = [B, I..., Kpos, C].
func col2imKernel[T float32 | float64](y, q []T, qDims []int, p *col2imNodeData) {
	for i := range y {
		y[i] = 0
	}
	n := len(p.k)
	c := qDims[n+2]
	in := qDims[1 : n+1]
	yStrides := make([]int, n)
	st := c
	for a := n - 1; a >= 0; a-- {
		yStrides[a] = st
		st *= p.out[a]
	}
	yBatch := st
	positions := kernelPositions(p.k)
	numI := 1
	for _, d := range in {
		numI *= d
	}
	// Offset in y of each kernel position (relative to the input position's own, s⊙i + off), and the
	// span of d·u on each axis: an input position whose every kernel position lands inside y skips
	// the per-axis checks.
	offU := make([]int, len(positions))
	for pi, u := range positions {
		for a := range n {
			offU[pi] += p.dil[a] * u[a] * yStrides[a]
		}
	}
	spanLo, spanHi := make([]int, n), make([]int, n)
	for a := range n {
		e := p.dil[a] * (p.k[a] - 1)
		spanLo[a], spanHi[a] = min(0, e), max(0, e)
	}
	idx := make([]int, n)
	r := 0 // read position in q
	for b := range qDims[0] {
		for i := range idx {
			idx[i] = 0
		}
		for range numI {
			base, interior := b*yBatch, true
			for a := range n {
				h := p.strides[a]*idx[a] + p.off[a]
				base += h * yStrides[a]
				interior = interior && h+spanLo[a] >= 0 && h+spanHi[a] < p.out[a]
			}
			if interior {
				for _, off := range offU {
					dst, src := y[base+off:base+off+c], q[r:r+c]
					for j, v := range src {
						dst[j] += v
					}
					r += c
				}
			} else {
				for _, u := range positions {
					pos, inside := b*yBatch, true
					for a := range n {
						h := p.strides[a]*idx[a] + p.dil[a]*u[a] + p.off[a]
						if h < 0 || h >= p.out[a] {
							inside = false
							break
						}
						pos += h * yStrides[a]
					}
					if inside {
						dst, src := y[pos:pos+c], q[r:r+c]
						for j, v := range src {
							dst[j] += v
						}
					}
					r += c
				}
			}
			for a := n - 1; a >= 0; a-- {
				idx[a]++
				if idx[a] < in[a] {
					break
				}
				idx[a] = 0
			}
		}
	}
}
