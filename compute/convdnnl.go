package compute

import (
	"runtime"
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
//
// The activations go to oneDNN in NHWC, so an NCHW graph (ONNX's) transposes around each
// convolution. oneDNN 2.7 also takes NCHW source and destination, but runs them on its im2col GEMM
// ("gemm:jit") instead of brgconv: on one core, the small T2I fixture's 3x3 convolutions at 128x128
// (64 to 64 channels), 64x64 (96 to 96) and 16x16 (128 to 128) ran at 118, 123 and 142 GFLOP/s in
// NCHW against 302, 201 and 184 in NHWC (2026-12-06), more than the transposes cost.

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

// convSpec2D is the dnnl.ConvSpec (N set per band) of a convolution over one or two spatial axes,
// given per axis the input size, kernel size, output size, stride, kernel dilation and leading
// padding (pad nil: none), c input and o output channels. A 1-D convolution is a 2-D one over a
// height of 1.
func convSpec2D(in, k, out, stride, dil, pad []int, c, o int) dnnl.ConvSpec {
	s := dnnl.ConvSpec{H: 1, KH: 1, OH: 1, SH: 1, DH: 1, C: c, O: o}
	n := len(k)
	padAt := func(i int) int {
		if pad == nil {
			return 0
		}
		return pad[i]
	}
	s.W, s.KW, s.OW, s.SW, s.DW, s.PL = in[n-1], k[n-1], out[n-1], stride[n-1], dil[n-1], padAt(n-1)
	if n == 2 {
		s.H, s.KH, s.OH, s.SH, s.DH, s.PT = in[0], k[0], out[0], stride[0], dil[0], padAt(0)
	}
	return s
}

// convDNNLBand returns the per-band runner of the fused convolution d on oneDNN (nil when oneDNN is
// not in use or the convolution has more than two spatial axes): it computes y's rows of batch
// entries [lo, hi) and reports whether it did; given the whole of a batch smaller than the cores,
// it cuts each entry into bands of output rows (below). A bias (not nil) is added by the primitive.
func convDNNLBand(y, x, k, bias []float32, xDims []int, d *convGemmNodeData) func(lo, hi int) bool {
	lib := convDNNLLib()
	p := &d.patches
	n := len(p.k)
	if lib == nil || n < 1 || n > 2 {
		return nil
	}
	if smallConvOnGemm(xDims[0], prod(p.out), xDims[n+1]) {
		statConvSmallGemm.Add(1)
		return nil
	}
	spec := convSpec2D(xDims[1:n+1], p.k, p.out, p.strides, p.dil, p.lo, xDims[n+1], d.cout)
	spec.OIHW = d.kOIHW
	kern := dnnl.NewKernel(k, hashRanges) // hashed once for every band (see dnnl.Kernel)
	run := func(s dnnl.ConvSpec, y, x []float32) (bool, error) { return lib.Conv2DKernel(s, y, x, kern, bias) }
	batch := dnnlBands(y, x, xDims[0], run, spec)
	nb := xDims[0]
	rows := convRowParts(nb, spec.OH, nb*prod(p.out)*len(k))
	if n != 2 || rows < 2 {
		return batch
	}
	return func(lo, hi int) bool {
		if lo != 0 || hi != nb { // the batch is already cut over the cores
			return batch(lo, hi)
		}
		return dnnlRowBands(y, x, nb, rows, run, spec)
	}
}

// Row bands: a batch smaller than the cores (one image sampled or served) would run each
// convolution on a single core, since the bands above are whole batch entries. Then each entry's
// output rows are cut into convRowParts bands instead, each one oneDNN call on its own core: the
// band of output rows [r0, r1) reads the input rows from a = r0·SH - PT to e = (r1-1)·SH - PT +
// (KH-1)·DH, clipped to the image, as a convolution of those rows alone with top padding (the
// clipped part above the image) max(0, -a); the padding below follows from the sizes (see
// dnnl.ConvSpec). Each window sees the same input values and kernel taps as in the whole image.

// convRowParts is the number of row bands per batch entry for a batch of nb entries with oh output
// rows and mnk multiply-adds in all: enough bands to give every core one (at most oh), when the
// batch has fewer entries than the cores and each band gets convPartMinMNK multiply-adds; 1 when
// no cut is made.
var convRowParts = func(nb, oh, mnk int) int {
	cores := runtime.GOMAXPROCS(0)
	if nb >= cores || nb < 1 {
		return 1
	}
	parts := min(cores, mnk/convPartMinMNK)
	return max(1, min(oh, (parts+nb-1)/nb))
}

// Small convolutions on im2col and one GEMM. A oneDNN convolution costs a roughly fixed time per call
// beside its kernel's, which dominates on small maps with few channels and a small batch: the
// embedded default's 3x3 convolution on [B, 7, 7, 32] took, as a node (a throwaway benchmark,
// steady state, 2000 calls, 2 cores), 176 / 238-245 / 238 / 216 / 312 / 475-493 microseconds on oneDNN at B = 16 / 32 / 48
// / 64 / 96 / 160, and 103 / 178-182 / 264 / 342 / 514 / 838-848 on im2col and a GEMM. So a
// convolution with at most 64 output positions per image, at most 64 input channels and at most
// 2048 output rows in all (B·positions: batch 32 of 7x7 maps, the training step's, but not batch
// 48) runs on im2col. `hypernoise bench`, the build before it and this one alternated twice: the
// HyperNoise step 39.4 / 33.1 against 27.1 / 27.2 ms; the ReNO iteration (0.535 / 0.532 against
// 0.540 / 0.500 ms per image) and the sample (0.272 / 0.280 against 0.278, and 0.93 once, beside a
// build) unchanged;
// the compute benchmark's conv-net step 28.4 / 29.2 against 30.2 / 31.9 ms, peak 287-300 MB both;
// `hypernoise demo` back to back: 3 min 41 s, 458 MiB against 3 min 00 s, 417 MiB. Extending it to 256
// positions (the 14x14 maps) was slower (26.9-27.2 ms a step), and on the small T2I fixture, whose
// small maps have 128-384 channels, moving its at most 64-position convolutions to im2col made the
// batch-16 forward slower (35.1-35.2 against 33.6-33.7 ms per image).

// smallConvOnGemm says whether a float32 convolution over nb images with pos output positions each
// and cin input channels runs on im2col and a GEMM rather than oneDNN (above); tests may replace it.
var smallConvOnGemm = func(nb, pos, cin int) bool { return pos <= 64 && cin <= 64 && nb*pos <= 2048 }

// statConvSmallGemm counts fused convolutions run on im2col because they are small (for tests).
var statConvSmallGemm atomic.Int64

// statConvDNNLRows counts convolutions run in row bands (for tests).
var statConvDNNLRows atomic.Int64

// dnnlRowBands computes the convolution spec over nb batch entries of x into y, each entry's output
// rows cut into `rows` bands (see above), on the cores; it reports false if oneDNN refused a band (y is then partly
// written, and the caller computes it again).
func dnnlRowBands(y, x []float32, nb, rows int, run func(s dnnl.ConvSpec, y, x []float32) (bool, error), spec dnnl.ConvSpec) bool {
	xb, yb := len(x)/nb, len(y)/nb
	xRow, yRow := spec.W*spec.C, spec.OW*spec.O
	var failed atomic.Bool
	parallelRanges(nb*rows, min(nb*rows, runtime.GOMAXPROCS(0)), 1, func(lo, hi int) {
		for u := lo; u < hi && !failed.Load(); u++ {
			b, part := u/rows, u%rows
			r0, r1 := part*spec.OH/rows, (part+1)*spec.OH/rows
			a := r0*spec.SH - spec.PT
			e := (r1-1)*spec.SH - spec.PT + (spec.KH-1)*spec.DH
			ac, ec := max(0, a), min(spec.H-1, e)
			s := spec
			s.N, s.H, s.OH, s.PT = 1, ec-ac+1, r1-r0, ac-a
			if s.H < 1 {
				failed.Store(true)
				return
			}
			ran, err := run(s, y[b*yb+r0*yRow:b*yb+r1*yRow], x[b*xb+ac*xRow:b*xb+(ec+1)*xRow])
			if !ran || err != nil {
				failed.Store(true)
			}
		}
	})
	if failed.Load() {
		statConvDNNLRefused.Add(1)
		return false
	}
	statConvDNNL.Add(1)
	statConvDNNLRows.Add(1)
	return true
}

// hashRanges runs dnnl.NewKernel's pieces on the cores (the helpers of runBands).
func hashRanges(n int, fn func(lo, hi int)) {
	parallelRanges(n, min(n, runtime.GOMAXPROCS(0)), 1, fn)
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
	dil, pad, flip := make([]int, n), make([]int, n), make([]bool, n) // dilations made positive
	for i := range n {
		dil[i], pad[i] = p.dil[i], -p.off[i]
		if p.dil[i] < 0 {
			dil[i], flip[i] = -p.dil[i], true
			pad[i] = -p.dil[i]*(p.k[i]-1) - p.off[i]
		}
		if pad[i] < 0 || dil[i] == 0 {
			return nil
		}
	}
	spec := convSpec2D(p.out, p.k, xDims[1:n+1], p.strides, dil, pad, d.cout, xDims[n+1])
	if flipH, flipW := n == 2 && flip[0], flip[n-1]; flipH || flipW {
		// A fresh copy on every call: its reordered copy would never be found again.
		k = flipKernel(k, spec.O, spec.KH, spec.KW, spec.C, flipH, flipW)
		return dnnlBands(y, x, xDims[0], func(s dnnl.ConvSpec, y, x []float32) (bool, error) {
			return lib.ConvBackwardData2D(s, y, x, k)
		}, spec)
	}
	kern := dnnl.NewKernel(k, hashRanges)
	return dnnlBands(y, x, xDims[0], func(s dnnl.ConvSpec, y, x []float32) (bool, error) {
		return lib.ConvBackwardData2DKernel(s, y, x, kern)
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
