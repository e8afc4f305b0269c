package compute

import (
	"sync/atomic"

	"github.com/hypernoise/hypernoise/compute/dnnl"
)

// Convolutions on oneDNN's convolution primitive.
//
// When the GEMM library runs its float32 products on oneDNN (compute/blas, package dnnl), a float32
// fused convolution of the im2col form with one or two spatial axes runs on oneDNN's convolution
// primitive instead of im2col and a product: the same sum y[b, o, f] = Σ_{u, c} x̃[b, s⊙o + d⊙u, c] ·
// K[(u, c), f] (K as [Kpos·Cin, Cout] is the HWIO kernel oneDNN takes), computed by its direct
// kernels (brgconv on AVX-512) with the kernel reordered to their layout on each call. The batch is
// cut over the cores as before, each band one call on one thread. A shape oneDNN refuses (or a call
// that fails) runs the im2col path instead, and is counted.

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
	nb := xDims[0]
	xb, yb := len(x)/nb, len(y)/nb
	return func(lo, hi int) bool {
		s := spec
		s.N = hi - lo
		ran, err := lib.Conv2D(s, y[lo*yb:hi*yb], x[lo*xb:hi*xb], k)
		if !ran || err != nil {
			statConvDNNLRefused.Add(1)
			return false
		}
		statConvDNNL.Add(1)
		return true
	}
}
