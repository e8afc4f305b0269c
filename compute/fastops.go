package compute

import (
	"fmt"
	"reflect"
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
//   - Add, Sub, Mul with broadcasting merge adjacent axes with the same broadcast pattern and run
//     the innermost merged axis as a tight loop over a contiguous or constant operand.
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
		for _, op := range []backends.OpType{backends.OpTypeSlice, backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul} {
			stockExec[op] = simplegoNodeExecutors[op]
			if stockExec[op] == nil {
				continue // table not as expected: leave this op alone
			}
		}
		if stockExec[backends.OpTypeSlice] != nil {
			simplegoNodeExecutors[backends.OpTypeSlice] = fastSlice
		}
		for _, op := range []backends.OpType{backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul} {
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
		ls.Size() == 1 || rs.Size() == 1 || ls.Equal(rs) || ls.Rank() != rs.Rank() {
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
		broadcastBinary(op, out, lf.([]float32), rf.([]float32), ls.Dimensions, rs.Dimensions, outDims)
	case []float64:
		broadcastBinary(op, out, lf.([]float64), rf.([]float64), ls.Dimensions, rs.Dimensions, outDims)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// bgroup is a run of adjacent output axes with the same broadcast pattern: its size and each operand's
// stride (0 where the operand is broadcast).
type bgroup struct{ size, ls, rs int }

// broadcastBinary computes out = l op r with numpy-style broadcasting of equal-rank operands.
func broadcastBinary[T float32 | float64](op backends.OpType, out, l, r []T, lDims, rDims, outDims []int) {
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
	if len(groups) == 0 {
		out[0] = binOp(op, l[0], r[0])
		return
	}
	inner := groups[0]
	outerGroups := groups[1:] // innermost first
	idx := make([]int, len(outerGroups))
	lp, rp, o := 0, 0, 0
	for {
		n := inner.size
		lo, ro, oo := l[lp:], r[rp:], out[o:o+n]
		switch {
		case inner.ls != 0 && inner.rs != 0:
			lo, ro = lo[:n], ro[:n]
			switch op {
			case backends.OpTypeAdd:
				for i := range oo {
					oo[i] = lo[i] + ro[i]
				}
			case backends.OpTypeSub:
				for i := range oo {
					oo[i] = lo[i] - ro[i]
				}
			default:
				for i := range oo {
					oo[i] = lo[i] * ro[i]
				}
			}
		case inner.ls == 0:
			c, ro := lo[0], ro[:n]
			switch op {
			case backends.OpTypeAdd:
				for i := range oo {
					oo[i] = c + ro[i]
				}
			case backends.OpTypeSub:
				for i := range oo {
					oo[i] = c - ro[i]
				}
			default:
				for i := range oo {
					oo[i] = c * ro[i]
				}
			}
		default:
			lo, c := lo[:n], ro[0]
			switch op {
			case backends.OpTypeAdd:
				for i := range oo {
					oo[i] = lo[i] + c
				}
			case backends.OpTypeSub:
				for i := range oo {
					oo[i] = lo[i] - c
				}
			default:
				for i := range oo {
					oo[i] = lo[i] * c
				}
			}
		}
		o += n
		if o >= len(out) {
			return
		}
		// Advance the odometer over the outer groups (innermost first). Group strides are per step of
		// the group's innermost axis, so a group of size n advances by n·(inner extents) in the output
		// implicitly through o; the operands move by their group stride.
		g := 0
		for ; g < len(outerGroups); g++ {
			idx[g]++
			lp += outerGroups[g].ls
			rp += outerGroups[g].rs
			if idx[g] < outerGroups[g].size {
				break
			}
			lp -= outerGroups[g].ls * idx[g]
			rp -= outerGroups[g].rs * idx[g]
			idx[g] = 0
		}
		if g == len(outerGroups) {
			return
		}
	}
}

func binOp[T float32 | float64](op backends.OpType, a, b T) T {
	switch op {
	case backends.OpTypeAdd:
		return a + b
	case backends.OpTypeSub:
		return a - b
	}
	return a * b
}
