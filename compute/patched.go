package compute

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// The patched pure-Go backend.
//
// patchedBackend is GoMLX's SimpleGo backend with three builder operations filled in or corrected, all
// composed from operations SimpleGo already executes, so no new kernel is involved:
//
//   - Pad (start, end and interior padding, negative start/end meaning cropping), needed by the gradients
//     of Slice, ConvGeneral and pooling;
//   - Reverse (needed by the gradient of ConvGeneral);
//   - ConvGeneral with nil strides or kernel dilations (SimpleGo took nil as 0) and with input dilation
//     (which GoMLX's strided-convolution gradient uses and SimpleGo does not run): input dilation d is
//     exactly interior padding with d-1 zeros, so it is rewritten as Pad followed by an undilated conv.
//
// It also runs ops one after another by default (see newPatched).

// PatchedName is the backend name of the patched pure-Go backend (it replaces SimpleGo's own registration
// of the same name), and StockName the name under which the unpatched SimpleGo stays available.
const (
	PatchedName = "go"
	StockName   = "go-stock"
)

func init() {
	// simplego's init has run (we import it), so this replaces its "go" entry; SimpleGo itself stays
	// reachable as "go-stock". backends.New() with no GOMLX_BACKEND then picks the patched backend too.
	backends.Register(PatchedName, newPatched)
	backends.Register(StockName, simplego.New)
	backends.DefaultConfig = PatchedName
}

// newPatched starts the patched backend. Unless config says "ops_parallel", ops run one after another
// ("ops_sequential"), each heavy op (DotGeneral, ConvGeneral) still spreading over all cores: SimpleGo's
// parallel op scheduler reuses buffers in place while other ops may still read them (go test -race reports
// it in ordinary gradient graphs), and on this project's benchmarks sequential ops are as fast.
func newPatched(config string) (backends.Backend, error) {
	config, useBLAS := cutOption(config, "blas=off")
	config, useFastOps := cutOption(config, "fastops=off")
	if !strings.Contains(config, "ops_parallel") && !strings.Contains(config, "ops_sequential") {
		if config != "" {
			config += ","
		}
		config += "ops_sequential"
	}
	inner, err := simplego.New(config)
	if err != nil {
		return nil, err
	}
	sb, ok := inner.(*simplego.Backend)
	if !ok {
		return nil, fmt.Errorf("simplego.New returned %T, expected *simplego.Backend", inner)
	}
	if useBLAS {
		enableFastDot(sb)
	}
	if useFastOps {
		installFastOps()
		installPadNode()
		fastOpsBackends.Store(sb, true)
	}
	caps := sb.Capabilities().Clone()
	caps.Operations[backends.OpTypePad] = true
	caps.Operations[backends.OpTypeReverse] = true
	return &patchedBackend{Backend: sb, caps: caps}, nil
}

// patchedBackend embeds SimpleGo's backend; only Builder, Name, Description and Capabilities differ.
type patchedBackend struct {
	*simplego.Backend
	caps backends.Capabilities
}

var _ backends.Backend = (*patchedBackend)(nil)

func (b *patchedBackend) Name() string   { return "SimpleGo (go, patched by hypernoise/compute)" }
func (b *patchedBackend) String() string { return PatchedName }
func (b *patchedBackend) Description() string {
	return "Simple Go portable backend, with Pad, Reverse and ConvGeneral fixes from hypernoise/compute"
}
func (b *patchedBackend) Capabilities() backends.Capabilities { return b.caps }

// Builder returns a SimpleGo builder wrapped with the extra operations.
func (b *patchedBackend) Builder(name string) backends.Builder {
	inner := b.Backend.Builder(name)
	sb, ok := inner.(*simplego.Builder)
	if !ok {
		return inner
	}
	_, fast := fastOpsBackends.Load(b.Backend)
	_, fastGemm := fastBackends.Load(b.Backend)
	return &patchedBuilder{Builder: sb, fastPad: fast, fastGemm: fastGemm}
}

// patchedBuilder embeds SimpleGo's builder: every op it creates is a SimpleGo op of the inner builder.
type patchedBuilder struct {
	*simplego.Builder
	fastPad  bool                       // build Pad as one node (see fastpad.go), and the fused nodes
	fastGemm bool                       // the backend runs products on the GEMM library (see fastdot.go)
	tags     map[*simplego.Node]fuseTag // origins of ops, for fusing (see fuse.go)
	ntags    map[*simplego.Node]normTag // places of ops in normalization chains (see normfuse.go)
	scalars  map[*simplego.Node]float64 // values of scalar float constants
	chains   []*fusedChain              // fused normalization and softmax chains (see unfuse.go)
	convOuts map[*simplego.Node]convOut // fused convolutions on oneDNN, by returned op (see convbias.go)
	// transposes and reshapes record the operands of the builder's own Transposes and of Reshapes
	// (see normnhwc.go).
	transposes map[*simplego.Node]transposeRec
	reshapes   map[*simplego.Node]*simplego.Node
	// dots records the builder's products (see attention.go).
	dots map[*simplego.Node]dotRec
}

var _ backends.Builder = (*patchedBuilder)(nil)

// ones returns n ones.
func ones(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// sliceAxis takes x[..., start:limit, ...] on one axis.
func (b *patchedBuilder) sliceAxis(x backends.Op, shape shapes.Shape, axis, start, limit, stride int) (backends.Op, error) {
	rank := shape.Rank()
	starts := make([]int, rank)
	limits := slices.Clone(shape.Dimensions)
	strides := ones(rank)
	starts[axis], limits[axis], strides[axis] = start, limit, stride
	return b.Builder.Slice(x, starts, limits, strides)
}

// fillBlock broadcasts the scalar fill to a tensor of the given shape.
func (b *patchedBuilder) fillBlock(fill backends.Op, shape shapes.Shape) (backends.Op, error) {
	return b.Builder.BroadcastInDim(fill, shape, nil)
}

// Pad implements backends.Builder. For each axis with config (start, end, interior):
//
//	interior: x[...,n,...] -> reshape [...,n,1,...] ++ fill[...,n,interior,...] (axis+1) -> reshape
//	          [...,n(1+interior),...] -> keep the first n+(n-1)·interior entries;
//	start, end > 0: concatenate fill blocks before / after;  < 0: slice that many entries off.
func (b *patchedBuilder) Pad(x, fill backends.Op, axesConfig ...backends.PadAxis) (backends.Op, error) {
	shape, err := b.OpShape(x)
	if err != nil {
		return nil, err
	}
	fillShape, err := b.OpShape(fill)
	if err != nil {
		return nil, err
	}
	if !fillShape.IsScalar() || fillShape.DType != shape.DType {
		return nil, fmt.Errorf("Pad: fill value must be a scalar of dtype %s, got %s", shape.DType, fillShape)
	}
	if len(axesConfig) > shape.Rank() {
		return nil, fmt.Errorf("Pad: %d axes configured for an operand of shape %s", len(axesConfig), shape)
	}
	if node, ok, err := b.padNode(x, fill, axesConfig); err != nil || ok {
		return node, err
	}
	shape = shape.Clone() // Dimensions are updated below; never alias the op's own shape.
	for axis, cfg := range axesConfig {
		if cfg.Interior < 0 {
			return nil, fmt.Errorf("Pad: negative interior padding %d on axis %d", cfg.Interior, axis)
		}
		n := shape.Dimensions[axis]
		// Interior padding.
		if cfg.Interior > 0 && n > 1 {
			if x, shape, err = b.padInterior(x, fill, shape, axis, cfg.Interior); err != nil {
				return nil, err
			}
			n = shape.Dimensions[axis]
		}
		// Negative padding crops.
		if cfg.Start < 0 || cfg.End < 0 {
			lo, hi := max(-cfg.Start, 0), n-max(-cfg.End, 0)
			if hi < lo {
				return nil, fmt.Errorf("Pad: negative padding %+v on axis %d crops more than its %d entries", cfg, axis, n)
			}
			x, err = b.sliceAxis(x, shape, axis, lo, hi, 1)
			if err != nil {
				return nil, err
			}
			shape.Dimensions[axis] = hi - lo
			n = hi - lo
		}
		// Positive padding concatenates fill blocks.
		if cfg.Start > 0 || cfg.End > 0 {
			parts := make([]backends.Op, 0, 3)
			if cfg.Start > 0 {
				dims := slices.Clone(shape.Dimensions)
				dims[axis] = cfg.Start
				block, err := b.fillBlock(fill, shapes.Make(shape.DType, dims...))
				if err != nil {
					return nil, err
				}
				parts = append(parts, block)
			}
			if n > 0 {
				parts = append(parts, x)
			}
			if cfg.End > 0 {
				dims := slices.Clone(shape.Dimensions)
				dims[axis] = cfg.End
				block, err := b.fillBlock(fill, shapes.Make(shape.DType, dims...))
				if err != nil {
					return nil, err
				}
				parts = append(parts, block)
			}
			if len(parts) == 1 {
				x = parts[0]
			} else {
				x, err = b.Builder.Concatenate(axis, parts...)
				if err != nil {
					return nil, err
				}
			}
			n += max(cfg.Start, 0) + max(cfg.End, 0)
			shape.Dimensions[axis] = n
		}
	}
	return x, nil
}

// padInterior inserts d fill entries between consecutive entries of axis (n > 1 entries): x is
// reshaped to [..., n, 1, ...], concatenated with a fill block [..., n, d, ...] on axis+1, merged
// to [..., n(1+d), ...] and cut to its first n + (n-1)d entries. It returns the result and its shape.
func (b *patchedBuilder) padInterior(x, fill backends.Op, shape shapes.Shape, axis, d int) (backends.Op, shapes.Shape, error) {
	n := shape.Dimensions[axis]
	expanded := slices.Insert(slices.Clone(shape.Dimensions), axis+1, 1)
	xe, err := b.Builder.Reshape(x, expanded...)
	if err != nil {
		return nil, shape, err
	}
	blockDims := slices.Clone(expanded)
	blockDims[axis+1] = d
	block, err := b.fillBlock(fill, shapes.Make(shape.DType, blockDims...))
	if err != nil {
		return nil, shape, err
	}
	cat, err := b.Builder.Concatenate(axis+1, xe, block)
	if err != nil {
		return nil, shape, err
	}
	merged := slices.Clone(shape.Dimensions)
	merged[axis] = n * (1 + d)
	if x, err = b.Builder.Reshape(cat, merged...); err != nil {
		return nil, shape, err
	}
	shape = shapes.Make(shape.DType, merged...)
	newN := n + (n-1)*d
	if x, err = b.sliceAxis(x, shape, axis, 0, newN, 1); err != nil {
		return nil, shape, err
	}
	shape.Dimensions[axis] = newN
	return x, shape, nil
}

// reverseBySlicesMax is the largest axis reversed by concatenating single-entry slices; longer axes use
// one Gather with indices n-1, ..., 0.
const reverseBySlicesMax = 8

// Reverse implements backends.Builder: y[..., i, ...] = x[..., n-1-i, ...] on each given axis.
func (b *patchedBuilder) Reverse(x backends.Op, axes ...int) (backends.Op, error) {
	shape, err := b.OpShape(x)
	if err != nil {
		return nil, err
	}
	shape = shape.Clone()
	rank := shape.Rank()
	for _, axis := range axes {
		if axis < 0 {
			axis += rank
		}
		if axis < 0 || axis >= rank {
			return nil, fmt.Errorf("Reverse: axis out of range for shape %s", shape)
		}
		n := shape.Dimensions[axis]
		if n <= 1 {
			continue
		}
		if n <= reverseBySlicesMax {
			parts := make([]backends.Op, n)
			for i := range n {
				parts[i], err = b.sliceAxis(x, shape, axis, n-1-i, n-i, 1)
				if err != nil {
					return nil, err
				}
			}
			x, err = b.Builder.Concatenate(axis, parts...)
			if err != nil {
				return nil, err
			}
			continue
		}
		// Gather: indices [n,1] = n-1-i; the gathered (batch) axis takes the place of axis, all other
		// operand axes are offset axes kept whole.
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(n - 1 - i)
		}
		indices, err := b.Builder.Constant(idx, n, 1)
		if err != nil {
			return nil, err
		}
		offsetAxes := make([]int, 0, rank-1)
		for a := range rank {
			if a != axis {
				offsetAxes = append(offsetAxes, a)
			}
		}
		sliceSizes := slices.Clone(shape.Dimensions)
		sliceSizes[axis] = 1
		x, err = b.Builder.Gather(x, indices, 1, offsetAxes, []int{axis}, []int{axis}, sliceSizes, false)
		if err != nil {
			return nil, err
		}
	}
	return x, nil
}

// ConvGeneral implements backends.Builder, filling nil strides and kernel dilations with ones and
// replacing input dilation by interior zero padding of the input.
func (b *patchedBuilder) ConvGeneral(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDilations, kernelDilations []int,
	channelGroupCount, batchGroupCount int) (backends.Op, error) {
	nSpatial := len(axes.InputSpatial)
	fill := func(v []int) []int {
		if len(v) == 0 {
			return ones(nSpatial)
		}
		v = slices.Clone(v)
		for i := range v {
			if v[i] <= 0 {
				v[i] = 1
			}
		}
		return v
	}
	strides, kernelDilations, inputDilations = fill(strides), fill(kernelDilations), fill(inputDilations)
	if y, ok, err := b.convBackWeightsNode(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount); err != nil || ok {
		return y, err
	}
	if y, ok, err := b.lowerDilatedConv(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount); err != nil || ok {
		return y, err
	}
	if slices.ContainsFunc(inputDilations, func(d int) bool { return d > 1 }) {
		shape, err := b.OpShape(input)
		if err != nil {
			return nil, err
		}
		zero, err := b.zeroScalar(shape)
		if err != nil {
			return nil, err
		}
		cfg := make([]backends.PadAxis, shape.Rank())
		for i, axis := range axes.InputSpatial {
			cfg[axis].Interior = inputDilations[i] - 1
		}
		input, err = b.Pad(input, zero, cfg...)
		if err != nil {
			return nil, err
		}
		inputDilations = ones(nSpatial)
	}
	if y, ok, err := b.lowerConv(input, kernel, axes, strides, paddings, kernelDilations,
		channelGroupCount, batchGroupCount); err != nil || ok {
		return y, err
	}
	return b.Builder.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
		channelGroupCount, batchGroupCount)
}

// zeroScalar is a scalar zero constant of shape's dtype.
func (b *patchedBuilder) zeroScalar(shape shapes.Shape) (backends.Op, error) {
	goType := shape.DType.GoType()
	if goType == nil {
		return nil, fmt.Errorf("no Go type for dtype %s", shape.DType)
	}
	flat := reflect.MakeSlice(reflect.SliceOf(goType), 1, 1).Interface()
	return b.Builder.Constant(flat)
}

// cutOption removes the comma-separated option opt from config and reports whether it was absent.
func cutOption(config, opt string) (rest string, absent bool) {
	parts := strings.Split(config, ",")
	kept := parts[:0]
	absent = true
	for _, p := range parts {
		if strings.TrimSpace(p) == opt {
			absent = false
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ","), absent
}
