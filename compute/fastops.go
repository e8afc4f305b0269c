package compute

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Faster element-wise kernels.
//
// Once matrix products run on the GEMM, a training step's time goes to data movement: Slice (SimpleGo
// walks an index iterator per element), and Add/Sub/Mul with broadcasting (an iterator per element
// again). On the patched backend these run here instead, computing exactly the same values:
//
//   - Slice copies whole contiguous runs (the trailing axes a slice keeps whole, times the last
//     partial axis when its stride is 1) with copy();
//   - BroadcastInDim merges adjacent axes the same way and copies or fills whole runs;
//   - Transpose walks the output in order with one strided inner loop (no per-element index
//     iterator);
//   - ReduceSum merges adjacent axes that are all reduced or all kept and adds whole runs (in the same
//     order as SimpleGo, so the sums are bit-identical);
//   - Sign of float32 without branches (ReLU's gradient takes the sign of random-signed tensors,
//     where SimpleGo's branches mispredict half the time);
//   - Logistic (σ(x) = 1/(1+e^-x), the same formula as SimpleGo's) runs on two goroutines for large
//     tensors;
//   - Erf of float32 runs erf32 (erf.go: a float32 polynomial table, within 1e-7 of math.Erf, where
//     SimpleGo rounds float64 math.Erf), on two goroutines for large tensors;
//   - Add, Sub, Mul with broadcasting merge adjacent axes with the same broadcast pattern and run
//     the innermost merged axis as a tight loop over a contiguous or constant operand; large ones,
//     with or without broadcasting, run on several goroutines (parallel.go).
//
// They use the same hook as the GEMM (SimpleGo's executor table, reached with go:linkname) and the
// same guard: backends other than the patched one, and dtypes or parameters these kernels do not
// handle, run SimpleGo's own; a Slice whose parameters are not laid out as in GoMLX v0.26.0 too.

var (
	stockExec  [backends.OpTypeLast]simplegoExecutor
	opsHooked  sync.Once
	sliceIdxMu sync.Once
	sliceIdx   map[string]int
	sliceType  reflect.Type
	sliceErr   error
)

// installFastOps puts the element-wise kernels into SimpleGo's table (once). It is called with the
// GEMM hook, whether or not the GEMM library loaded: these kernels need no library.
func installFastOps() {
	opsHooked.Do(func() {
		for _, op := range []backends.OpType{backends.OpTypeSlice, backends.OpTypeAdd, backends.OpTypeSub,
			backends.OpTypeMul, backends.OpTypeDiv, backends.OpTypeBroadcastInDim, backends.OpTypeLogistic, backends.OpTypeTranspose,
			backends.OpTypeSign, backends.OpTypeReduceSum, backends.OpTypeErf} {
			stockExec[op] = simplegoNodeExecutors[op] // nil if the table is not as expected: op left alone
		}
		if stockExec[backends.OpTypeSlice] != nil {
			simplegoNodeExecutors[backends.OpTypeSlice] = fastSlice
		}
		if stockExec[backends.OpTypeBroadcastInDim] != nil {
			simplegoNodeExecutors[backends.OpTypeBroadcastInDim] = fastBroadcastInDim
		}
		if stockExec[backends.OpTypeTranspose] != nil {
			simplegoNodeExecutors[backends.OpTypeTranspose] = fastTranspose
		}
		if stockExec[backends.OpTypeReduceSum] != nil {
			simplegoNodeExecutors[backends.OpTypeReduceSum] = fastReduceSum
		}
		if stockExec[backends.OpTypeSign] != nil {
			// sign(x) in {-1, 0, 1}, and 0 for NaN, as SimpleGo gives.
			simplegoNodeExecutors[backends.OpTypeSign] = fastUnary32(backends.OpTypeSign, signBits32)
		}
		if stockExec[backends.OpTypeLogistic] != nil {
			simplegoNodeExecutors[backends.OpTypeLogistic] = fastUnary32(backends.OpTypeLogistic, logistic32)
		}
		if stockExec[backends.OpTypeErf] != nil {
			// float32 only (erf.go); float64 and bfloat16 stay on SimpleGo's math.Erf.
			simplegoNodeExecutors[backends.OpTypeErf] = fastUnary32(backends.OpTypeErf, erf32)
		}
		for _, op := range []backends.OpType{backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv} {
			if stockExec[op] != nil {
				op := op
				simplegoNodeExecutors[op] = func(backend *simplego.Backend, node *simplego.Node,
					inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
					return fastBinary(op, backend, node, inputs, owned)
				}
			}
		}
	})
}

// statFastOps counts element-wise ops run by these kernels (for tests).
var statFastOps atomic.Int64

// fastOpsBackends holds the SimpleGo backends (inside patched ones) whose element-wise ops run here.
var fastOpsBackends sync.Map

// nodeData returns the value of a SimpleGo node's unexported "data" field.
func nodeData(node *simplego.Node) (reflect.Value, bool) {
	f := reflect.ValueOf(node).Elem().FieldByName("data")
	if !f.IsValid() || f.Kind() != reflect.Interface || f.IsNil() {
		return reflect.Value{}, false
	}
	return f.Elem(), true
}

// readSliceParams reads a Slice node's starts and strides (SimpleGo's *sliceNode).
func readSliceParams(node *simplego.Node) (starts, strides []int, ok bool) {
	data, ok := nodeData(node)
	if !ok || data.Kind() != reflect.Pointer || data.IsNil() || data.Elem().Kind() != reflect.Struct {
		return nil, nil, false
	}
	s := data.Elem()
	sliceIdxMu.Do(func() {
		t := s.Type()
		if t.Name() != "sliceNode" {
			sliceErr = fmt.Errorf("slice data type %s", t)
			return
		}
		sliceIdx = map[string]int{}
		for _, name := range []string{"starts", "limits", "strides"} {
			f, ok := t.FieldByName(name)
			if !ok || f.Type.Kind() != reflect.Slice || f.Type.Elem().Kind() != reflect.Int {
				sliceErr = fmt.Errorf("sliceNode.%s missing", name)
				return
			}
			sliceIdx[name] = f.Index[0]
		}
		sliceType = t
	})
	if sliceErr != nil || s.Type() != sliceType {
		return nil, nil, false
	}
	read := func(name string) []int {
		f := s.Field(sliceIdx[name])
		out := make([]int, f.Len())
		for i := range out {
			out[i] = int(f.Index(i).Int())
		}
		return out
	}
	return read("starts"), read("strides"), true
}

// fastSlice replaces SimpleGo's Slice executor on patched backends.
func fastSlice(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	stock := stockExec[backends.OpTypeSlice]
	if _, ok := fastOpsBackends.Load(backend); !ok {
		return stock(backend, node, inputs, owned)
	}
	starts, strides, ok := readSliceParams(node)
	if !ok {
		return stock(backend, node, inputs, owned)
	}
	inShape, err := backend.BufferShape(inputs[0])
	if err != nil {
		return stock(backend, node, inputs, owned)
	}
	outDims := make([]int, len(starts))
	nodeShape, ok := simplegoNodeShape(node)
	if !ok || nodeShape.Rank() != inShape.Rank() || len(strides) != inShape.Rank() {
		return stock(backend, node, inputs, owned)
	}
	copy(outDims, nodeShape.Dimensions)
	flat, err := backend.BufferData(inputs[0])
	if err != nil {
		return stock(backend, node, inputs, owned)
	}
	outBuf, outFlat, err := backend.NewSharedBuffer(0, nodeShape)
	if err != nil {
		return nil, err
	}
	switch src := flat.(type) {
	case []float32:
		sliceCopy(outFlat.([]float32), src, inShape.Dimensions, outDims, starts, strides)
	case []float64:
		sliceCopy(outFlat.([]float64), src, inShape.Dimensions, outDims, starts, strides)
	case []int32:
		sliceCopy(outFlat.([]int32), src, inShape.Dimensions, outDims, starts, strides)
	case []int64:
		sliceCopy(outFlat.([]int64), src, inShape.Dimensions, outDims, starts, strides)
	default:
		_ = backend.BufferFinalize(outBuf)
		return stock(backend, node, inputs, owned)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// simplegoNodeShape reads a node's output shape (its unexported "shape" field).
func simplegoNodeShape(node *simplego.Node) (shapes.Shape, bool) {
	f := reflect.ValueOf(node).Elem().FieldByName("shape")
	if !f.IsValid() || f.Type() != reflect.TypeOf(shapes.Shape{}) {
		return shapes.Shape{}, false
	}
	dt := f.FieldByName("DType")
	dims := f.FieldByName("Dimensions")
	if !dt.IsValid() || !dims.IsValid() || dims.Kind() != reflect.Slice {
		return shapes.Shape{}, false
	}
	d := make([]int, dims.Len())
	for i := range d {
		d[i] = int(dims.Index(i).Int())
	}
	return shapes.Make(dtypes.DType(dt.Int()), d...), true
}

// sliceCopy writes dst = src[starts + strides⊙i] for every output index i (row-major, outDims),
// copying whole contiguous runs at a time.
func sliceCopy[T any](dst, src []T, inDims, outDims, starts, strides []int) {
	rank := len(inDims)
	if len(dst) == 0 {
		return
	}
	if rank == 0 {
		dst[0] = src[0]
		return
	}
	inStrides := make([]int, rank)
	s := 1
	for a := rank - 1; a >= 0; a-- {
		inStrides[a] = s
		s *= inDims[a]
	}
	// Trailing axes kept whole form one contiguous block.
	k := rank - 1
	block := 1
	for k >= 0 && starts[k] == 0 && strides[k] == 1 && outDims[k] == inDims[k] {
		block *= inDims[k]
		k--
	}
	if k < 0 {
		copy(dst, src[:len(dst)])
		return
	}
	base := 0
	for a := range rank {
		base += starts[a] * inStrides[a]
	}
	run, outer := block, k // copy runs of `run` elements; odometer over axes [0, outer)
	if strides[k] == 1 {
		run = outDims[k] * block
	} else {
		outer = k + 1
	}
	idx := make([]int, outer)
	o := 0
	pos := base
	for {
		if run == 1 {
			dst[o] = src[pos]
		} else {
			copy(dst[o:o+run], src[pos:pos+run])
		}
		o += run
		if o >= len(dst) {
			return
		}
		a := outer - 1
		for ; a >= 0; a-- {
			idx[a]++
			pos += strides[a] * inStrides[a]
			if idx[a] < outDims[a] {
				break
			}
			pos -= idx[a] * strides[a] * inStrides[a]
			idx[a] = 0
		}
		if a < 0 {
			return
		}
	}
}

// fastBinary replaces SimpleGo's Add, Sub and Mul executors on patched backends for float operands of
// different shapes (broadcasting); equal shapes and scalars keep SimpleGo's loops, which are already
// tight.
func fastBinary(op backends.OpType, backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	owned []bool) (*simplego.Buffer, error) {
	stock := stockExec[op]
	if _, ok := fastOpsBackends.Load(backend); !ok {
		return stock(backend, node, inputs, owned)
	}
	ls, err1 := backend.BufferShape(inputs[0])
	rs, err2 := backend.BufferShape(inputs[1])
	if err1 != nil || err2 != nil || ls.DType != rs.DType || (ls.DType != dtypes.Float32 && ls.DType != dtypes.Float64) ||
		ls.Size() == 1 || rs.Size() == 1 || ls.Rank() != rs.Rank() ||
		(ls.Equal(rs) && ls.Size() < 2*elemParallelMin && !(binaryVector && ls.DType == dtypes.Float32)) {
		return stock(backend, node, inputs, owned)
	}
	outDims := make([]int, ls.Rank())
	for a := range outDims {
		l, r := ls.Dimensions[a], rs.Dimensions[a]
		switch {
		case l == r || r == 1:
			outDims[a] = l
		case l == 1:
			outDims[a] = r
		default:
			return stock(backend, node, inputs, owned)
		}
	}
	outShape := shapes.Make(ls.DType, outDims...)
	lf, _ := backend.BufferData(inputs[0])
	rf, _ := backend.BufferData(inputs[1])
	var outBuf backends.Buffer
	var outFlat any
	switch {
	case owned[0] && ls.Equal(outShape):
		outBuf, outFlat = inputs[0], lf
		inputs[0] = nil // tells the executor the input buffer became the output
	case owned[1] && rs.Equal(outShape):
		outBuf, outFlat = inputs[1], rf
		inputs[1] = nil
	default:
		outBuf, outFlat, err1 = backend.NewSharedBuffer(0, outShape)
		if err1 != nil {
			return nil, err1
		}
	}
	switch out := outFlat.(type) {
	case []float32:
		if ls.Equal(rs) {
			l, r := lf.([]float32), rf.([]float32)
			parallelAxis(len(out), len(out), func(lo, hi int) { binary32(op, out[lo:hi], l[lo:hi], r[lo:hi]) })
			break
		}
		broadcastBinaryParallel(op, out, lf.([]float32), rf.([]float32), ls.Dimensions, rs.Dimensions, outDims)
	case []float64:
		broadcastBinaryParallel(op, out, lf.([]float64), rf.([]float64), ls.Dimensions, rs.Dimensions, outDims)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// bgroup is a run of adjacent output axes with the same broadcast pattern: its size and each operand's
// stride (0 where the operand is broadcast).
type bgroup struct{ size, ls, rs int }

// advance steps the multi-index idx over groups, innermost first, like an odometer, moving the
// positions *lp and *rp by each group's strides ls and rs (and back when a digit wraps). It returns
// false when every digit wrapped, that is after the last run.
func advance(idx []int, groups []bgroup, lp, rp *int) bool {
	for g := range groups {
		idx[g]++
		*lp += groups[g].ls
		*rp += groups[g].rs
		if idx[g] < groups[g].size {
			return true
		}
		*lp -= groups[g].ls * idx[g]
		*rp -= groups[g].rs * idx[g]
		idx[g] = 0
	}
	return false
}

// broadcastGroups merges the output axes, from the innermost, into runs of adjacent axes with the
// same broadcast pattern (bgroup): sizes and each operand's stride, 0 where it is broadcast. Unit
// axes are skipped.
func broadcastGroups(lDims, rDims, outDims []int) []bgroup {
	rank := len(outDims)
	var groups []bgroup
	lStride, rStride := 1, 1
	// Walk axes from the innermost, merging axes with the same pattern.
	for a := rank - 1; a >= 0; a-- {
		n := outDims[a]
		if n == 1 {
			continue
		}
		lb, rb := lDims[a] == 1, rDims[a] == 1
		ls, rs := lStride, rStride
		if lb {
			ls = 0
		}
		if rb {
			rs = 0
		}
		if k := len(groups) - 1; k >= 0 && (groups[k].ls == 0) == lb && (groups[k].rs == 0) == rb {
			// Same pattern as the inner group: extend it (strides stay those of its innermost axis).
			groups[k].size *= n
		} else {
			groups = append(groups, bgroup{size: n, ls: ls, rs: rs})
		}
		if !lb {
			lStride *= n
		}
		if !rb {
			rStride *= n
		}
	}
	return groups
}

// expand writes count values of src, taken stride apart, each repeated n times, into dst.
func expand[T float32 | float64](dst, src []T, count, stride, n int) {
	for j := range count {
		v, e := src[j*stride], dst[j*n:j*n+n]
		for i := range e {
			e[i] = v
		}
	}
}

// broadcastBinary computes out = l op r with numpy-style broadcasting of equal-rank operands.
func broadcastBinary[T float32 | float64](op backends.OpType, out, l, r []T, lDims, rDims, outDims []int) {
	groups := broadcastGroups(lDims, rDims, outDims)
	if len(groups) == 0 {
		out[0] = binOp(op, l[0], r[0])
		return
	}
	// The two innermost groups run as a double loop when the inner runs are short (GroupNorm's [B, HW,
	// G, C/G] by [B, 1, G, 1] has runs of C/G = 4 or 8), the rest as an odometer.
	inner := groups[0]
	second := bgroup{size: 1}
	outerGroups := groups[1:] // innermost first
	if len(groups) > 1 && inner.size < 64 {
		second, outerGroups = groups[1], groups[2:]
	}
	lp, rp, o := 0, 0, 0
	n := inner.size
	// When one operand's block is contiguous and the other's is a short run repeated (GroupNorm's
	// statistics), the repeated one is written out once per block position and the block runs as one
	// equal-length loop.
	bn := n * second.size
	var expanded []T
	expandedAt := -1
	lExp := inner.ls == 0 && inner.rs == 1 && second.rs == n
	rExp := inner.rs == 0 && inner.ls == 1 && second.ls == n
	reps := 1 // blocks per step when the next group repeats the expanded block too
	if len(groups) > 1 && n < 64 && (lExp || rExp) {
		expanded = make([]T, bn)
		if len(outerGroups) > 0 {
			if g := outerGroups[0]; (rExp && g.ls == bn && g.rs == 0) || (lExp && g.rs == bn && g.ls == 0) {
				reps, outerGroups = g.size, outerGroups[1:]
			}
		}
	}
	idx := make([]int, len(outerGroups))
	for {
		switch {
		case expanded != nil && rExp:
			if rp != expandedAt {
				expand(expanded, r[rp:], second.size, second.rs, n)
				expandedAt = rp
			}
			binaryBlock(op, out[o:o+bn*reps], l[lp:lp+bn*reps], expanded, bn, reps, bn, 0, true, true)
		case expanded != nil && lExp:
			if lp != expandedAt {
				expand(expanded, l[lp:], second.size, second.ls, n)
				expandedAt = lp
			}
			binaryBlock(op, out[o:o+bn*reps], expanded, r[rp:rp+bn*reps], bn, reps, 0, bn, true, true)
		default:
			binaryBlock(op, out[o:o+bn], l[lp:], r[rp:], n, second.size, second.ls, second.rs,
				inner.ls != 0, inner.rs != 0)
		}
		o += bn * reps
		if o >= len(out) {
			return
		}
		// Advance the odometer over the outer groups (innermost first). Group strides are per step of
		// the group's innermost axis, so a group of size n advances by n·(inner extents) in the output
		// implicitly through o; the operands move by their group stride.
		if !advance(idx, outerGroups, &lp, &rp) {
			return
		}
	}
}

// binary32 writes out[i] = l[i] op r[i] for equal-length float32 runs, eight at a time with AVX2 where
// the CPU has it (the same IEEE operation per value, so the same results), the rest one at a time.
func binary32(op backends.OpType, out, l, r []float32) {
	n := len(out)
	if binaryVector && n >= 8 && op != backends.OpTypeDiv {
		v := n &^ 7
		switch op {
		case backends.OpTypeAdd:
			addF32AVX2(out[:v], l[:v], r[:v])
		case backends.OpTypeSub:
			subF32AVX2(out[:v], l[:v], r[:v])
		default:
			mulF32AVX2(out[:v], l[:v], r[:v])
		}
		out, l, r = out[v:], l[v:n], r[v:n]
	}
	l, r = l[:len(out)], r[:len(out)]
	switch op {
	case backends.OpTypeAdd:
		for i := range out {
			out[i] = l[i] + r[i]
		}
	case backends.OpTypeSub:
		for i := range out {
			out[i] = l[i] - r[i]
		}
	case backends.OpTypeDiv:
		for i := range out {
			out[i] = l[i] / r[i]
		}
	default:
		for i := range out {
			out[i] = l[i] * r[i]
		}
	}
}

// binaryBlock writes m runs of n values, out[j·n + i] = l[j·sl + i] op r[j·sr + i], an operand
// whose run is not strided (lRun or rRun false) giving its first value to the whole run: division
// on divBlock, long float32 runs of both operands on binary32 (AVX2), the rest on addSubMulBlock.
func binaryBlock[T float32 | float64](op backends.OpType, out, l, r []T, n, m, sl, sr int, lRun, rRun bool) {
	if op == backends.OpTypeDiv {
		divBlock(out, l, r, n, m, sl, sr, lRun, rRun)
		return
	}
	if o32, ok := any(out).([]float32); ok && binaryVector && lRun && rRun && n >= 32 {
		l32, r32 := any(l).([]float32), any(r).([]float32)
		for j := range m {
			binary32(op, o32[j*n:j*n+n], l32[j*sl:j*sl+n], r32[j*sr:j*sr+n])
		}
		return
	}
	addSubMulBlock(op, out, l, r, n, m, sl, sr, lRun, rRun)
}

// addSubMulBlock is binaryBlock for Add, Sub and Mul, its loops written out per op and pattern so
// that short runs cost no call each.
func addSubMulBlock[T float32 | float64](op backends.OpType, out, l, r []T, n, m, sl, sr int, lRun, rRun bool) {
	switch {
	case lRun && rRun:
		switch op {
		case backends.OpTypeAdd:
			for j := range m {
				lo, ro := l[j*sl:j*sl+n], r[j*sr:j*sr+n]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = lo[i] + ro[i]
				}
			}
		case backends.OpTypeSub:
			for j := range m {
				lo, ro := l[j*sl:j*sl+n], r[j*sr:j*sr+n]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = lo[i] - ro[i]
				}
			}
		default:
			for j := range m {
				lo, ro := l[j*sl:j*sl+n], r[j*sr:j*sr+n]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = lo[i] * ro[i]
				}
			}
		}
	case lRun:
		switch op {
		case backends.OpTypeAdd:
			for j := range m {
				lo, c := l[j*sl:j*sl+n], r[j*sr]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = lo[i] + c
				}
			}
		case backends.OpTypeSub:
			for j := range m {
				lo, c := l[j*sl:j*sl+n], r[j*sr]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = lo[i] - c
				}
			}
		default:
			for j := range m {
				lo, c := l[j*sl:j*sl+n], r[j*sr]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = lo[i] * c
				}
			}
		}
	case rRun:
		switch op {
		case backends.OpTypeAdd:
			for j := range m {
				c, ro := l[j*sl], r[j*sr:j*sr+n]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = c + ro[i]
				}
			}
		case backends.OpTypeSub:
			for j := range m {
				c, ro := l[j*sl], r[j*sr:j*sr+n]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = c - ro[i]
				}
			}
		default:
			for j := range m {
				c, ro := l[j*sl], r[j*sr:j*sr+n]
				oo := out[j*n : j*n+n]
				for i := range oo {
					oo[i] = c * ro[i]
				}
			}
		}
	default: // both operands broadcast along the run
		for j := range m {
			v := binOp(op, l[j*sl], r[j*sr])
			oo := out[j*n : j*n+n]
			for i := range oo {
				oo[i] = v
			}
		}
	}
}

func binOp[T float32 | float64](op backends.OpType, a, b T) T {
	switch op {
	case backends.OpTypeAdd:
		return a + b
	case backends.OpTypeSub:
		return a - b
	case backends.OpTypeDiv:
		return a / b
	}
	return a * b
}

// divBlock is binaryBlock for division: out[j·n + i] = l[j·sl + i·lRun] / r[j·sr + i·rRun] (an
// operand whose run is not strided gives its first value to the whole run).
func divBlock[T float32 | float64](out, l, r []T, n, m, sl, sr int, lRun, rRun bool) {
	li, ri := 0, 0
	if lRun {
		li = 1
	}
	if rRun {
		ri = 1
	}
	for j := range m {
		lo, ro := j*sl, j*sr
		oo := out[j*n : j*n+n]
		for i := range oo {
			oo[i] = l[lo+i*li] / r[ro+i*ri]
		}
	}
}

// fastBroadcastInDim replaces SimpleGo's BroadcastInDim executor on patched backends for float32/float64
// operands whose axes map, in increasing order, onto the output's.
func fastBroadcastInDim(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	owned []bool) (*simplego.Buffer, error) {
	stock := stockExec[backends.OpTypeBroadcastInDim]
	if _, ok := fastOpsBackends.Load(backend); !ok {
		return stock(backend, node, inputs, owned)
	}
	data, ok := nodeData(node)
	if !ok || data.Kind() != reflect.Slice || data.Type().Elem().Kind() != reflect.Int {
		return stock(backend, node, inputs, owned)
	}
	outShape, ok := simplegoNodeShape(node)
	xs, err := backend.BufferShape(inputs[0])
	if !ok || err != nil || xs.DType != outShape.DType || data.Len() != xs.Rank() {
		return stock(backend, node, inputs, owned)
	}
	xDims := make([]int, outShape.Rank())
	for a := range xDims {
		xDims[a] = 1
	}
	prev := -1
	for i := range data.Len() {
		a := int(data.Index(i).Int())
		if a <= prev || a >= outShape.Rank() || (xs.Dimensions[i] != 1 && xs.Dimensions[i] != outShape.Dimensions[a]) {
			return stock(backend, node, inputs, owned)
		}
		xDims[a], prev = xs.Dimensions[i], a
	}
	xf, _ := backend.BufferData(inputs[0])
	outBuf, outFlat, err := backend.NewSharedBuffer(0, outShape)
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		broadcastCopy(out, xf.([]float32), xDims, outShape.Dimensions)
	case []float64:
		broadcastCopy(out, xf.([]float64), xDims, outShape.Dimensions)
	default:
		_ = backend.BufferFinalize(outBuf)
		return stock(backend, node, inputs, owned)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// broadcastCopy writes out = x broadcast to outDims (x has the same rank, with 1 on broadcast axes),
// cut along the first axis over the cores when it is longer than 1 (a nearest upsampling's repeat
// of a [B, C, H, W, 1] activation, say).
func broadcastCopy[T any](out, x []T, xDims, outDims []int) {
	if len(outDims) < 2 || outDims[0] < 2 || len(out) < 2*elemParallelMin {
		broadcastKernel(out, x, xDims, outDims)
		return
	}
	n := outDims[0]
	ob, xb := len(out)/n, 0
	if xDims[0] == n {
		xb = len(x) / n
	}
	parallelAxis(n, len(out), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			broadcastKernel(out[i*ob:(i+1)*ob], x[i*xb:], xDims[1:], outDims[1:])
		}
	})
}

// broadcastKernel is broadcastCopy on the calling goroutine.
func broadcastKernel[T any](out, x []T, xDims, outDims []int) {
	if len(out) == 0 {
		return
	}
	if len(x) == 1 {
		v := x[0]
		for i := range out {
			out[i] = v
		}
		return
	}
	// Groups of adjacent axes, innermost first: size and x's stride (0 where broadcast).
	var groups []bgroup
	stride := 1
	for a := len(outDims) - 1; a >= 0; a-- {
		n := outDims[a]
		if n == 1 {
			continue
		}
		b := xDims[a] == 1
		if k := len(groups) - 1; k >= 0 && (groups[k].ls == 0) == b {
			groups[k].size *= n
		} else if b {
			groups = append(groups, bgroup{size: n})
		} else {
			groups = append(groups, bgroup{size: n, ls: stride})
		}
		if !b {
			stride *= n
		}
	}
	// The two innermost groups run as a double loop, the rest as an odometer.
	inner := groups[0]
	second := bgroup{size: 1}
	outer := groups[1:]
	if len(groups) > 1 {
		second, outer = groups[1], groups[2:]
	}
	idx := make([]int, len(outer))
	xp, o := 0, 0
	n := inner.size
	for {
		if inner.ls != 0 { // inner axes copied, second broadcast: the same run second.size times
			src := x[xp : xp+n]
			for range second.size {
				copy(out[o:o+n], src)
				o += n
			}
		} else if n == 2 { // each value twice (a nearest upsampling's last axis)
			o2 := out[o : o+2*second.size]
			for j := range second.size {
				v := x[xp+j*second.ls]
				o2[2*j], o2[2*j+1] = v, v
			}
			o += 2 * second.size
		} else { // inner axes broadcast, second copied: runs of one value each
			for j := range second.size {
				v, oo := x[xp+j*second.ls], out[o:o+n]
				for i := range oo {
					oo[i] = v
				}
				o += n
			}
		}
		if o >= len(out) {
			return
		}
		if !advance(idx, outer, &xp, new(int)) {
			return
		}
	}
}

// outputBuffer returns the buffer an element-wise op writes its result of the given shape into,
// with its data: input 0's own buffer when the executor hands it over (owned[0], its last use;
// inputs[0] is then cleared so that the executor does not free it), else a new buffer. The result
// may thus alias input 0, which the op's kernel must allow (out[i] computed from x[i] alone).
func outputBuffer(backend *simplego.Backend, inputs []*simplego.Buffer, owned []bool, shape shapes.Shape) (backends.Buffer, any, error) {
	if len(owned) > 0 && owned[0] {
		buf := inputs[0]
		flat, err := backend.BufferData(buf)
		if err != nil {
			return nil, nil, err
		}
		inputs[0] = nil
		return buf, flat, nil
	}
	return backend.NewSharedBuffer(0, shape)
}

// logisticParallelMin is the smallest tensor whose logistic is split over two goroutines.
const logisticParallelMin = 2 * elemParallelMin

// fastUnary32 returns an executor replacing SimpleGo's for the element-wise op on patched backends:
// float32 tensors run kernel(out, x) (out may be x's own buffer, see outputBuffer); other dtypes and
// unpatched backends run SimpleGo's executor.
func fastUnary32(op backends.OpType, kernel func(out, x []float32)) simplegoExecutor {
	return func(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
		owned []bool) (*simplego.Buffer, error) {
		stock := stockExec[op]
		if _, ok := fastOpsBackends.Load(backend); !ok {
			return stock(backend, node, inputs, owned)
		}
		xs, err := backend.BufferShape(inputs[0])
		if err != nil || xs.DType != dtypes.Float32 {
			return stock(backend, node, inputs, owned)
		}
		xf, _ := backend.BufferData(inputs[0])
		outBuf, of, err := outputBuffer(backend, inputs, owned, xs)
		if err != nil {
			return nil, err
		}
		kernel(of.([]float32), xf.([]float32))
		statFastOps.Add(1)
		return outBuf.(*simplego.Buffer), nil
	}
}

// logistic32 is the float32 Logistic (see logistic32f), large tensors split over two goroutines.
func logistic32(out, x []float32) {
	if len(x) < logisticParallelMin {
		logistic32f(out, x)
		return
	}
	parallelRanges(len(x), 2, 16, func(lo, hi int) { logistic32f(out[lo:hi], x[lo:hi]) })
}

// fastTranspose replaces SimpleGo's Transpose executor on patched backends (float32, float64, int32).
func fastTranspose(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	owned []bool) (*simplego.Buffer, error) {
	stock := stockExec[backends.OpTypeTranspose]
	if _, ok := fastOpsBackends.Load(backend); !ok {
		return stock(backend, node, inputs, owned)
	}
	data, ok := nodeData(node)
	xs, err := backend.BufferShape(inputs[0])
	if !ok || err != nil || data.Kind() != reflect.Slice || data.Type().Elem().Kind() != reflect.Int ||
		data.Len() != xs.Rank() || xs.Rank() == 0 {
		return stock(backend, node, inputs, owned)
	}
	perm := make([]int, xs.Rank())
	seen := make([]bool, xs.Rank())
	outDims := make([]int, xs.Rank())
	for i := range perm {
		p := int(data.Index(i).Int())
		if p < 0 || p >= len(perm) || seen[p] {
			return stock(backend, node, inputs, owned)
		}
		perm[i], seen[p], outDims[i] = p, true, xs.Dimensions[p]
	}
	xf, _ := backend.BufferData(inputs[0])
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(xs.DType, outDims...))
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		transposeInto(out, xf.([]float32), xs.Dimensions, perm)
	case []float64:
		transposeInto(out, xf.([]float64), xs.Dimensions, perm)
	case []int32:
		transposeInto(out, xf.([]int32), xs.Dimensions, perm)
	default:
		_ = backend.BufferFinalize(outBuf)
		return stock(backend, node, inputs, owned)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// signBits32 sets out[i] = sign(x[i]) from the bits: ±1 keeps x's sign bit; zeros and NaNs give +0.
func signBits32(out, x []float32) {
	for i, v := range x {
		b := math.Float32bits(v)
		abs := b & 0x7fffffff
		var r uint32
		if abs-1 < 0x7f800000 { // nonzero and not NaN (infinities included)
			r = 0x3f800000 | (b & 0x80000000)
		}
		out[i] = math.Float32frombits(r)
	}
}

// fastReduceSum replaces SimpleGo's ReduceSum executor on patched backends for float32/float64.
func fastReduceSum(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer,
	owned []bool) (*simplego.Buffer, error) {
	stock := stockExec[backends.OpTypeReduceSum]
	if _, ok := fastOpsBackends.Load(backend); !ok {
		return stock(backend, node, inputs, owned)
	}
	data, ok := nodeData(node)
	xs, err := backend.BufferShape(inputs[0])
	if !ok || err != nil || data.Kind() != reflect.Slice || data.Type().Elem().Kind() != reflect.Int ||
		data.Len() == 0 || xs.Rank() == 0 || (xs.DType != dtypes.Float32 && xs.DType != dtypes.Float64) {
		return stock(backend, node, inputs, owned)
	}
	reduced := make([]bool, xs.Rank())
	var outDims []int
	for i := range data.Len() {
		a := int(data.Index(i).Int())
		if a < 0 || a >= xs.Rank() {
			return stock(backend, node, inputs, owned)
		}
		reduced[a] = true
	}
	for a, d := range xs.Dimensions {
		if !reduced[a] {
			outDims = append(outDims, d)
		}
	}
	xf, _ := backend.BufferData(inputs[0])
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(xs.DType, outDims...))
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		reduceSumParallel(out, xf.([]float32), xs.Dimensions, reduced)
	case []float64:
		reduceSumParallel(out, xf.([]float64), xs.Dimensions, reduced)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// reduceSumParallel is reduceSumKernel cut along x's first axis longer than 1 when that axis is kept
// (each band sums its own output entries, in the same order).
func reduceSumParallel[T float32 | float64](out, x []T, dims []int, reduced []bool) {
	a := slices.IndexFunc(dims, func(d int) bool { return d > 1 })
	if a < 0 || reduced[a] || len(out) == 0 {
		reduceSumKernel(out, x, dims, reduced)
		return
	}
	n := dims[a]
	ob, xb := len(out)/n, len(x)/n
	parallelAxis(n, len(x), func(lo, hi int) {
		d := slices.Clone(dims)
		d[a] = hi - lo
		reduceSumKernel(out[lo*ob:hi*ob], x[lo*xb:hi*xb], d, reduced)
	})
}

// reduceSumKernel computes out = Σ over the reduced axes of x, visiting x in row-major order and
// adding each entry into its output entry (SimpleGo's order).
func reduceSumKernel[T float32 | float64](out, x []T, dims []int, reduced []bool) {
	for i := range out {
		out[i] = 0
	}
	if len(x) == 0 {
		return
	}
	// Groups of adjacent axes, innermost first: size and output stride (0 for reduced axes).
	var groups []bgroup
	stride := 1
	for a := len(dims) - 1; a >= 0; a-- {
		n := dims[a]
		if n == 1 {
			continue
		}
		if k := len(groups) - 1; k >= 0 && (groups[k].ls == 0) == reduced[a] {
			groups[k].size *= n
		} else if reduced[a] {
			groups = append(groups, bgroup{size: n})
		} else {
			groups = append(groups, bgroup{size: n, ls: stride})
		}
		if !reduced[a] {
			stride *= n
		}
	}
	if len(groups) == 0 {
		out[0] += x[0]
		return
	}
	// The two innermost groups run as a double loop (one reduced, one kept: in GroupNorm's [B, HW, G,
	// C/G] sums the inner run is only C/G long), the rest as an odometer; the visiting order is the
	// same row-major one.
	inner := groups[0]
	second := bgroup{size: 1}
	outer := groups[1:]
	if len(groups) > 1 {
		second, outer = groups[1], groups[2:]
	}
	// A reduced third group repeats the double loop in place (its output stride is 0), so the
	// odometer only steps over the groups beyond it: once per [HW, G, C/G] block instead of once per
	// G·C/G values in GroupNorm's sums.
	rep := 1
	if len(outer) > 0 && outer[0].ls == 0 {
		rep, outer = outer[0].size, outer[1:]
	}
	idx := make([]int, len(outer))
	op, xp := 0, 0
	n := inner.size
	for {
		for range rep {
			if inner.ls == 0 { // inner axes reduced, second kept: one output per run
				o := out[op : op+(second.size-1)*second.ls+1]
				switch n { // GroupNorm's runs of C/G = 4 or 8, unrolled (the same left-to-right sums)
				case 4:
					for j := range second.size {
						r := x[xp : xp+4 : xp+4]
						o[j*second.ls] = o[j*second.ls] + r[0] + r[1] + r[2] + r[3]
						xp += 4
					}
				case 8:
					for j := range second.size {
						r := x[xp : xp+8 : xp+8]
						o[j*second.ls] = o[j*second.ls] + r[0] + r[1] + r[2] + r[3] + r[4] + r[5] + r[6] + r[7]
						xp += 8
					}
				default:
					for j := range second.size {
						run := x[xp : xp+n]
						acc := o[j*second.ls]
						for _, v := range run {
							acc += v
						}
						o[j*second.ls] = acc
						xp += n
					}
				}
			} else { // inner axes kept, second reduced: every run adds into the same outputs
				o := out[op : op+n]
				for range second.size {
					run := x[xp : xp+n]
					for i, v := range run {
						o[i] += v
					}
					xp += n
				}
			}
		}
		if xp >= len(x) {
			return
		}
		if !advance(idx, outer, &op, new(int)) {
			return
		}
	}
}
