package compute

import (
	"fmt"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	_ "unsafe" // for go:linkname

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"github.com/hypernoise/hypernoise/compute/blas"
)

// The fast matrix product.
//
// SimpleGo computes DotGeneral with scalar Go loops (about 4% of this machine's sgemm peak). On the
// patched backend, every float32 and float64 DotGeneral runs instead on an optimized GEMM (OpenBLAS,
// loaded at run time by package blas) when the library is installed:
//
//	C[b, i, j] = Σ_k A[b, i, k] · B[b, j, k]
//
// where b runs over the flattened batch axes, i over lhs's cross axes, j over rhs's cross axes and k over
// the contracting axes, in the order SimpleGo's normalized output [batch, lhsCross, rhsCross] expects.
// An operand whose axes are stored as [batch, cross, contracting] or [batch, contracting, cross] is
// handed to the GEMM as it is (with a transpose flag); any other order is first copied into
// [batch, cross, contracting]. So every layout runs on the GEMM; only other dtypes (integers, half
// floats) take SimpleGo's own kernel, and those are counted (see MatmulStats).
//
// SimpleGo's executor table is unexported, so this reaches it with go:linkname, and reads DotGeneral's
// parameters from the node by reflection. Both depend on GoMLX v0.26.0's internals: the first use checks
// the parameters' layout, and the first patched backend runs a self-test (several layouts against
// SimpleGo's own kernel); if either fails, the hook stays out and SimpleGo's kernel runs, and
// MatmulPath says why. Backends other than the patched one ("go-stock") always run SimpleGo's kernel.

// simplegoExecutor has the same underlying type as simplego's unexported nodeExecutor.
type simplegoExecutor func(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	inputsOwned []bool) (*simplego.Buffer, error)

//go:linkname simplegoNodeExecutors github.com/gomlx/gomlx/backends/simplego.nodeExecutors
var simplegoNodeExecutors [backends.OpTypeLast]simplegoExecutor

var (
	// stockDotGeneralExec is SimpleGo's own DotGeneral executor, saved before the hook replaces it.
	stockDotGeneralExec simplegoExecutor

	// fastBackends holds the *simplego.Backend values (inside patched backends) whose DotGeneral runs on
	// the GEMM.
	fastBackends sync.Map

	hookOnce  sync.Once
	hookState atomic.Pointer[matmulState]

	statFast, statTransposed, statFallback, statSplit atomic.Int64
	fallbackMu                                        sync.Mutex
	fallbackReasons                                   = map[string]int64{}
)

// matmulState is what MatmulPath reports.
type matmulState struct {
	lib    *blas.Library // nil when the fast path is off
	reason string        // why it is off (empty when on)
}

// MatmulInfo says which matrix product the patched backend uses.
type MatmulInfo struct {
	// Fast is true when DotGeneral runs on an optimized GEMM.
	Fast bool `json:"fast"`
	// Path is "onednn+openblas" (float32 products on oneDNN, float64 on OpenBLAS), "openblas" or
	// "pure-go".
	Path string `json:"path"`
	// Library is the loaded library's file and configuration, when Fast.
	Library string `json:"library,omitempty"`
	// Cores is how many goroutines (so cores) one large float32 product is spread over: GOMAXPROCS
	// with a library that may be called from several threads at once, else 1.
	Cores int `json:"cores,omitempty"`
	// Reason says why the fast path is off, and how to get it.
	Reason string `json:"reason,omitempty"`
	// Faster, on the fast path without oneDNN, says why float32 products are not on oneDNN and how
	// to get it.
	Faster string `json:"faster,omitempty"`
}

// MatmulPath says which matrix product the patched ("go") backend runs, installing the fast path first if
// it has not been tried yet.
func MatmulPath() MatmulInfo {
	installFastDot()
	s := hookState.Load()
	if s.lib != nil {
		cores := 1
		if s.lib.Concurrent32() {
			cores = runtime.GOMAXPROCS(0)
		}
		path := "openblas"
		if s.lib.DNNL() {
			path = "onednn+openblas"
		}
		return MatmulInfo{Fast: true, Path: path, Library: s.lib.String(), Cores: cores, Faster: s.lib.DNNLWhy}
	}
	return MatmulInfo{Path: "pure-go", Reason: s.reason}
}

// MatmulPathFor says which matrix product backend runs: MatmulPath's answer for a patched backend,
// SimpleGo's own kernel for "go-stock" or a patched backend started with "blas=off", and the backend's
// own name (Fast true) for any other backend, such as XLA, which brings its own.
func MatmulPathFor(backend backends.Backend) MatmulInfo {
	switch b := backend.(type) {
	case *patchedBackend:
		info := MatmulPath()
		if _, on := fastBackends.Load(b.Backend); info.Fast && !on {
			return MatmulInfo{Path: "pure-go", Reason: "turned off by the backend option blas=off"}
		}
		return info
	case *simplego.Backend:
		return MatmulInfo{Path: "pure-go", Reason: "the unpatched SimpleGo backend (" + StockName + ") always uses its own"}
	case nil:
		return MatmulInfo{Path: "none", Reason: "no backend"}
	}
	return MatmulInfo{Fast: true, Path: backend.Name()}
}

// MatmulCounters counts DotGeneral executions on patched backends since the process started.
type MatmulCounters struct {
	Fast       int64            `json:"fast"`       // run on the GEMM
	Transposed int64            `json:"transposed"` // of those, operands first copied to another axis order
	Fallback   int64            `json:"fallback"`   // run on SimpleGo's kernel
	Split      int64            `json:"split"`      // of the fast ones, spread over several cores
	Reasons    map[string]int64 `json:"reasons,omitempty"`
}

// MatmulStats returns the DotGeneral counters.
func MatmulStats() MatmulCounters {
	fallbackMu.Lock()
	defer fallbackMu.Unlock()
	return MatmulCounters{Fast: statFast.Load(), Transposed: statTransposed.Load(), Fallback: statFallback.Load(),
		Split: statSplit.Load(), Reasons: maps.Clone(fallbackReasons)}
}

func countFallback(reason string) {
	statFallback.Add(1)
	fallbackMu.Lock()
	fallbackReasons[reason]++
	fallbackMu.Unlock()
}

// installFastDot loads the GEMM library, puts the hook into SimpleGo's executor table and runs the
// self-test, once. On any failure it leaves SimpleGo's table as it was.
func installFastDot() {
	hookOnce.Do(func() {
		lib, err := blas.Default()
		if err != nil {
			hookState.Store(&matmulState{reason: err.Error()})
			return
		}
		stockDotGeneralExec = simplegoNodeExecutors[backends.OpTypeDotGeneral]
		if stockDotGeneralExec == nil {
			hookState.Store(&matmulState{reason: "SimpleGo's executor table is not laid out as in GoMLX v0.26.0 " +
				"(no DotGeneral entry); using its own matrix product"})
			return
		}
		gemm = lib
		simplegoNodeExecutors[backends.OpTypeDotGeneral] = fastDotGeneral
		if err := selfTestFastDot(); err != nil {
			simplegoNodeExecutors[backends.OpTypeDotGeneral] = stockDotGeneralExec
			hookState.Store(&matmulState{reason: "the OpenBLAS matrix product failed its start-up self-test (" +
				err.Error() + "); using SimpleGo's own"})
			return
		}
		hookState.Store(&matmulState{lib: lib})
	})
}

// gemm is the loaded library the hook calls.
var gemm *blas.Library

// enableFastDot marks a SimpleGo backend (inside a patched one) as running DotGeneral on the GEMM, if
// the fast path is installed. It reports whether it did.
func enableFastDot(sb *simplego.Backend) bool {
	installFastDot()
	if hookState.Load().lib == nil {
		return false
	}
	fastBackends.Store(sb, true)
	return true
}

// dotParams are DotGeneral's static parameters, as SimpleGo stores them on the node.
type dotParams struct {
	lhsContracting, lhsBatch, rhsContracting, rhsBatch []int
	batch, lhsCross, rhsCross, contracting             int
}

// dotParamsLayout caches where those parameters live, found by reflection on first use.
var (
	dotLayoutOnce sync.Once
	dotLayoutErr  error
	nodeDataIndex int
	dotFieldIndex map[string]int
	dotDataType   reflect.Type
)

// dotParamsFields are the fields of simplego's dotGeneralNodeData this code reads, with their kinds.
var dotParamsFields = map[string]reflect.Kind{
	"lhsContractingAxes": reflect.Slice, "lhsBatchAxes": reflect.Slice,
	"rhsContractingAxes": reflect.Slice, "rhsBatchAxes": reflect.Slice,
	"batchSize": reflect.Int, "lhsCrossSize": reflect.Int, "rhsCrossSize": reflect.Int, "contractingSize": reflect.Int,
}

// checkDotLayout verifies, from one DotGeneral node, that SimpleGo keeps its parameters where this code
// reads them: the node's field "data" holds a pointer to a struct "dotGeneralNodeData" with the fields
// of dotParamsFields.
func checkDotLayout(node *simplego.Node) {
	dotLayoutOnce.Do(func() {
		nt := reflect.TypeOf(simplego.Node{})
		f, ok := nt.FieldByName("data")
		if !ok || f.Type.Kind() != reflect.Interface || len(f.Index) != 1 {
			dotLayoutErr = fmt.Errorf("simplego.Node has no interface field \"data\"")
			return
		}
		nodeDataIndex = f.Index[0]
		data := reflect.ValueOf(node).Elem().Field(nodeDataIndex)
		if data.IsNil() || data.Elem().Kind() != reflect.Pointer || data.Elem().Elem().Kind() != reflect.Struct {
			dotLayoutErr = fmt.Errorf("DotGeneral node data is not a pointer to a struct")
			return
		}
		dt := data.Elem().Elem().Type()
		if dt.Name() != "dotGeneralNodeData" {
			dotLayoutErr = fmt.Errorf("DotGeneral node data has type %s", dt)
			return
		}
		dotFieldIndex = map[string]int{}
		for name, kind := range dotParamsFields {
			sf, ok := dt.FieldByName(name)
			if !ok || sf.Type.Kind() != kind || (kind == reflect.Slice && sf.Type.Elem().Kind() != reflect.Int) {
				dotLayoutErr = fmt.Errorf("dotGeneralNodeData.%s missing or of another type", name)
				return
			}
			dotFieldIndex[name] = sf.Index[0]
		}
		dotDataType = dt
	})
}

// readDotParams reads a DotGeneral node's parameters; ok is false if the layout is not the expected one.
func readDotParams(node *simplego.Node) (p dotParams, ok bool) {
	checkDotLayout(node)
	if dotLayoutErr != nil {
		return p, false
	}
	data := reflect.ValueOf(node).Elem().Field(nodeDataIndex)
	if data.IsNil() {
		return p, false
	}
	s := data.Elem()
	if s.Kind() != reflect.Pointer || s.IsNil() || s.Elem().Type() != dotDataType {
		return p, false
	}
	s = s.Elem()
	ints := func(name string) []int {
		f := s.Field(dotFieldIndex[name])
		out := make([]int, f.Len())
		for i := range out {
			out[i] = int(f.Index(i).Int())
		}
		return out
	}
	p.lhsContracting, p.lhsBatch = ints("lhsContractingAxes"), ints("lhsBatchAxes")
	p.rhsContracting, p.rhsBatch = ints("rhsContractingAxes"), ints("rhsBatchAxes")
	p.batch = int(s.Field(dotFieldIndex["batchSize"]).Int())
	p.lhsCross = int(s.Field(dotFieldIndex["lhsCrossSize"]).Int())
	p.rhsCross = int(s.Field(dotFieldIndex["rhsCrossSize"]).Int())
	p.contracting = int(s.Field(dotFieldIndex["contractingSize"]).Int())
	return p, true
}

// fastDotGeneral replaces SimpleGo's DotGeneral executor. It runs SimpleGo's own unless the backend is a
// patched one and the operands are float32 or float64.
func fastDotGeneral(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	inputsOwned []bool) (*simplego.Buffer, error) {
	if _, ok := fastBackends.Load(backend); !ok {
		return stockDotGeneralExec(backend, node, inputs, inputsOwned)
	}
	p, ok := readDotParams(node)
	if !ok {
		countFallback("SimpleGo's DotGeneral parameters are not laid out as expected")
		return stockDotGeneralExec(backend, node, inputs, inputsOwned)
	}
	lhsShape, err1 := backend.BufferShape(inputs[0])
	rhsShape, err2 := backend.BufferShape(inputs[1])
	if err1 != nil || err2 != nil {
		countFallback("unreadable operand shapes")
		return stockDotGeneralExec(backend, node, inputs, inputsOwned)
	}
	switch lhsShape.DType {
	case dtypes.Float32:
		out, err := runGemm[float32](backend, p, inputs, lhsShape, rhsShape)
		if err == nil {
			statFast.Add(1)
		}
		return out, err
	case dtypes.Float64:
		out, err := runGemm[float64](backend, p, inputs, lhsShape, rhsShape)
		if err == nil {
			statFast.Add(1)
		}
		return out, err
	}
	countFallback("dtype " + lhsShape.DType.String())
	return stockDotGeneralExec(backend, node, inputs, inputsOwned)
}

// operandOrder tells how an operand's stored axis order maps onto per-batch matrices: crossFirst means
// [batch..., cross..., contracting...] (a [cross, contracting] matrix per batch entry), otherwise
// [batch..., contracting..., cross...]; perm, when not nil, is the axis order to copy it into first
// ([batch, cross, contracting]). Axes of size 1 do not constrain the order.
func operandOrder(dims, batchAxes, contractingAxes []int) (crossFirst bool, perm []int) {
	rank := len(dims)
	cross := crossAxes(rank, contractingAxes, batchAxes)
	bxc := slices.Concat(batchAxes, cross, contractingAxes)
	bcx := slices.Concat(batchAxes, contractingAxes, cross)
	nonUnit := func(order []int) []int {
		out := make([]int, 0, len(order))
		for _, a := range order {
			if dims[a] != 1 {
				out = append(out, a)
			}
		}
		return out
	}
	stored := nonUnit(iotaFrom(0, rank))
	if slices.Equal(stored, nonUnit(bxc)) {
		return true, nil
	}
	if slices.Equal(stored, nonUnit(bcx)) {
		return false, nil
	}
	return true, bxc
}

type gemmFloat interface{ float32 | float64 }

// runGemm computes the normalized DotGeneral output [batch, lhsCross, rhsCross] with one GEMM per batch
// entry.
func runGemm[T gemmFloat](backend *simplego.Backend, p dotParams, inputs []*simplego.Buffer,
	lhsShape, rhsShape shapes.Shape) (*simplego.Buffer, error) {
	lhsAny, err := backend.BufferData(inputs[0])
	if err != nil {
		return nil, err
	}
	rhsAny, err := backend.BufferData(inputs[1])
	if err != nil {
		return nil, err
	}
	lhs, rhs := lhsAny.([]T), rhsAny.([]T)
	m, n, k, nb := p.lhsCross, p.rhsCross, p.contracting, p.batch

	var scratch []backends.Buffer
	defer func() {
		for _, s := range scratch {
			_ = backend.BufferFinalize(s)
		}
	}()
	prepare := func(flat []T, shape shapes.Shape, batchAxes, contractingAxes []int) ([]T, bool, error) {
		crossFirst, perm := operandOrder(shape.Dimensions, batchAxes, contractingAxes)
		if perm == nil {
			return flat, crossFirst, nil
		}
		statTransposed.Add(1)
		buf, dstAny, err := backend.NewSharedBuffer(0, shapes.Make(shape.DType, shape.Size()))
		if err != nil {
			return nil, false, err
		}
		scratch = append(scratch, buf)
		dst := dstAny.([]T)
		transposeInto(dst, flat, shape.Dimensions, perm)
		return dst, true, nil
	}
	a, aCrossFirst, err := prepare(lhs, lhsShape, p.lhsBatch, p.lhsContracting)
	if err != nil {
		return nil, err
	}
	b, bCrossFirst, err := prepare(rhs, rhsShape, p.rhsBatch, p.rhsContracting)
	if err != nil {
		return nil, err
	}
	outBuf, outAny, err := backend.NewSharedBuffer(0, shapes.Make(lhsShape.DType, nb, m, n))
	if err != nil {
		return nil, err
	}
	c := outAny.([]T)
	// lhs per batch: [m,k] (no transpose, lda=k) or [k,m] (transpose, lda=m).
	transA, lda := !aCrossFirst, k
	if transA {
		lda = m
	}
	// rhs per batch: [n,k] (op(B)=Bᵀ, ldb=k) or [k,n] (no transpose, ldb=n).
	transB, ldb := bCrossFirst, n
	if transB {
		ldb = k
	}
	one := func(bi int) {
		gemmCall(transA, transB, m, n, k, a[bi*m*k:(bi+1)*m*k], lda, b[bi*n*k:(bi+1)*n*k], ldb,
			c[bi*m*n:(bi+1)*m*n], n)
	}
	parts := gemmParts[T](nb, m, n, k)
	switch {
	case parts <= 1:
		for bi := range nb {
			one(bi)
		}
	case nb >= parts: // whole batch entries per goroutine
		statSplit.Add(1)
		parallelRanges(nb, parts, 1, func(lo, hi int) {
			for bi := lo; bi < hi; bi++ {
				one(bi)
			}
		})
	default: // each product split by rows or columns of C
		statSplit.Add(1)
		for bi := range nb {
			gemmSplit(parts, transA, transB, m, n, k, a[bi*m*k:(bi+1)*m*k], lda, b[bi*n*k:(bi+1)*n*k], ldb,
				c[bi*m*n:(bi+1)*m*n], n)
		}
	}
	return outBuf.(*simplego.Buffer), nil
}

// bitSafeMinMNK is the least m·n·k for which OpenBLAS 0.3.21 runs its general GEMM kernels: at or
// below 10⁶ it takes small-matrix kernels on AVX-512 machines, which round differently. A band of C
// at least this large is computed with the same kernels, so the same bits, as the whole product.
const bitSafeMinMNK = 1 << 20

// splitMinPartMNK is the least m·n·k of each part of a float32 product spread over several cores:
// 2·2²⁰ (4 MFLOP). With OpenBLAS and a new goroutine per part, 4·2²⁰ was the floor (one 32x512x512
// product, 8 MFLOP per half, was as fast cut in two as whole; BenchmarkGemmSplit); with oneDNN and the
// awake helpers, the v2 HyperNoise step (whose 32x384x384 products it now cuts) took 20.0, 20.2,
// 19.9, 20.2 ms against 20.9, 20.9, 21.2, 20.0 with 4·2²⁰ (07:20, locked, alternated). It is above
// bitSafeMinMNK.
const splitMinPartMNK = 2 * bitSafeMinMNK

// gemmParts is the number of goroutines a DotGeneral of nb products of m×k by k×n runs on. It is one
// for float64 (OpenBLAS's dgemm kernels round differently when C is cut, and float64 serves the exact
// gradient checks), when the library may not be called from several threads at once (the serial
// OpenBLAS), when GOMAXPROCS is 1, or when the product is too small; otherwise as many as GOMAXPROCS
// allows with at least splitMinPartMNK per part and, when the products themselves are cut, at least
// splitAlign rows or columns per part.
func gemmParts[T gemmFloat](nb, m, n, k int) int {
	if _, f32 := any(T(0)).(float32); !f32 || gemm == nil || !gemm.Concurrent32() {
		return 1
	}
	parts := min(runtime.GOMAXPROCS(0), nb*m*n*k/splitMinPartMNK)
	if nb >= parts {
		return max(parts, 1)
	}
	// Cut each product along the longer of C's sides: the smallest band must keep splitMinPartMNK.
	side, other := max(m, n), min(m, n)*k
	for ; parts > 1; parts-- {
		if minBand(side, parts, splitAlign)*other >= splitMinPartMNK {
			return parts
		}
	}
	return 1
}

// bandEdge is the end of band p of [0, total) cut into parts bands, on a multiple of align.
func bandEdge(total, parts, align, p int) int {
	if p >= parts-1 {
		return total
	}
	return min(total, (total*(p+1)/parts+align/2)/align*align)
}

// minBand is the size of the smallest non-empty band of [0, total) cut into parts bands (0 if none).
func minBand(total, parts, align int) int {
	smallest, lo := 0, 0
	for p := range parts {
		hi := bandEdge(total, parts, align, p)
		if hi > lo && (smallest == 0 || hi-lo < smallest) {
			smallest = hi - lo
		}
		lo = max(lo, hi)
	}
	return smallest
}

// splitAlign is the granularity, in rows or columns of C, of a split product: a multiple of the GEMM
// kernels' register blocks, so each part runs the same kernels on the same elements as the whole.
const splitAlign = 16

// gemmSplit computes C = op(A)·op(B) (row-major, C's previous contents ignored) as parts GEMMs on
// separate goroutines, each on a band of rows of C (when m >= n) or of columns, band edges on
// multiples of splitAlign. Each element of C is still one dot product over the same k terms.
func gemmSplit[T gemmFloat](parts int, transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int,
	c []T, ldc int) {
	if m >= n {
		parallelRanges(m, parts, splitAlign, func(lo, hi int) {
			var aPart []T
			if transA {
				aPart = a[lo:] // columns lo.. of A stored [k, m]
			} else {
				aPart = a[lo*lda:] // rows lo.. of A stored [m, k]
			}
			gemmCall(transA, transB, hi-lo, n, k, aPart, lda, b, ldb, c[lo*ldc:], ldc)
		})
		return
	}
	parallelRanges(n, parts, splitAlign, func(lo, hi int) {
		var bPart []T
		if transB {
			bPart = b[lo*ldb:] // rows lo.. of B stored [n, k]
		} else {
			bPart = b[lo:] // columns lo.. of B stored [k, n]
		}
		gemmCall(transA, transB, m, hi-lo, k, a, lda, bPart, ldb, c[lo:], ldc)
	})
}

// parallelRanges cuts [0, total) into parts contiguous ranges, their edges on multiples of align, and
// calls fn on each, on the calling goroutine and the idle helpers (see runBands), returning when all
// are done.
func parallelRanges(total, parts, align int, fn func(lo, hi int)) {
	runBands(parts, func(p int) {
		lo, hi := 0, bandEdge(total, parts, align, p)
		if p > 0 {
			lo = bandEdge(total, parts, align, p-1)
		}
		if hi > lo {
			fn(lo, hi)
		}
	})
}

// gemmCall computes C = op(A)·op(B) (row-major, C's previous contents ignored).
func gemmCall[T gemmFloat](transA, transB bool, m, n, k int, a []T, lda int, b []T, ldb int, c []T, ldc int) {
	switch a := any(a).(type) {
	case []float32:
		gemm.Sgemm(transA, transB, m, n, k, 1, a, lda, any(b).([]float32), ldb, 0, any(c).([]float32), ldc)
	case []float64:
		gemm.Dgemm(transA, transB, m, n, k, 1, a, lda, any(b).([]float64), ldb, 0, any(c).([]float64), ldc)
	}
}

// transposeInto writes dst = src with its axes permuted: dst's axis i is src's axis perm[i], both
// row-major, dims being src's dimensions. Axes of size 1 are dropped and dst-adjacent axes that are
// also adjacent, in the same order, in src are merged first, so that a transpose that keeps its last
// axes together copies whole runs. One that moves src's last axis away from dst's last (a
// [B, H, W, C] -> [C, H, W, B] swap) is copied in square tiles, reading and writing whole cache lines;
// large transposes are cut along dst's first axis over the cores.
func transposeInto[T any](dst, src []T, dims, perm []int) {
	rank := len(dims)
	srcStrides := make([]int, rank)
	s := 1
	for a := rank - 1; a >= 0; a-- {
		srcStrides[a] = s
		s *= dims[a]
	}
	if s == 0 {
		return
	}
	var dstDims, strides []int // dst's (merged) axes and the src stride of each
	for _, a := range perm {
		d, st := dims[a], srcStrides[a]
		if d == 1 {
			continue
		}
		if k := len(dstDims) - 1; k >= 0 && strides[k] == st*d {
			dstDims[k] *= d
			strides[k] = st
			continue
		}
		dstDims, strides = append(dstDims, d), append(strides, st)
	}
	if len(dstDims) == 0 {
		dst[0] = src[0]
		return
	}
	n0 := dstDims[0]
	d0 := s / n0 // dst entries per index of dst's first axis
	parallelAxis(n0, s, func(lo, hi int) {
		dd := slices.Clone(dstDims)
		dd[0] = hi - lo
		transposeMerged(dst[lo*d0:hi*d0], src[lo*strides[0]:], dd, strides)
	})
}

// transposeTile is the least length of both axes for which transposeMerged takes the blocked path
// (16 float32 values: a cache line).
const transposeTile = 16

// transposeSpan is the side of transposeBlock's square tiles: a tile's 128 rows of either matrix
// (128 cache lines when a row's part is one line) stay in the L1 cache while it is walked.
const transposeSpan = 128

// transposeBlock writes dst[i·ds + j] = src[i + j·ss] for i < ni, j < nj: the 2-D transpose of
// src's nj rows (stride ss) of ni contiguous values into dst's ni rows (stride ds) of nj
// contiguous values. It walks square tiles of transposeSpan, and inside a tile moves 4x4 blocks
// (four reads of four adjacent values, four writes of four) through registers. Inside a tile it
// steps through four rows at a time of the matrix with the longer row stride, so that only those
// four far-apart rows and the tile's nearby rows of the other are in use at once (a power-of-two
// stride such as 16384 floats maps every row to the same L1 set). On 2 cores this moved NCHW<->NHWC
// activations of the small T2I fixture ([2, 64, 16384] and back) at 25-32 GB/s, against 9-17 GB/s
// for the 16x16 element-wise tiles it replaced (BenchmarkTranspose2D).
func transposeBlock[T any](dst []T, ds int, src []T, ss, ni, nj int) {
	for j0 := 0; j0 < nj; j0 += transposeSpan {
		j1 := min(j0+transposeSpan, nj)
		for i0 := 0; i0 < ni; i0 += transposeSpan {
			i1 := min(i0+transposeSpan, ni)
			if ss >= ds {
				transposeTileSrcRows(dst, ds, src, ss, i0, i1, j0, j1)
			} else {
				transposeTileDstRows(dst, ds, src, ss, i0, i1, j0, j1)
			}
		}
	}
}

// transposeTileSrcRows is one tile of transposeBlock, four src rows (j) at a time.
func transposeTileSrcRows[T any](dst []T, ds int, src []T, ss, i0, i1, j0, j1 int) {
	j := j0
	for ; j+4 <= j1; j += 4 {
		s0, s1, s2, s3 := src[j*ss:], src[(j+1)*ss:], src[(j+2)*ss:], src[(j+3)*ss:]
		i := i0
		for ; i+4 <= i1; i += 4 {
			a, b, c, d := s0[i:i+4:i+4], s1[i:i+4:i+4], s2[i:i+4:i+4], s3[i:i+4:i+4]
			e0 := dst[i*ds+j : i*ds+j+4 : i*ds+j+4]
			e1 := dst[(i+1)*ds+j : (i+1)*ds+j+4 : (i+1)*ds+j+4]
			e2 := dst[(i+2)*ds+j : (i+2)*ds+j+4 : (i+2)*ds+j+4]
			e3 := dst[(i+3)*ds+j : (i+3)*ds+j+4 : (i+3)*ds+j+4]
			e0[0], e0[1], e0[2], e0[3] = a[0], b[0], c[0], d[0]
			e1[0], e1[1], e1[2], e1[3] = a[1], b[1], c[1], d[1]
			e2[0], e2[1], e2[2], e2[3] = a[2], b[2], c[2], d[2]
			e3[0], e3[1], e3[2], e3[3] = a[3], b[3], c[3], d[3]
		}
		for ; i < i1; i++ {
			for r := j; r < j+4; r++ {
				dst[i*ds+r] = src[i+r*ss]
			}
		}
	}
	for ; j < j1; j++ {
		for i := i0; i < i1; i++ {
			dst[i*ds+j] = src[i+j*ss]
		}
	}
}

// transposeTileDstRows is one tile of transposeBlock, four dst rows (i) at a time.
func transposeTileDstRows[T any](dst []T, ds int, src []T, ss, i0, i1, j0, j1 int) {
	i := i0
	for ; i+4 <= i1; i += 4 {
		e0, e1, e2, e3 := dst[i*ds:], dst[(i+1)*ds:], dst[(i+2)*ds:], dst[(i+3)*ds:]
		j := j0
		for ; j+4 <= j1; j += 4 {
			a := src[i+j*ss : i+j*ss+4 : i+j*ss+4]
			b := src[i+(j+1)*ss : i+(j+1)*ss+4 : i+(j+1)*ss+4]
			c := src[i+(j+2)*ss : i+(j+2)*ss+4 : i+(j+2)*ss+4]
			d := src[i+(j+3)*ss : i+(j+3)*ss+4 : i+(j+3)*ss+4]
			f0, f1, f2, f3 := e0[j:j+4:j+4], e1[j:j+4:j+4], e2[j:j+4:j+4], e3[j:j+4:j+4]
			f0[0], f0[1], f0[2], f0[3] = a[0], b[0], c[0], d[0]
			f1[0], f1[1], f1[2], f1[3] = a[1], b[1], c[1], d[1]
			f2[0], f2[1], f2[2], f2[3] = a[2], b[2], c[2], d[2]
			f3[0], f3[1], f3[2], f3[3] = a[3], b[3], c[3], d[3]
		}
		for ; j < j1; j++ {
			for r := i; r < i+4; r++ {
				dst[r*ds+j] = src[r+j*ss]
			}
		}
	}
	for ; i < i1; i++ {
		for j := j0; j < j1; j++ {
			dst[i*ds+j] = src[i+j*ss]
		}
	}
}

// transposeMerged writes dst[i_0, ..., i_{r-1}] = src[Σ i_a·strides[a]] for dst of dimensions dims,
// row-major (the merged form of transposeInto). Each path below walks the axes it does not loop over
// itself with advance (fastops.go), src position as its first pointer, dst position as its second.
func transposeMerged[T any](dst, src []T, dims, strides []int) {
	rank := len(dims)
	inner, innerStride := dims[rank-1], strides[rank-1]
	dstStrides := make([]int, rank)
	ds := 1
	for a := rank - 1; a >= 0; a-- {
		dstStrides[a] = ds
		ds *= dims[a]
	}
	// outer lists the axes below end not excluded by skip as odometer groups, innermost first.
	outer := func(end int, skip int) []bgroup {
		var g []bgroup
		for a := end - 1; a >= 0; a-- {
			if a != skip {
				g = append(g, bgroup{size: dims[a], ls: strides[a], rs: dstStrides[a]})
			}
		}
		return g
	}
	// The axis whose src stride is 1, when it is not dst's last: tile it against the last.
	p := -1
	if innerStride != 1 {
		for a := range rank - 1 {
			if strides[a] == 1 {
				p = a
			}
		}
	}
	var base, o int
	switch {
	case p >= 0 && inner >= transposeTile && dims[p] >= transposeTile:
		np, dp := dims[p], dstStrides[p]
		groups := outer(rank-1, p)
		idx := make([]int, len(groups))
		for {
			transposeBlock(dst[o:], dp, src[base:], innerStride, np, inner)
			if !advance(idx, groups, &base, &o) {
				return
			}
		}
	case inner < 8 && rank >= 2:
		// Short runs (a pixel shuffle's 2 or 4 values): the two innermost axes as a plain double
		// loop, the odometer over the others once per block.
		d2, s2 := dims[rank-2], strides[rank-2]
		groups := outer(rank-2, -1)
		idx := make([]int, len(groups))
		for {
			k := o
			for i2 := range d2 {
				pos := base + i2*s2
				for j := range inner {
					dst[k+j] = src[pos+j*innerStride]
				}
				k += inner
			}
			if !advance(idx, groups, &base, &o) {
				return
			}
		}
	default:
		groups := outer(rank-1, -1)
		idx := make([]int, len(groups))
		for {
			if innerStride == 1 {
				copy(dst[o:o+inner], src[base:base+inner])
			} else {
				pos := base
				for j := range inner {
					dst[o+j] = src[pos]
					pos += innerStride
				}
			}
			if !advance(idx, groups, &base, &o) {
				return
			}
		}
	}
}
