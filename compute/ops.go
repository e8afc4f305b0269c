// Package compute makes GoMLX's pure-Go backend fit for training the project's models, and picks
// the backend. It is the only package that knows about the backend's gaps.
//
// Importing it (for any reason) installs the fixes:
//
//   - the textbook two-matmul gradients for Dot and DotGeneral in graph.VJPRegistration (GoMLX's own rule
//     materialises an [i,j,k] broadcast product: ~20x slower and ~50x more memory on an MLP step);
//   - a patched pure-Go backend registered as "go" (GoMLX's SimpleGo plus Pad, Reverse and ConvGeneral
//     fixes; the original stays available as "go-stock"), which also becomes backends.New()'s default;
//   - on that backend, every float32/float64 DotGeneral runs on OpenBLAS's GEMM when the library is
//     installed (loaded at run time by compute/blas; see fastdot.go, MatmulPath, MatmulStats), with
//     SimpleGo's own kernel as the fallback.
//
// CONTRACT (other packages call exactly these; implementations may change):
//
//	Conv2D(x, kernel, stride)      x [B,H,W,Cin] (NHWC), kernel [kh,kw,Cin,Cout], "same" padding
//	                               (output spatial size ceil(H/stride)), returns [B,H',W',Cout].
//	GroupNorm(x, groups, epsilon)  x [B,...,C] channels-last; normalizes over all non-batch axes of each
//	                               channel group to zero mean and unit variance (no affine).
//	Upsample2x(x)                  x [B,H,W,C] -> [B,2H,2W,C], nearest neighbour, differentiable.
//	NewBackend(name)               "go" (default), "go-stock", "xla[:plugin]"; see Available.
//
// It also defines gradients GoMLX v0.26 lacks (Pad, Reverse, Rsqrt, Expm1, Clamp/Clip) and exports
// CheckGradient, a finite-difference gradient checker for tests.
package compute

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// panicf panics with an error, as GoMLX's graph-building functions do (graph execution turns such panics
// into returned errors).
func panicf(format string, args ...any) { panic(fmt.Errorf(format, args...)) }

// Conv2D computes the 2-D cross-correlation with "same" zero padding p = (k-1)/2 on each side:
//
//	y[b,i,j,o] = Σ_{u<kh, v<kw, c<Cin} x[b, s·i+u-ph, s·j+v-pw, c] · k[u,v,c,o]
//
// for x [B,H,W,Cin] (NHWC), kernel [kh,kw,Cin,Cout] with odd kh, kw, and stride s ≥ 1, giving
// y [B, ceil(H/s), ceil(W/s), Cout] — the same values as graph.Convolve(x, k).Strides(s).PadSame().
//
// It is one graph.ConvGeneral: XLA runs it natively; the patched pure-Go backend runs it as im2col (one
// patch-extraction node, then one matrix product on the GEMM), and its gradient is this package's
// corrected rule (conv_vjp.go), whose input gradient is again such a convolution.
func Conv2D(x, kernel *graph.Node, stride int) *graph.Node {
	if x.Rank() != 4 || kernel.Rank() != 4 {
		panicf("compute.Conv2D: x must be [B,H,W,Cin] and kernel [kh,kw,Cin,Cout], got %s and %s",
			x.Shape(), kernel.Shape())
	}
	dims, kdims := x.Shape().Dimensions, kernel.Shape().Dimensions
	cin := dims[3]
	kh, kw, kcin := kdims[0], kdims[1], kdims[2]
	switch {
	case kcin != cin:
		panicf("compute.Conv2D: kernel %s expects %d input channels, x %s has %d",
			kernel.Shape(), kcin, x.Shape(), cin)
	case kh%2 != 1 || kw%2 != 1:
		panicf("compute.Conv2D: kernel spatial sizes must be odd, got %dx%d", kh, kw)
	case stride < 1:
		panicf("compute.Conv2D: stride must be >= 1, got %d", stride)
	case x.DType() != kernel.DType():
		panicf("compute.Conv2D: x dtype %s != kernel dtype %s", x.DType(), kernel.DType())
	}
	ph, pw := (kh-1)/2, (kw-1)/2
	axes := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	return graph.ConvGeneral(x, kernel, axes, []int{stride, stride}, [][2]int{{ph, ph}, {pw, pw}},
		[]int{1, 1}, []int{1, 1}, 1, 1)
}

// GroupNorm normalises x [B, ..., C] (channels last, C divisible by groups) per batch entry and per group
// of C/groups consecutive channels, over all non-batch axes of the group's channels:
//
//	μ = mean(x_g),  σ² = mean((x_g-μ)²),  y_g = (x_g-μ)/√(σ²+ε)
//
// with no learned scale or offset. Built from reductions, so it has a gradient everywhere.
func GroupNorm(x *graph.Node, groups int, epsilon float64) *graph.Node {
	if x.Rank() < 2 {
		panicf("compute.GroupNorm: x must be [B,...,C], got %s", x.Shape())
	}
	dims := x.Shape().Dimensions
	c := dims[len(dims)-1]
	if groups < 1 || c%groups != 0 {
		panicf("compute.GroupNorm: %d channels are not divisible into %d groups", c, groups)
	}
	middle := 1
	for _, d := range dims[1 : len(dims)-1] {
		middle *= d
	}
	xg := graph.Reshape(x, dims[0], middle, groups, c/groups)
	mean := graph.ReduceAndKeep(xg, graph.ReduceMean, 1, 3)
	centred := graph.Sub(xg, mean)
	variance := graph.ReduceAndKeep(graph.Square(centred), graph.ReduceMean, 1, 3)
	eps := graph.Scalar(x.Graph(), x.DType(), epsilon)
	y := graph.Mul(centred, graph.Rsqrt(graph.Add(variance, eps)))
	return graph.ReshapeWithShape(y, shapes.Make(x.DType(), dims...))
}

// Upsample2x repeats each pixel of x [B,H,W,C] into a 2x2 block: y[b,2i+di,2j+dj,c] = x[b,i,j,c]
// for di, dj ∈ {0,1}, giving [B,2H,2W,C]. It is a broadcast and a reshape, so its gradient is the sum
// over each 2x2 block.
func Upsample2x(x *graph.Node) *graph.Node {
	if x.Rank() != 4 {
		panicf("compute.Upsample2x: x must be [B,H,W,C], got %s", x.Shape())
	}
	d := x.Shape().Dimensions
	y := graph.InsertAxes(x, 2, 3)                             // [B,H,1,W,1,C]
	y = graph.BroadcastToDims(y, d[0], d[1], 2, d[2], 2, d[3]) // [B,H,2,W,2,C]
	return graph.Reshape(y, d[0], 2*d[1], 2*d[2], d[3])
}
