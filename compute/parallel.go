package compute

import (
	"runtime"
	"slices"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
)

// Element-wise and copying kernels on several cores.
//
// The data-movement kernels of the patched backend (im2col, col2im, Pad, broadcast Add/Sub/Mul) compute
// each output entry from its own inputs, so cutting the output along its leading axis into contiguous
// bands, one goroutine each, gives the same values as one pass. They are cut when each band has at
// least elemParallelMin output entries, into at most GOMAXPROCS bands.

// elemParallelMin is the least number of output entries per band of a cut kernel: a 64 KiB float32
// band, some µs, against well under a µs to hand it to an awake helper (see workers.go). In one
// locked session (the v2 HyperNoise step, 20 steps, two rounds alternated) 2^14 gave 25.4, 26.5 ms a
// step against 28.6, 28.2 for 2^16 and 25.4, 27.2 for 2^12.
const elemParallelMin = 1 << 14

// statParallelOps counts kernel runs that were cut over several goroutines.
var statParallelOps atomic.Int64

// parallelAxis calls fn(lo, hi) on bands of [0, n), n being the size of the axis the output is cut
// along and elems the output's number of entries: on several goroutines when each band gets at least
// elemParallelMin entries, else once, here, on [0, n).
func parallelAxis(n, elems int, fn func(lo, hi int)) {
	parts := 1
	if n > 1 {
		parts = min(runtime.GOMAXPROCS(0), n, elems/elemParallelMin)
	}
	if parts <= 1 {
		fn(0, n)
		return
	}
	statParallelOps.Add(1)
	parallelRanges(n, parts, 1, fn)
}

// withDim0 is dims with its first entry replaced by n.
func withDim0(dims []int, n int) []int {
	d := slices.Clone(dims)
	d[0] = n
	return d
}

// im2colParallel is im2colKernel cut along the batch axis.
func im2colParallel[T float32 | float64](out, x []T, xDims []int, p *im2colNodeData) {
	b := xDims[0]
	if b == 0 || len(out) == 0 {
		return
	}
	ob, xb := len(out)/b, len(x)/b
	parallelAxis(b, len(out), func(lo, hi int) {
		im2colKernel(out[lo*ob:hi*ob], x[lo*xb:hi*xb], withDim0(xDims, hi-lo), p)
	})
}

// col2imParallel is col2imKernel cut along the batch axis.
func col2imParallel[T float32 | float64](y, q []T, qDims []int, p *col2imNodeData) {
	b := qDims[0]
	if b == 0 || len(y) == 0 {
		return
	}
	yb, qb := len(y)/b, len(q)/b
	parallelAxis(b, len(y), func(lo, hi int) {
		col2imKernel(y[lo*yb:hi*yb], q[lo*qb:hi*qb], withDim0(qDims, hi-lo), p)
	})
}

// padParallel is padKernel, cut along the first axis when that axis is not padded.
func padParallel[T float32 | float64](out, x []T, fill T, inDims []int, cfg []backends.PadAxis, outDims []int) {
	n := 0
	if len(inDims) > 1 && cfg[0].Start == 0 && cfg[0].End == 0 && cfg[0].Interior == 0 {
		n = inDims[0]
	}
	if n == 0 || len(out) == 0 {
		padKernel(out, x, fill, inDims, cfg, outDims)
		return
	}
	ob, xb := len(out)/n, len(x)/n
	parallelAxis(n, len(out), func(lo, hi int) {
		padKernel(out[lo*ob:hi*ob], x[lo*xb:hi*xb], fill, withDim0(inDims, hi-lo), cfg, withDim0(outDims, hi-lo))
	})
}

// broadcastBinaryParallel is broadcastBinary cut along the output's first axis longer than 1 (an
// operand broadcast along that axis is passed whole to every band).
func broadcastBinaryParallel[T float32 | float64](op backends.OpType, out, l, r []T, lDims, rDims, outDims []int) {
	a := slices.IndexFunc(outDims, func(d int) bool { return d > 1 })
	if a < 0 || len(out) == 0 {
		broadcastBinary(op, out, l, r, lDims, rDims, outDims)
		return
	}
	n := outDims[a]
	ob := len(out) / n
	lb, rb := 0, 0 // entries per index of axis a, 0 when broadcast along it
	if lDims[a] == n {
		lb = len(l) / n
	}
	if rDims[a] == n {
		rb = len(r) / n
	}
	band := func(dims []int, lo, hi int) []int {
		d := slices.Clone(dims)
		if d[a] == n {
			d[a] = hi - lo
		}
		return d
	}
	parallelAxis(n, len(out), func(lo, hi int) {
		lp, rp := l, r
		if lb > 0 {
			lp = l[lo*lb : hi*lb]
		}
		if rb > 0 {
			rp = r[lo*rb : hi*rb]
		}
		broadcastBinary(op, out[lo*ob:hi*ob], lp, rp, band(lDims, lo, hi), band(rDims, lo, hi),
			band(outDims, lo, hi))
	})
}
