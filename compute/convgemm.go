package compute

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// A convolution without channel groups as one node: im2col and the GEMM fused, chunk by chunk.
//
// With x [B, S..., Cin] and the kernel as a matrix K [Kpos·Cin, Cout], the node computes
//
//	y[b, o, :] = P[b, o, :] · K,      P[b, o, (u, c)] = x̃[b, s⊙o + d⊙u, c]      y: [B, O..., Cout]
//
// the same product as the im2col node followed by one DotGeneral (see lowerConv), but P is never
// materialized whole: a few batch entries at a time are extracted into a cache-sized scratch matrix and
// multiplied at once, and when the work is large enough the batch is cut in contiguous bands, one per
// core, each running its own im2col and GEMM. Each output row is still one dot product of a patch row
// with a column of K over the same Kpos·Cin terms.
//
// With kOIHW the node's kernel input is the convolution's kernel in the layout [Cout, Cin, K...]
// (only built when oneDNN's forward primitive runs it, which takes that layout; a band it refuses
// runs on a transposed copy, K).
type convGemmNodeData struct {
	patches im2colNodeData // the patch extraction (its lo pads x with zeros)
	cout    int
	kOIHW   bool
	bias    bool // a third input, bias [Cout], is added to every output row (see convbias.go)
}

// statConvOIHW counts fused convolutions built on an OIHW kernel (for tests).
var statConvOIHW atomic.Int64

// convChunkElems is the size, in values, of the scratch patch matrix of one chunk (512 KiB of float32):
// it and the GEMM's packed blocks stay in a core's L2 cache (4 MiB here). convPartMinMNK is the least
// number of multiply-adds per goroutine of a fused convolution. With OpenBLAS and a new goroutine per
// band (06:01, the v2 HyperNoise step, three rounds alternated), 2^15 values gave 37.2, 35.4, 37.3 ms
// a step against 37.9, 39.5, 39.5 for 2^16 and 4·2^20 (the DotGeneral split's floor). With oneDNN and
// the awake helpers (06:47, same step, 20 steps, three rounds alternated) 2^17 gave 25.4, 24.5, 25.4
// ms against 26.4, 25.9, 27.0 for 2^15.
const (
	convChunkElems = 1 << 17
	convPartMinMNK = 1 << 20
)

// convFuseOn switches the fused node on (tests compare it with the unfused lowering).
var convFuseOn atomic.Bool

func init() { convFuseOn.Store(true) }

// statConvFused counts fused convolutions built; statConvFusedSplit those run on several goroutines.
var statConvFused, statConvFusedSplit atomic.Int64

// convGemmNode builds the fused node from xc [B, S..., Cin] and km [Kpos·Cin, Cout] (kOIHW: the
// kernel [Cout, Cin, K...]), or returns ok=false when it does not apply (custom nodes off, no GEMM
// library on this backend, negative padding).
func (b *patchedBuilder) convGemmNode(xc, km backends.Op, kOIHW bool, k, strides, dil, out []int, pads [][2]int, cout int) (backends.Op, bool, error) {
	xs, ok, err := b.convFusable(xc, km, len(k))
	if !ok || err != nil {
		return nil, false, err
	}
	n := len(k)
	kpos, lo, err := patchLayout(xs.Dimensions, k, strides, dil, out, pads)
	if errors.Is(err, errNegativePad) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("conv: %w", err)
	}
	ks, err := b.OpShape(km)
	if err != nil {
		return nil, false, err
	}
	want := []int{kpos * xs.Dimensions[n+1], cout}
	if kOIHW {
		want = slices.Concat([]int{cout, xs.Dimensions[n+1]}, k)
	}
	if !slices.Equal(ks.Dimensions, want) || ks.DType != xs.DType {
		return nil, false, fmt.Errorf("conv: kernel %s for input %s and kernel %v (OIHW: %v)", ks, xs, k, kOIHW)
	}
	node, ok, err := b.convFusedNode(xc, km, xs, out, cout, &convGemmNodeData{patches: im2colNodeData{k: slices.Clone(k),
		strides: slices.Clone(strides), dil: slices.Clone(dil), out: slices.Clone(out), lo: lo}, cout: cout, kOIHW: kOIHW})
	if ok && kOIHW {
		statConvOIHW.Add(1)
	}
	return node, ok, err
}

// convFusable reports whether a fused convolution node applies to xc [B, S..., Cin] (n spatial
// axes) and km: custom nodes and the GEMM library on for this backend, both operands SimpleGo nodes,
// float32 or float64. It returns xc's shape.
func (b *patchedBuilder) convFusable(xc, km backends.Op, n int) (shapes.Shape, bool, error) {
	if !b.fastPad || !b.fastGemm || !padNodeOn.Load() || !convFuseOn.Load() {
		return shapes.Shape{}, false, nil
	}
	_, ok1 := xc.(*simplego.Node)
	_, ok2 := km.(*simplego.Node)
	if !ok1 || !ok2 {
		return shapes.Shape{}, false, nil
	}
	xs, err := b.OpShape(xc)
	if err != nil {
		return shapes.Shape{}, false, err
	}
	if xs.Rank() != n+2 || (xs.DType != dtypes.Float32 && xs.DType != dtypes.Float64) {
		return shapes.Shape{}, false, nil
	}
	return xs, true, nil
}

// convFusedNode builds a fused convolution node (either form, by data) from xc (shape xs) and km,
// with output [B, out..., cout].
func (b *patchedBuilder) convFusedNode(xc, km backends.Op, xs shapes.Shape, out []int, cout int, data any) (backends.Op, bool, error) {
	dims := slices.Concat([]int{xs.Dimensions[0]}, out, []int{cout})
	node := simplegoNewNode(b.Builder, backends.OpTypePad, shapes.Make(xs.DType, dims...),
		xc.(*simplego.Node), km.(*simplego.Node))
	if !setNodeData(node, data) {
		return nil, false, nil
	}
	statConvFused.Add(1)
	return node, true, nil
}

// execConvGemm runs a fused convolution node.
func execConvGemm(backend *simplego.Backend, data *convGemmNodeData, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	var bias any
	if data.bias {
		bias, _ = backend.BufferData(inputs[2])
	}
	return execConvNode(backend, inputs, data.patches.out, data.cout,
		func(y, x, k []float32, xDims []int) { convGemmRun(y, x, k, xDims, data, asSlice[float32](bias)) },
		func(y, x, k []float64, xDims []int) { convGemmRun(y, x, k, xDims, data, asSlice[float64](bias)) })
}

// asSlice is v as a []T, nil when it is not one.
func asSlice[T any](v any) []T {
	s, _ := v.([]T)
	return s
}

// execConvNode runs a fused convolution node of either form: it allocates the output [batch,
// out..., cout] for the input x (inputs[0]) and kernel matrix (inputs[1]) and fills it with run32
// or run64 by dtype.
func execConvNode(backend *simplego.Backend, inputs []*simplego.Buffer, out []int, cout int,
	run32 func(y, x, k []float32, xDims []int), run64 func(y, x, k []float64, xDims []int)) (*simplego.Buffer, error) {
	if gemm == nil {
		return nil, fmt.Errorf("compute: fused convolution without a GEMM library")
	}
	xs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	xf, _ := backend.BufferData(inputs[0])
	kf, _ := backend.BufferData(inputs[1])
	dims := slices.Concat([]int{xs.Dimensions[0]}, out, []int{cout})
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(xs.DType, dims...))
	if err != nil {
		return nil, err
	}
	switch y := outFlat.(type) {
	case []float32:
		run32(y, xf.([]float32), kf.([]float32), xs.Dimensions)
	case []float64:
		run64(y, xf.([]float64), kf.([]float64), xs.Dimensions)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: fused convolution of dtype %s", xs.DType)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// convScratch holds scratch patch matrices between runs.
var convScratch sync.Pool

// convGemmParts is the number of goroutines a fused convolution of nb batch entries runs on: as for a
// DotGeneral (see gemmParts), one for float64 and for a library that may not be called concurrently,
// else up to GOMAXPROCS with at least convPartMinMNK multiply-adds per part. The cut is between whole
// batch entries.
var convGemmParts = func(f32 bool, nb, mnk int) int {
	if !f32 || gemm == nil || !gemm.Concurrent32() {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), nb, mnk/convPartMinMNK))
}

// convGemmRun computes y = im2col(x)·K (+ bias in every row when bias is not nil). float32 runs in chunks of whole batch entries of about
// convChunkElems patch values, split over cores (convGemmParts); float64 runs as one im2col and one
// GEMM, exactly the unfused lowering.
func convGemmRun[T gemmFloat](y, x, k []T, xDims []int, d *convGemmNodeData, bias []T) {
	nb := xDims[0]
	if nb == 0 || len(y) == 0 {
		return
	}
	numO := prod(d.patches.out)
	kk := len(k) / d.cout // Kpos·Cin
	perB := numO * kk     // patch values per batch entry
	xb, yb := len(x)/nb, numO*d.cout
	var fast func(lo, hi int) bool
	if y32, ok := any(y).([]float32); ok {
		fast = convDNNLBand(y32, any(x).([]float32), any(k).([]float32), any(bias).([]float32), xDims, d)
	}
	// A band oneDNN did not run multiplies by K [Kpos·Cin, Cout]: an OIHW kernel [Cout, Cin, Kpos]
	// is transposed into it once per call, by the first such band.
	km := k
	var once sync.Once
	convChunks(nb, perB, nb*numO*kk*d.cout, fast, func(p []T, b, c int) {
		if d.kOIHW {
			once.Do(func() {
				statConvOIHWFallback.Add(1)
				kpos := prod(d.patches.k)
				km = make([]T, len(k))
				transposeInto(km, k, []int{d.cout, kk / kpos, kpos}, []int{2, 1, 0})
			})
		}
		im2colKernel(p, x[b*xb:(b+c)*xb], withDim0(xDims, c), &d.patches)
		yc := y[b*yb : (b+c)*yb]
		gemmCall(false, false, c*numO, d.cout, kk, p, kk, km, d.cout, yc, d.cout)
		if bias != nil {
			for r := 0; r < len(yc); r += d.cout {
				row := yc[r : r+d.cout]
				for j, v := range bias[:d.cout] {
					row[j] += v
				}
			}
		}
	})
}

// statConvOIHWFallback counts runs of fused convolutions on an OIHW kernel that needed the
// transposed copy (some band not run by oneDNN).
var statConvOIHWFallback atomic.Int64

// prod is the product of the sizes xs (1 for none): the number of positions of a kernel or an
// output of those spatial sizes.
func prod(xs []int) int {
	n := 1
	for _, v := range xs {
		n *= v
	}
	return n
}

// convChunks calls step(scratch, b, c) on consecutive chunks [b, b+c) of [0, nb), scratch holding
// c·perB values: for float32, chunks of about convChunkElems values, on convGemmParts goroutines (for
// mnk multiply-adds in all), each with its own scratch; for float64, one chunk. When fast is not nil
// each goroutine first offers its whole band [lo, hi) to fast, and runs the chunks only if it
// returns false.
func convChunks[T gemmFloat](nb, perB, mnk int, fast func(lo, hi int) bool, step func(scratch []T, b, c int)) {
	_, f32 := any(T(0)).(float32)
	chunk := nb
	if f32 {
		chunk = max(1, convChunkElems/perB)
	}
	band := func(lo, hi int) {
		if fast != nil && fast(lo, hi) {
			return
		}
		c0 := min(chunk, hi-lo)
		sp := poolSlice[T](&convScratch, c0*perB)
		for b := lo; b < hi; b += chunk {
			c := min(chunk, hi-b)
			step((*sp)[:c*perB], b, c)
		}
		convScratch.Put(sp)
	}
	parts := convGemmParts(f32, nb, mnk)
	if parts <= 1 {
		band(0, nb)
		return
	}
	statConvFusedSplit.Add(1)
	parallelRanges(nb, parts, 1, band)
}

// A stride-1 convolution in the scatter form of lowerDilatedConv, fused the same way: with x
// [B, I..., Cin] and the kernel as a matrix K [Cin, Kpos·Cout], chunk by chunk of batch entries,
//
//	Q[b, i, (u, f)] = x[b, i, :] · K[:, (u, f)]       y[b, h, f] = Σ_{i,u: s⊙i + d⊙u + off = h} Q[b, i, u, f]
//
// the DotGeneral and the col2im node of the unfused form, without holding all of Q.
type convScatterNodeData struct {
	scatter    col2imNodeData
	kpos, cout int
}

// convScatterNode builds the fused node from xc [B, I..., Cin] and km [Cin, Kpos·Cout], or returns
// ok=false when it does not apply.
func (b *patchedBuilder) convScatterNode(xc, km backends.Op, k, strides, dil, off, out []int, cout int) (backends.Op, bool, error) {
	xs, ok, err := b.convFusable(xc, km, len(k))
	if !ok || err != nil {
		return nil, false, err
	}
	n := len(k)
	kpos := 1
	for _, v := range k {
		kpos *= v
	}
	ks, err := b.OpShape(km)
	if err != nil {
		return nil, false, err
	}
	if !slices.Equal(ks.Dimensions, []int{xs.Dimensions[n+1], kpos * cout}) || ks.DType != xs.DType {
		return nil, false, fmt.Errorf("conv: kernel matrix %s for input %s and %d kernel positions", ks, xs, kpos)
	}
	return b.convFusedNode(xc, km, xs, out, cout, &convScatterNodeData{scatter: col2imNodeData{k: slices.Clone(k),
		strides: slices.Clone(strides), dil: slices.Clone(dil), off: slices.Clone(off), out: slices.Clone(out)},
		kpos: kpos, cout: cout})
}

// execConvScatter runs a fused scatter-form convolution node.
func execConvScatter(backend *simplego.Backend, data *convScatterNodeData, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	return execConvNode(backend, inputs, data.scatter.out, data.cout,
		func(y, x, k []float32, xDims []int) { convScatterRun(y, x, k, xDims, data) },
		func(y, x, k []float64, xDims []int) { convScatterRun(y, x, k, xDims, data) })
}

// convScatterRun computes y = col2im(x·K), chunk by chunk (see convChunks).
func convScatterRun[T gemmFloat](y, x, k []T, xDims []int, d *convScatterNodeData) {
	nb := xDims[0]
	if nb == 0 || len(y) == 0 {
		return
	}
	n := len(d.scatter.k)
	numI := 1
	for _, v := range xDims[1 : n+1] {
		numI *= v
	}
	cin, w := xDims[n+1], d.kpos*d.cout
	xb, yb := len(x)/nb, len(y)/nb
	qDims := slices.Concat(xDims[:n+1], []int{d.kpos, d.cout})
	var fast func(lo, hi int) bool
	if y32, ok := any(y).([]float32); ok {
		fast = convDNNLScatterBand(y32, any(x).([]float32), any(k).([]float32), xDims, d)
	}
	convChunks(nb, numI*w, nb*numI*cin*w, fast, func(q []T, b, c int) {
		gemmCall(false, false, c*numI, w, cin, x[b*xb:(b+c)*xb], cin, k, w, q, w)
		col2imKernel(y[b*yb:(b+c)*yb], q, withDim0(qDims, c), &d.scatter)
	})
}
