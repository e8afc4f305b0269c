package compute

import (
	"sync/atomic"

	"github.com/hypernoise/hypernoise/compute/dnnl"
)

// Convolutions on oneDNN's convolution primitives.
//
// When the GEMM library runs its float32 products on oneDNN (compute/blas, package dnnl), a float32
// fused convolution with one or two spatial axes runs on oneDNN's convolution primitives: the im2col
// form, y[b, o, f] = Σ_{u, c} x̃[b, s⊙o + d⊙u, c] · K[(u, c), f] (K as [Kpos·Cin, Cout] is the HWIO
// kernel oneDNN takes), on the forward primitive; the scatter form, y[b, h, f] = Σ x[b, i, c] ·
// K[c, (u, f)] over s⊙i + d⊙u + off = h (K as [Cin, Kpos·Cout] is an OHWI kernel), which is the
// input gradient of the forward convolution from y's shape to x's with padding -off, on the
// backward-data primitive. Both run oneDNN's direct kernels (brgconv on AVX-512) with the kernel
// reordered to their layout on each call. The batch is cut over the cores as before, each band one
// call on one thread. A shape oneDNN refuses (or a call that fails) runs the im2col or col2im path
// instead, and is counted.

var (
	statConvDNNL, statConvDNNLRefused atomic.Int64
	// convDNNLOn switches the oneDNN convolutions on (tests compare them with the im2col path).
	convDNNLOn atomic.Bool
)

func init() { convDNNLOn.Store(true) }

// ConvDNNLStats returns how many fused convolution bands ran on oneDNN's convolution primitive and
// how many it refused (those ran on im2col and a product) since the process started.
func ConvDNNLStats() (ran, refused int64) { return statConvDNNL.Load(), statConvDNNLRefused.Load() }

// convDNNLLib is the oneDNN the convolutions run on, nil when float32 products are not on oneDNN.
func convDNNLLib() *dnnl.Lib {
	if !convDNNLOn.Load() || gemm == nil || !gemm.DNNL() {
		return nil
	}
	lib, err := dnnl.Default()
	if err != nil {
		return nil
	}
	return lib
}

// convDNNLBand returns the per-band runner of the fused convolution d on oneDNN (nil when oneDNN is
// not in use or the convolution has more than two spatial axes): it computes y's rows of batch
// entries [lo, hi) and reports whether it did.
func convDNNLBand(y, x, k []float32, xDims []int, d *convGemmNodeData) func(lo, hi int) bool {
	lib := convDNNLLib()
	p := &d.patches
	n := len(p.k)
	if lib == nil || n < 1 || n > 2 {
		return nil
	}
	// A 1-D convolution is a 2-D one over a height of 1.
	spec := dnnl.ConvSpec{H: 1, KH: 1, OH: 1, SH: 1, DH: 1, C: xDims[n+1], O: d.cout}
	spec.W, spec.KW, spec.OW, spec.SW, spec.DW = xDims[n], p.k[n-1], p.out[n-1], p.strides[n-1], p.dil[n-1]
	if p.lo != nil {
		spec.PL = p.lo[n-1]
	}
	if n == 2 {
		spec.H, spec.KH, spec.OH, spec.SH, spec.DH = xDims[1], p.k[0], p.out[0], p.strides[0], p.dil[0]
		if p.lo != nil {
			spec.PT = p.lo[0]
		}
	}
	return dnnlBands(y, x, xDims[0], func(s dnnl.ConvSpec, y, x []float32) (bool, error) { return lib.Conv2D(s, y, x, k) }, spec)
}

// dnnlBands returns the per-band runner of a convolution spec over nb batch entries of x into y.
func dnnlBands(y, x []float32, nb int, run func(s dnnl.ConvSpec, y, x []float32) (bool, error), spec dnnl.ConvSpec) func(lo, hi int) bool {
	xb, yb := len(x)/nb, len(y)/nb
	return func(lo, hi int) bool {
		s := spec
		s.N = hi - lo
		ran, err := run(s, y[lo*yb:hi*yb], x[lo*xb:hi*xb])
		if !ran || err != nil {
			statConvDNNLRefused.Add(1)
			return false
		}
		statConvDNNL.Add(1)
		return true
	}
}

// convDNNLScatterBand is convDNNLBand for the scatter form d: y = the input gradient of the forward
// convolution from y's spatial shape (Cout channels) to x's (Cin channels) with the kernel K
// [Cin, Kpos·Cout] read as OHWI. The lowering scatters through the flipped kernel (negative
// dilations -D, offset off = the padding): h = s·i - D·u + off = s·i + D·u' - (D·(K-1) - off) with
// u' = K-1-u, so the kernel is flipped along such axes (a copy of K, small) and the padding is
// D·(K-1) - off; an axis with a positive dilation D has padding -off. Nil when a padding would be
// negative.
func convDNNLScatterBand(y, x, k []float32, xDims []int, d *convScatterNodeData) func(lo, hi int) bool {
	lib := convDNNLLib()
	p := &d.scatter
	n := len(p.k)
	if lib == nil || n < 1 || n > 2 {
		return nil
	}
	kk := make([]int, 2)  // kernel sizes, 1 for a missing leading axis
	dil := make([]int, 2) // dilations, positive
	pad := make([]int, 2)
	flip := make([]bool, 2)
	kk[0], dil[0] = 1, 1
	for i := range n {
		a := i + 2 - n
		kk[a], dil[a], pad[a] = p.k[i], p.dil[i], -p.off[i]
		if p.dil[i] < 0 {
			dil[a], flip[a] = -p.dil[i], true
			pad[a] = -p.dil[i]*(p.k[i]-1) - p.off[i]
		}
		if pad[a] < 0 || dil[a] == 0 {
			return nil
		}
	}
	spec := dnnl.ConvSpec{H: 1, OH: 1, SH: 1, C: d.cout, O: xDims[n+1],
		KH: kk[0], KW: kk[1], DH: dil[0], DW: dil[1], PT: pad[0], PL: pad[1]}
	spec.W, spec.OW, spec.SW = p.out[n-1], xDims[n], p.strides[n-1]
	if n == 2 {
		spec.H, spec.OH, spec.SH = p.out[0], xDims[1], p.strides[0]
	}
	if flip[0] || flip[1] {
		k = flipKernel(k, spec.O, kk[0], kk[1], spec.C, flip[0], flip[1])
	}
	return dnnlBands(y, x, xDims[0], func(s dnnl.ConvSpec, y, x []float32) (bool, error) {
		return lib.ConvBackwardData2D(s, y, x, k)
	}, spec)
}

// flipKernel returns a copy of k [O, KH, KW, C] reversed along KH and/or KW.
func flipKernel(k []float32, o, kh, kw, c int, flipH, flipW bool) []float32 {
	out := make([]float32, o*kh*kw*c)
	for a := range o {
		for u := range kh {
			su := u
			if flipH {
				su = kh - 1 - u
			}
			for v := range kw {
				sv := v
				if flipW {
					sv = kw - 1 - v
				}
				copy(out[((a*kh+u)*kw+v)*c:][:c], k[((a*kh+su)*kw+sv)*c:][:c])
			}
		}
	}
	return out
}
