package compute

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/hypernoise/hypernoise/compute/dnnl"
)

// The kernel gradient of a convolution on oneDNN's backward-weights primitive.
//
// The convolution rule (conv_vjp.go, kernelGradAsConv) writes ∂L/∂K[u,c,f] = Σ_{b,o} x̃[b, s⊙o + d⊙u, c]
// · v[b,o,f] as one ConvGeneral of x with its channels as the batch and v as the kernel, whose output
// is [C, K..., F]. Lowered as usual, that transposes x and v and runs a forward convolution with a
// kernel as large as the output map. When oneDNN runs the float32 convolutions, the patched builder
// recognizes that form (its axes say: input batch last, input channels first, kernel input channels
// first) and builds one node instead, which runs oneDNN's backward-weights primitive on x [B, S..., C]
// and v [B, O..., F] as they are: the kernel gradient of the forward convolution with stride s,
// dilation d and the same leading padding. The batch is cut over the cores, each band's partial
// gradient summed; the [K..., C, F] result is written out as [C, K..., F]. A shape oneDNN refuses runs
// as im2col and one product (Pᵀ·v) in the node, and is counted.

// statConvBackWeights counts kernel-gradient nodes built; convBackWeightsUseDNNL off makes the nodes
// compute on im2col and a product (tests compare the two).
var (
	statConvBackWeights    atomic.Int64
	convBackWeightsUseDNNL atomic.Bool
)

func init() { convBackWeightsUseDNNL.Store(true) }

// convBackWeightsData is the node's configuration.
type convBackWeightsData struct {
	spec dnnl.ConvSpec // the forward convolution (N is set per band)
	im   im2colNodeData
	n    int // spatial axes, 1 or 2
}

// convBackWeightsNode builds the node for a ConvGeneral of the kernel-gradient form, or returns
// ok=false (the usual lowering then runs it).
func (b *patchedBuilder) convBackWeightsNode(input, kernel backends.Op, axes backends.ConvolveAxesConfig,
	strides []int, paddings [][2]int, inputDil, kernelDil []int, groups, batchGroups int) (backends.Op, bool, error) {
	n := len(axes.InputSpatial)
	if n < 1 || n > 2 || groups != 1 || batchGroups != 1 || convDNNLLib() == nil ||
		!b.fastPad || !b.fastGemm || !padNodeOn.Load() || !convFuseOn.Load() ||
		slices.ContainsFunc(inputDil, func(d int) bool { return d != 1 }) {
		return nil, false, nil
	}
	spatial := iotaFrom(1, n)
	if axes.InputBatch != n+1 || axes.InputChannels != 0 || !slices.Equal(axes.InputSpatial, spatial) ||
		axes.KernelInputChannels != 0 || axes.KernelOutputChannels != n+1 || !slices.Equal(axes.KernelSpatial, spatial) ||
		axes.OutputBatch != 0 || axes.OutputChannels != n+1 || !slices.Equal(axes.OutputSpatial, spatial) {
		return nil, false, nil
	}
	xn, ok1 := input.(*simplego.Node)
	vn, ok2 := kernel.(*simplego.Node)
	if !ok1 || !ok2 {
		return nil, false, nil
	}
	xs, err := b.OpShape(input)
	if err != nil {
		return nil, false, err
	}
	vs, err := b.OpShape(kernel)
	if err != nil {
		return nil, false, err
	}
	if xs.DType != dtypes.Float32 || vs.DType != dtypes.Float32 || xs.Dimensions[0] != vs.Dimensions[0] {
		return nil, false, nil
	}
	pads := paddings
	if len(pads) == 0 {
		pads = make([][2]int, n)
	}
	if slices.ContainsFunc(pads, func(p [2]int) bool { return p[0] < 0 || p[1] < 0 }) {
		return nil, false, nil
	}
	outShape, err := shapeinference.ConvGeneralOp(xs, vs, axes, strides, pads, inputDil, kernelDil, groups, batchGroups)
	if err != nil {
		return nil, false, err
	}
	// The forward convolution: x [B, S..., C] to v [B, O..., F], kernel [K..., C, F] with K = this
	// node's output spatial sizes, stride kernelDil, dilation strides, padding pads[i][0] before.
	d := &convBackWeightsData{n: n}
	lead := make([]int, n)
	for i := range n {
		lead[i] = pads[i][0]
	}
	s := convSpec2D(xs.Dimensions[1:n+1], outShape.Dimensions[1:n+1], vs.Dimensions[1:n+1], kernelDil, strides, lead,
		xs.Dimensions[n+1], vs.Dimensions[n+1])
	d.spec = s
	k, out := outShape.Dimensions[1:n+1], vs.Dimensions[1:n+1]
	// The im2col of the node's own fallback (the padded kernel also zero-fills windows past x's end).
	_, lo, err := patchLayout(xs.Dimensions, k, kernelDil, strides, out, pads)
	if err != nil {
		return nil, false, nil // the usual lowering reports it
	}
	d.im = im2colNodeData{k: slices.Clone(k), strides: slices.Clone(kernelDil), dil: slices.Clone(strides),
		out: slices.Clone(out), lo: lo}
	node := simplegoNewNode(b.Builder, backends.OpTypePad, outShape, xn, vn)
	if !setNodeData(node, d) {
		return nil, false, nil
	}
	statConvBackWeights.Add(1)
	return node, true, nil
}

// execConvBackWeights runs the node: ∂L/∂K into [C, K..., F].
func execConvBackWeights(backend *simplego.Backend, d *convBackWeightsData, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	xs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, fmt.Errorf("compute: kernel gradient operand: %w", err)
	}
	xf, _ := backend.BufferData(inputs[0])
	vf, _ := backend.BufferData(inputs[1])
	x, v := xf.([]float32), vf.([]float32)
	s := d.spec
	kpos := s.KH * s.KW
	outShape := xs.Clone()
	outShape.Dimensions = slices.Concat([]int{s.C}, d.im.k, []int{s.O})
	outBuf, outFlat, err := backend.NewSharedBuffer(0, outShape)
	if err != nil {
		return nil, err
	}
	y := outFlat.([]float32)
	hwio := make([]float32, kpos*s.C*s.O) // [Kpos, C, F]
	nb := xs.Dimensions[0]
	numO := s.OH * s.OW
	if !convBackWeightsDNNL(hwio, x, v, nb, numO, s) {
		statConvDNNLRefused.Add(1)
		// im2col and one product: hwio = Pᵀ·v with P [B·O, Kpos·C].
		p := make([]float32, nb*numO*kpos*s.C)
		im2colKernel(p, x, xs.Dimensions, &d.im)
		gemmCall(true, false, kpos*s.C, s.O, nb*numO, p, kpos*s.C, v, s.O, hwio, s.O)
	}
	// [Kpos, C, F] -> [C, Kpos, F].
	for u := range kpos {
		for c := range s.C {
			copy(y[(c*kpos+u)*s.O:][:s.O], hwio[(u*s.C+c)*s.O:][:s.O])
		}
	}
	return outBuf.(*simplego.Buffer), nil
}

// convBackWeightsDNNL computes hwio = ∂L/∂K on oneDNN, the batch of nb entries cut over the cores
// (partial gradients summed); false when oneDNN does not run it.
func convBackWeightsDNNL(hwio, x, v []float32, nb, numO int, s dnnl.ConvSpec) bool {
	lib := convDNNLLib()
	if lib == nil || !convBackWeightsUseDNNL.Load() {
		return false
	}
	parts := convGemmParts(true, nb, nb*numO*s.KH*s.KW*s.C*s.O)
	xb, vb := len(x)/nb, len(v)/nb
	var (
		mu       sync.Mutex
		partials = map[int][]float32{} // the later bands' gradients by their first entry (band 0 writes hwio)
		failed   atomic.Bool
	)
	parallelRanges(nb, parts, 1, func(lo, hi int) {
		dst := hwio
		if lo > 0 {
			dst = make([]float32, len(hwio))
		}
		bs := s
		bs.N = hi - lo
		if ran, err := lib.ConvBackwardWeights2D(bs, dst, x[lo*xb:hi*xb], v[lo*vb:hi*vb]); !ran || err != nil {
			failed.Store(true)
			return
		}
		statConvDNNL.Add(1)
		if lo > 0 {
			mu.Lock()
			partials[lo] = dst
			mu.Unlock()
		}
	})
	if failed.Load() {
		return false
	}
	// Summed in band order, so that the result does not depend on which band finished first.
	for _, lo := range slices.Sorted(maps.Keys(partials)) {
		binary32(backends.OpTypeAdd, hwio, hwio, partials[lo])
	}
	return true
}
