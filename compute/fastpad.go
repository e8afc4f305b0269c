package compute

import (
	"fmt"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Pad as one node.
//
// SimpleGo has no Pad; patchedBuilder.Pad composes it from BroadcastInDim, Concatenate, Reshape and
// Slice, which moves the data several times (a convolution's backward pass pads once per kernel
// position). On the patched backend Pad is instead a single SimpleGo node of type OpTypePad (for which
// SimpleGo has no executor of its own) whose executor, installed here, writes each output entry once:
//
//	y[o] = x[i] where o = s + i·(1+d) on every axis (inside the output), the fill value elsewhere.
//
// Creating the node needs SimpleGo's unexported Builder.newNode (go:linkname) and setting its
// unexported data field; the first patched backend checks the node against the composed Pad on
// several configurations and keeps the composed one if they differ or anything is not as expected.

//go:linkname simplegoNewNode github.com/gomlx/gomlx/backends/simplego.(*Builder).newNode
func simplegoNewNode(b *simplego.Builder, opType backends.OpType, shape shapes.Shape, inputs ...*simplego.Node) *simplego.Node

// padNodeData is the data of a Pad node.
type padNodeData struct {
	cfg []backends.PadAxis // one per axis
}

var (
	padNodeOnce sync.Once
	padNodeOn   atomic.Bool
	padNodeWhy  string
)

// installPadNode registers the Pad executor and self-tests the node, once.
func installPadNode() {
	padNodeOnce.Do(func() {
		if simplegoNodeExecutors[backends.OpTypePad] != nil {
			padNodeWhy = "SimpleGo now has its own Pad executor"
			return
		}
		if _, ok := reflect.TypeOf(simplego.Node{}).FieldByName("data"); !ok {
			padNodeWhy = "simplego.Node has no data field"
			return
		}
		simplegoNodeExecutors[backends.OpTypePad] = execPadNode
		padNodeOn.Store(true)
		if err := selfTestPadNode(); err != nil {
			padNodeOn.Store(false)
			simplegoNodeExecutors[backends.OpTypePad] = nil
			padNodeWhy = "Pad node self-test failed: " + err.Error()
		}
	})
}

// setNodeData stores v in a SimpleGo node's unexported data field.
func setNodeData(node *simplego.Node, v any) bool {
	f := reflect.ValueOf(node).Elem().FieldByName("data")
	if !f.IsValid() || f.Kind() != reflect.Interface || !f.CanAddr() {
		return false
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(&v).Elem())
	return true
}

// getNodeData returns a SimpleGo node's data field as an interface value.
func getNodeData(node *simplego.Node) any {
	f := reflect.ValueOf(node).Elem().FieldByName("data")
	if !f.IsValid() || f.Kind() != reflect.Interface || !f.CanAddr() {
		return nil
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Interface()
}

// padOutDims is the padded shape's dimensions, or an error for a configuration that crops more than
// an axis holds.
func padOutDims(dims []int, cfg []backends.PadAxis) ([]int, error) {
	out := make([]int, len(dims))
	for a, n := range dims {
		c := backends.PadAxis{}
		if a < len(cfg) {
			c = cfg[a]
		}
		if c.Interior < 0 {
			return nil, fmt.Errorf("Pad: negative interior padding %d on axis %d", c.Interior, a)
		}
		size := n
		if n > 0 {
			size += (n - 1) * c.Interior
		}
		size += c.Start + c.End
		if size < 0 {
			return nil, fmt.Errorf("Pad: padding %+v on axis %d crops more than its %d entries", c, a, n)
		}
		out[a] = size
	}
	return out, nil
}

// padNode builds the single Pad node, or returns ok=false to use the composed Pad.
func (b *patchedBuilder) padNode(x, fill backends.Op, cfg []backends.PadAxis) (backends.Op, bool, error) {
	if !b.fastPad || !padNodeOn.Load() {
		return nil, false, nil
	}
	xn, ok1 := x.(*simplego.Node)
	fn, ok2 := fill.(*simplego.Node)
	if !ok1 || !ok2 {
		return nil, false, nil
	}
	shape, err := b.OpShape(x)
	if err != nil || (shape.DType != dtypes.Float32 && shape.DType != dtypes.Float64) {
		return nil, false, nil
	}
	outDims, err := padOutDims(shape.Dimensions, cfg)
	if err != nil {
		return nil, false, err
	}
	full := make([]backends.PadAxis, shape.Rank())
	copy(full, cfg)
	node := simplegoNewNode(b.Builder, backends.OpTypePad, shapes.Make(shape.DType, outDims...), xn, fn)
	if !setNodeData(node, &padNodeData{cfg: full}) {
		return nil, false, nil
	}
	return node, true, nil
}

// execPadNode is the executor of this package's own nodes, which all carry OpTypePad: it dispatches on
// the node's data (a Pad, an im2col patch extraction or a col2im scatter, see im2col.go, or a
// logistic's gradient, see fuse.go, a normalization, see normfuse.go, a softmax, see softmaxfuse.go,
// a fused attention, see attention.go, a row gather, see gather.go, or the interleave of an
// upsampled convolution, see upconv.go).
func execPadNode(backend *simplego.Backend, node *simplego.Node, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	switch data := getNodeData(node).(type) {
	case *sigmoidGradNodeData:
		return execSigmoidGrad(backend, data, inputs, owned)
	case *siluGradNodeData:
		return execSiluGrad(backend, data, inputs, owned)
	case *normNodeData:
		return execNorm(backend, data, inputs, owned)
	case *softmaxNodeData:
		return execSoftmax(backend, data, inputs, owned)
	case *attnNodeData:
		return execAttention(backend, data, inputs)
	case *padNodeData:
		return execPad(backend, data, inputs)
	case *im2colNodeData:
		return execIm2col(backend, data, inputs)
	case *col2imNodeData:
		return execCol2im(backend, data, inputs)
	case *convGemmNodeData:
		return execConvGemm(backend, data, inputs)
	case *convScatterNodeData:
		return execConvScatter(backend, data, inputs)
	case *convBackWeightsData:
		return execConvBackWeights(backend, data, inputs)
	case *gatherRowsData:
		return execGatherRows(backend, node, inputs)
	case *upInterleaveData:
		return execUpInterleave(backend, inputs)
	case *phaseKernelData:
		return execPhaseKernels(backend, inputs)
	}
	return nil, fmt.Errorf("compute: node of type Pad without a configuration")
}

// execPad runs a Pad node.
func execPad(backend *simplego.Backend, data *padNodeData, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	xs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	outDims, err := padOutDims(xs.Dimensions, data.cfg)
	if err != nil {
		return nil, err
	}
	xf, _ := backend.BufferData(inputs[0])
	ff, _ := backend.BufferData(inputs[1])
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(xs.DType, outDims...))
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		padParallel(out, xf.([]float32), ff.([]float32)[0], xs.Dimensions, data.cfg, outDims)
	case []float64:
		padParallel(out, xf.([]float64), ff.([]float64)[0], xs.Dimensions, data.cfg, outDims)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: Pad node of dtype %s", xs.DType)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// padKernel writes out = Pad(x, fill, cfg): the fill value everywhere, then x[i] at o = s + i·(1+d)
// for every input index whose o lies inside the output on every axis.
func padKernel[T float32 | float64](out, x []T, fill T, inDims []int, cfg []backends.PadAxis, outDims []int) {
	rank := len(inDims)
	if len(out) == 0 {
		return
	}
	if rank == 0 {
		out[0] = x[0]
		return
	}
	for i := range out {
		out[i] = fill
	}
	inStrides, outStrides := make([]int, rank), make([]int, rank)
	si, so := 1, 1
	for a := rank - 1; a >= 0; a-- {
		inStrides[a], outStrides[a] = si, so
		si *= inDims[a]
		so *= outDims[a]
	}
	// Input index range [lo, hi) per axis landing inside the output.
	lo, hi, step := make([]int, rank), make([]int, rank), make([]int, rank)
	for a := range rank {
		step[a] = 1 + cfg[a].Interior
		s := cfg[a].Start
		if s < 0 {
			lo[a] = (-s + step[a] - 1) / step[a]
		}
		last := outDims[a] - 1 - s // largest i·step allowed
		if last < 0 {
			return
		}
		hi[a] = min(inDims[a], last/step[a]+1)
		if lo[a] >= hi[a] {
			return
		}
	}
	idx := make([]int, rank-1)
	for a := range idx {
		idx[a] = lo[a]
	}
	ip, op := 0, 0
	for a := range rank {
		ip += lo[a] * inStrides[a]
		op += (cfg[a].Start + lo[a]*step[a]) * outStrides[a]
	}
	last := rank - 1
	n := hi[last] - lo[last]
	st := step[last]
	for {
		if st == 1 {
			copy(out[op:op+n], x[ip:ip+n])
		} else {
			for k := range n {
				out[op+k*st] = x[ip+k]
			}
		}
		a := rank - 2
		for ; a >= 0; a-- {
			idx[a]++
			ip += inStrides[a]
			op += step[a] * outStrides[a]
			if idx[a] < hi[a] {
				break
			}
			cnt := idx[a] - lo[a]
			ip -= cnt * inStrides[a]
			op -= cnt * step[a] * outStrides[a]
			idx[a] = lo[a]
		}
		if a < 0 {
			return
		}
	}
}

// padSelfTestCases cover start/end padding, cropping, interior padding and a mix.
var padSelfTestCases = []struct {
	dims []int
	cfg  []backends.PadAxis
}{
	{[]int{3, 4}, []backends.PadAxis{{Start: 1, End: 2}, {Start: 0, End: 3}}},
	{[]int{4, 3, 2}, []backends.PadAxis{{Start: -1, End: 2, Interior: 1}, {Start: 2, End: -3, Interior: 2}, {}}},
	{[]int{2, 5, 5, 3}, []backends.PadAxis{{}, {Start: 2, End: 1, Interior: 1}, {Start: 1, End: 2, Interior: 1}, {}}},
	{[]int{5}, []backends.PadAxis{{Start: -2, End: -1}}},
}

// selfTestPadNode compares the Pad node with the composed Pad on padSelfTestCases.
func selfTestPadNode() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	for _, tc := range padSelfTestCases {
		var results [2][]float64
		for i, node := range []bool{true, false} {
			inner, err := simplego.New("ops_sequential")
			if err != nil {
				return err
			}
			sb := inner.(*simplego.Backend)
			pb := &patchedBuilder{Builder: sb.Builder("pad-selftest").(*simplego.Builder), fastPad: node}
			n := 1
			for _, d := range tc.dims {
				n *= d
			}
			flat := make([]float32, n)
			for j := range flat {
				flat[j] = float32(j%13) - 6
			}
			x, err := pb.Constant(flat, tc.dims...)
			if err != nil {
				return err
			}
			fill, err := pb.Constant([]float32{0.5})
			if err != nil {
				return err
			}
			y, err := pb.Pad(x, fill, tc.cfg...)
			if err != nil {
				return err
			}
			if _, isNode := getNodeDataOf(y).(*padNodeData); isNode != node {
				return fmt.Errorf("Pad built the %v node where %v was expected", isNode, node)
			}
			exec, err := pb.Compile([]backends.Op{y}, nil)
			if err != nil {
				return err
			}
			outs, err := exec.Execute(nil, nil, 0)
			if err != nil {
				return err
			}
			f, err := sb.BufferData(outs[0])
			if err != nil {
				return err
			}
			for _, v := range f.([]float32) {
				results[i] = append(results[i], float64(v))
			}
			sb.Finalize()
		}
		if len(results[0]) != len(results[1]) {
			return fmt.Errorf("Pad %v on %v: %d values, composed Pad %d", tc.cfg, tc.dims, len(results[0]), len(results[1]))
		}
		for j := range results[0] {
			if results[0][j] != results[1][j] && !(math.IsNaN(results[0][j]) && math.IsNaN(results[1][j])) {
				return fmt.Errorf("Pad %v on %v: value %d is %g, composed Pad gives %g", tc.cfg, tc.dims, j, results[0][j], results[1][j])
			}
		}
	}
	return nil
}

// getNodeDataOf is getNodeData for a backends.Op that may not be a SimpleGo node.
func getNodeDataOf(op backends.Op) any {
	if n, ok := op.(*simplego.Node); ok {
		return getNodeData(n)
	}
	return nil
}
