package compute

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// A 3x3 convolution of a nearest 2x upsampling, computed at the low resolution.
//
// The up blocks of a UNet and a VAE decoder upsample x [N, H, W, C] by nearest neighbour,
// U[p, q] = x[⌊p/2⌋, ⌊q/2⌋], and convolve U with a 3x3 kernel K (stride 1, zero padding 1). Output
// pixel (2i+a, 2j+b), a, b ∈ {0, 1}, reads U at rows 2i+a-1 … 2i+a+1, which are x's rows i-1, i, i
// (a = 0) or i, i, i+1 (a = 1), and likewise for columns; so each of the four phases (a, b) is a
// 2x2 convolution of x itself with the kernel whose taps along each spatial axis are summed as
//
//	a = 0:  [K₀, K₁ + K₂] on rows i-1, i        a = 1:  [K₀ + K₁, K₂] on rows i, i+1
//
// (the zero padding of U is x's zero padding). One 2x2 convolution of x padded by 1 on every side,
// with the four phase kernels stacked as 4·Cout output channels, gives Y [N, H+1, W+1, 4·Cout], and
//
//	y[n, 2i+a, 2j+b, o] = Y[n, i+a, j+b, (2a+b)·Cout + o],
//
// which one node (upInterleaveData) writes. That is 4·4 = 16 multiply-adds per output pixel and
// channel pair in place of 9·4 = 36 per 2x2 block, and the upsampled image is never written (when
// nothing else reads it). The values are the convolution's up to float rounding: the summed taps
// change the order of the additions.
//
// The lowering (conv_lower.go) applies it to a convolution on oneDNN with an OIHW kernel whose
// channels-last input is the repeat models/onnx/shim writes for a nearest upsampling by 2
// (Reshape(BroadcastInDim(Reshape(x))) along H, then along W, see upsampleSource). A per-channel
// bias is folded into the 2x2 convolution, tiled four times (convbias.go). Gradients are GoMLX's
// of the original convolution, which read U and not this node, so they are untouched.

// upInterleaveData is the data of the node that writes y from Y (above); its input is Y.
type upInterleaveData struct{}

var (
	// upConvOn switches the rewrite on (tests compare it with the plain convolution).
	upConvOn atomic.Bool
	// statUpConv counts convolutions built this way (for tests).
	statUpConv atomic.Int64
)

func init() {
	upConvOn.Store(true)
	upConvMinPixels.Store(1024)
}

// upConvMinPixels is the least number of low-resolution pixels (N·H·W) for which the rewrite is
// built (default 1024; SetUpsampledConvMinPixels). The phase kernels are summed on every call: at
// SD-Turbo's 1280 channels on a 16x16 image at batch 1 that node took 121 ms and the 2x2
// convolution 107 ms, against 121 ms for the plain 3x3 one (one profile of five forwards); on 32x32
// with 640 channels, 4 ms and 58 ms against 102. Those kernel sums were 1c41f9f's single-threaded
// loop; the parallel pass that replaced it was not timed at that size, so the threshold may be
// higher than it needs to be.
var upConvMinPixels atomic.Int64

// SetUpsampledConvMinPixels sets the least number of low-resolution pixels N·H·W for which a
// convolution of an upsampling is built at the low resolution (above), for graphs built afterwards,
// and returns the previous value. Tests of small imported models lower it to check that form.
func SetUpsampledConvMinPixels(n int) int { return int(upConvMinPixels.Swap(int64(n))) }

// upsampledConv builds the convolution of xc [N, 2H, 2W, Cin] with the OIHW kernel km as above, when
// xc is a nearest 2x upsampling of some x [N, H, W, Cin] and the convolution is 3x3, stride 1,
// dilation 1, padding 1, on oneDNN; else ok=false. It returns the channels-last output
// [N, 2H, 2W, cout].
func (b *patchedBuilder) upsampledConv(xc, km backends.Op, k, strides, dil []int, pads [][2]int, cout int) (backends.Op, bool, error) {
	if !upConvOn.Load() || !slices.Equal(k, []int{3, 3}) || !slices.Equal(strides, []int{1, 1}) ||
		!slices.Equal(dil, []int{1, 1}) || !slices.Equal(pads, [][2]int{{1, 1}, {1, 1}}) {
		return nil, false, nil
	}
	src, ok := b.upsampleSource(xc)
	if !ok {
		return nil, false, nil
	}
	ss, err := b.OpShape(src)
	if err != nil {
		return nil, false, err
	}
	n, h, w, cin := ss.Dimensions[0], ss.Dimensions[1], ss.Dimensions[2], ss.Dimensions[3]
	if int64(n*h*w) < upConvMinPixels.Load() {
		return nil, false, nil
	}
	kp, err := b.phaseKernels(km, cout, cin)
	if err != nil {
		return nil, false, err
	}
	conv, fused, err := b.convGemmNode(src, kp, true, []int{2, 2}, []int{1, 1}, []int{1, 1}, []int{h + 1, w + 1},
		[][2]int{{1, 1}, {1, 1}}, 4*cout)
	if err != nil || !fused {
		return nil, false, err
	}
	node := simplegoNewNode(b.Builder, backends.OpTypePad, shapes.Make(ss.DType, n, 2*h, 2*w, cout), conv.(*simplego.Node))
	if !setNodeData(node, &upInterleaveData{}) {
		return nil, false, nil
	}
	statUpConv.Add(1)
	return node, true, nil
}

// upsampleSource returns x [N, H, W, C] when xc [N, 2H, 2W, C] is its nearest upsampling by 2 as
// models/onnx/shim builds it channels-last: for each of H and W (in either order) a Reshape that
// inserts a unit axis after it, a BroadcastInDim of that axis to 2 and a Reshape that merges the two.
func (b *patchedBuilder) upsampleSource(xc backends.Op) (*simplego.Node, bool) {
	cur, ok := xc.(*simplego.Node)
	if !ok || !b.fastPad {
		return nil, false
	}
	factor := [4]int{1, 1, 1, 1}
	for {
		prev, axis, k, ok := b.repeatStep(cur)
		if !ok {
			break
		}
		factor[axis] *= k
		cur = prev
	}
	return cur, factor == [4]int{1, 2, 2, 1}
}

// repeatStep returns (x, a, k) when y = Reshape(BroadcastInDim(Reshape(x))) repeats each entry of
// the rank-4 x k times along axis a (a spatial axis, 1 or 2), as models/onnx/shim's repeatAlong
// builds it; else ok=false.
func (b *patchedBuilder) repeatStep(y *simplego.Node) (x *simplego.Node, a, k int, ok bool) {
	bc, ok := b.reshapes[y]
	if !ok {
		return nil, 0, 0, false
	}
	t := b.tagOf(bc)
	if t.kind != fuseBroadcast || t.a == nil {
		return nil, 0, 0, false
	}
	r := t.a
	if x, ok = b.reshapes[r]; !ok {
		return nil, 0, 0, false
	}
	xs, err1 := b.OpShape(x)
	rs, err2 := b.OpShape(r)
	bs, err3 := b.OpShape(bc)
	ys, err4 := b.OpShape(y)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || xs.Rank() != 4 || ys.Rank() != 4 || rs.Rank() != 5 {
		return nil, 0, 0, false
	}
	for a = 1; a <= 2; a++ {
		k = bs.Dimensions[a+1]
		split := slices.Insert(slices.Clone(xs.Dimensions), a+1, 1)
		wide := slices.Insert(slices.Clone(xs.Dimensions), a+1, k)
		merged := slices.Clone(xs.Dimensions)
		merged[a] *= k
		if k >= 2 && slices.Equal(rs.Dimensions, split) && slices.Equal(bs.Dimensions, wide) && slices.Equal(ys.Dimensions, merged) {
			return x, a, k, true
		}
	}
	return nil, 0, 0, false
}

// phaseKernels builds, from the OIHW 3x3 kernel km [cout, cin, 3, 3], the four 2x2 phase kernels
// stacked as [4·cout, cin, 2, 2], phase (a, b) at rows (2a+b)·cout onwards (see above), as one node
// (phaseKernelData): built from SimpleGo's Slices, Adds and Concatenates, the kernels' Slices alone
// took 3.3-3.5 ms of a batch-16 forward of the small T2I fixture (one profile).
func (b *patchedBuilder) phaseKernels(km backends.Op, cout, cin int) (backends.Op, error) {
	kn, ok := km.(*simplego.Node)
	if !ok {
		return nil, fmt.Errorf("compute: kernel of an upsampled convolution is not a SimpleGo op")
	}
	ks, err := b.OpShape(km)
	if err != nil {
		return nil, err
	}
	node := simplegoNewNode(b.Builder, backends.OpTypePad, shapes.Make(ks.DType, 4*cout, cin, 2, 2), kn)
	if !setNodeData(node, &phaseKernelData{}) {
		return nil, fmt.Errorf("compute: cannot build the phase kernels of an upsampled convolution")
	}
	return node, nil
}

// phaseKernelData is the data of the node that writes the phase kernels from a 3x3 kernel.
type phaseKernelData struct{}

// execPhaseKernels runs a phase-kernel node: out[(2a+b)·cout + o, c, u, v] = Σ K[o, c, r, s] over
// the taps r of tap u of phase a (rows: a = 0 gives {0}, {1, 2}; a = 1 gives {0, 1}, {2}) and the
// taps s of tap v of phase b.
func execPhaseKernels(backend *simplego.Backend, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	ks, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	if ks.Rank() != 4 || ks.Dimensions[2] != 3 || ks.Dimensions[3] != 3 {
		return nil, fmt.Errorf("compute: phase kernels of a kernel %s", ks)
	}
	cout, cin := ks.Dimensions[0], ks.Dimensions[1]
	kf, _ := backend.BufferData(inputs[0])
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(ks.DType, 4*cout, cin, 2, 2))
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		phaseKernelsOf(out, kf.([]float32), cout*cin)
	case []float64:
		phaseKernelsOf(out, kf.([]float64), cout*cin)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: phase kernels of dtype %s", ks.DType)
	}
	return outBuf.(*simplego.Buffer), nil
}

// phaseKernelsOf writes the phase kernels out [4, oc, 2, 2] of k [oc, 3, 3] (oc = cout·cin), the
// (o, c) pairs cut over the cores: along rows, tap u of phase a sums rows {0}, {1, 2} (a = 0) or
// {0, 1}, {2} (a = 1) of K, and the columns of phase b likewise.
func phaseKernelsOf[T float32 | float64](out, k []T, oc int) {
	parallelAxis(oc, 16*oc, func(lo, hi int) {
		for q := lo; q < hi; q++ {
			s := k[q*9 : q*9+9 : q*9+9]
			var rows [2][2][3]T // [a][u][column]
			for c := range 3 {
				rows[0][0][c] = s[c]
				rows[0][1][c] = s[3+c] + s[6+c]
				rows[1][0][c] = s[c] + s[3+c]
				rows[1][1][c] = s[6+c]
			}
			for a := range 2 {
				for u := range 2 {
					r := &rows[a][u]
					o0 := (2*a)*oc*4 + q*4 + u*2 // phase (a, 0): columns {0}, {1, 2}
					out[o0], out[o0+1] = r[0], r[1]+r[2]
					o1 := (2*a+1)*oc*4 + q*4 + u*2 // phase (a, 1): columns {0, 1}, {2}
					out[o1], out[o1+1] = r[0]+r[1], r[2]
				}
			}
		}
	})
}

// execUpInterleave runs an interleave node: y[n, 2i+a, 2j+b, o] = Y[n, i+a, j+b, (2a+b)·C + o].
func execUpInterleave(backend *simplego.Backend, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	ys, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	if ys.Rank() != 4 || ys.Dimensions[3]%4 != 0 {
		return nil, fmt.Errorf("compute: upsampled-convolution interleave of %s", ys)
	}
	n, h, w, c := ys.Dimensions[0], ys.Dimensions[1]-1, ys.Dimensions[2]-1, ys.Dimensions[3]/4
	yf, _ := backend.BufferData(inputs[0])
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(ys.DType, n, 2*h, 2*w, c))
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		upInterleave(out, yf.([]float32), n, h, w, c)
	case []float64:
		upInterleave(out, yf.([]float64), n, h, w, c)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: upsampled-convolution interleave of dtype %s", ys.DType)
	}
	return outBuf.(*simplego.Buffer), nil
}

// upInterleave writes out [n, 2h, 2w, c] from y [n, h+1, w+1, 4c] (see execUpInterleave), output
// rows cut over the cores.
func upInterleave[T float32 | float64](out, y []T, n, h, w, c int) {
	parallelAxis(n*2*h, len(out), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			img, row := r/(2*h), r%(2*h)
			i, a := row/2, row%2
			dst := out[r*2*w*c : (r+1)*2*w*c]
			srcRow := y[(img*(h+1)+i+a)*(w+1)*4*c:]
			for j := range w {
				for bb := range 2 {
					o := (2*a + bb) * c
					s := (j+bb)*4*c + o
					copy(dst[(2*j+bb)*c:(2*j+bb+1)*c], srcRow[s:s+c])
				}
			}
		}
	})
}

// UpsampledConvs returns how many convolutions of a nearest 2x upsampling were built at the low
// resolution (above) since the process started.
func UpsampledConvs() int64 { return statUpConv.Load() }
