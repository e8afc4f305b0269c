package compute

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Row gathers.
//
// An embedding lookup, or the ONNX Gather on axis 0 with which an imported text-to-image model reads
// each prompt's row of its text-embedding table, is a Gather in which every index picks one whole
// slice along the operand's first axis:
//
//	startIndexMap = collapsedSliceAxes = [0],  sliceSizes = [1, d1, …, dn],
//	the index vector is the indices' last axis (of size 1), the offset axes the output's last n,
//
// so out[b] = x[clamp(idx[b], 0, d0-1)] for every batch position b of the indices (XLA's Gather
// clamps a start index so that the slice stays inside the operand). SimpleGo's generic Gather copies
// such a gather element by element through its index iterator (0.4 ms for a [2 77 512] read of an
// [8 77 512] table); the patched builder builds it as its own node, which copies each row with one
// copy. Other gathers, and operands of other dtypes, stay SimpleGo's.

// gatherRowsData is the data of a row-gather node (inputs x and the indices).
type gatherRowsData struct{}

// statGatherRows counts row gathers run (for tests).
var statGatherRows atomic.Int64

// Gather implements backends.Builder, building row gathers (above) as one node.
func (b *patchedBuilder) Gather(operand, startIndices backends.Op, indexVectorAxis int,
	offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes []int, indicesAreSorted bool) (backends.Op, error) {
	op, err := b.Builder.Gather(operand, startIndices, indexVectorAxis, offsetOutputAxes,
		collapsedSliceAxes, startIndexMap, sliceSizes, indicesAreSorted)
	if err != nil {
		return op, err
	}
	xn, ok1 := operand.(*simplego.Node)
	in, ok2 := startIndices.(*simplego.Node)
	xs, err1 := b.OpShape(operand)
	is, err2 := b.OpShape(startIndices)
	outShape, err3 := b.OpShape(op)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || err3 != nil ||
		!isRowGather(xs, is, indexVectorAxis, offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes) {
		return op, nil
	}
	node := simplegoNewNode(b.Builder, backends.OpTypePad, outShape.Clone(), xn, in)
	if !setNodeData(node, &gatherRowsData{}) {
		return op, nil
	}
	return node, nil
}

// isRowGather says whether a Gather of x by the indices is a row gather (above) of a dtype
// execGatherRows copies.
func isRowGather(xs, is shapes.Shape, indexVectorAxis int, offsetOutputAxes, collapsedSliceAxes,
	startIndexMap, sliceSizes []int) bool {
	switch xs.DType {
	case dtypes.Float32, dtypes.Float64, dtypes.Int32, dtypes.Int64:
	default:
		return false
	}
	if !is.DType.IsInt() || xs.Rank() < 1 || is.Rank() < 1 {
		return false
	}
	q := is.Rank() - 1
	if indexVectorAxis != q || is.Dimensions[q] != 1 || !slices.Equal(startIndexMap, []int{0}) ||
		!slices.Equal(collapsedSliceAxes, []int{0}) || len(sliceSizes) != xs.Rank() || sliceSizes[0] != 1 {
		return false
	}
	if xs.Dimensions[0] < 1 {
		return false
	}
	for k := 1; k < xs.Rank(); k++ {
		if sliceSizes[k] != xs.Dimensions[k] {
			return false
		}
	}
	if len(offsetOutputAxes) != xs.Rank()-1 {
		return false
	}
	for k, a := range offsetOutputAxes {
		if a != q+k {
			return false
		}
	}
	return true
}

// indexInts converts a flat buffer of integer indices (any integer dtype) to ints, saturating
// unsigned values beyond the int range (they are clamped to the last row anyway); ok is false for
// a buffer that is not of an integer type.
func indexInts(flat any) (idx []int, ok bool) {
	v := reflect.ValueOf(flat)
	if v.Kind() != reflect.Slice {
		return nil, false
	}
	idx = make([]int, v.Len())
	switch v.Type().Elem().Kind() {
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		for i := range idx {
			idx[i] = int(v.Index(i).Int())
		}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		for i := range idx {
			idx[i] = int(min(v.Index(i).Uint(), math.MaxInt64))
		}
	default:
		return nil, false
	}
	return idx, true
}

// execGatherRows runs a row-gather node: out[b] = x[clamp(idx[b], 0, d0-1)].
func execGatherRows(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	xs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	is, err := backend.BufferShape(inputs[1])
	if err != nil {
		return nil, err
	}
	xf, _ := backend.BufferData(inputs[0])
	idxFlat, _ := backend.BufferData(inputs[1])
	idx, ok := indexInts(idxFlat)
	if !ok {
		return nil, fmt.Errorf("compute: row gather with indices of dtype %s", is.DType)
	}
	outShape := shapes.Make(xs.DType, slices.Concat(is.Dimensions[:is.Rank()-1], xs.Dimensions[1:])...)
	outBuf, outFlat, err := backend.NewSharedBuffer(0, outShape)
	if err != nil {
		return nil, err
	}
	d0 := xs.Dimensions[0]
	switch out := outFlat.(type) {
	case []float32:
		gatherRows(out, xf.([]float32), idx, d0)
	case []float64:
		gatherRows(out, xf.([]float64), idx, d0)
	case []int32:
		gatherRows(out, xf.([]int32), idx, d0)
	case []int64:
		gatherRows(out, xf.([]int64), idx, d0)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: row gather of dtype %s", xs.DType)
	}
	statGatherRows.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// gatherRows copies row clamp(idx[b], 0, d0-1) of x (d0 rows) to row b of out.
func gatherRows[T any](out, x []T, idx []int, d0 int) {
	row := len(x) / d0
	for b, i := range idx {
		i = max(0, min(d0-1, i))
		copy(out[b*row:(b+1)*row], x[i*row:(i+1)*row])
	}
}
