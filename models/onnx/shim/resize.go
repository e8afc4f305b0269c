package shim

import (
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// loraFor returns the context holding node n's adapter factors, or nil when n gets no adapter.
func (b *builder) loraFor(n *node) *context.Context {
	if b.adapter.Rank <= 0 || !b.g.takesAdapter(n, b.outputOnly[n]) {
		return nil
	}
	return b.ctx.In(VarName(n.in[1]))
}

func checkResize(_ *Model, n *node) string {
	switch m := n.strAttr("mode", "nearest"); m {
	case "nearest", "linear", "bilinear", "cubic", "bicubic":
	default:
		return "mode=" + m
	}
	switch c := n.strAttr("coordinate_transformation_mode", "half_pixel"); c {
	case "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric":
	default:
		return "coordinate_transformation_mode=" + c
	}
	if n.intAttr("antialias", 0) != 0 {
		return "antialias=1"
	}
	if p := n.strAttr("keep_aspect_ratio_policy", "stretch"); p != "stretch" {
		return "keep_aspect_ratio_policy=" + p
	}
	return ""
}

// opResize resizes each axis independently (nearest or linear interpolation) by multiplying it with
// an interpolation matrix M [in, out] computed when the graph is built: y = x ×_axis M. The source
// coordinate of output index o is, with s = out/in (or the given scale):
//
//	half_pixel (o+0.5)/s-0.5; pytorch_half_pixel the same, or 0 when out = 1; asymmetric o/s;
//	align_corners o (in-1)/(out-1); half_pixel_symmetric as half_pixel, centred.
//
// Linear mode weights the two neighbours floor(x), floor(x)+1 by 1-frac, frac with indices clamped
// to the edge; nearest mode picks round(x) per nearest_mode, clamped; cubic mode weights the four
// neighbours floor(x)-1 .. floor(x)+2 by Keys' cubic kernel with a = cubic_coeff_a (default -0.75,
// PyTorch's), indices clamped to the edge, or with exclude_outside=1 the weights of indices
// outside the input dropped and the rest renormalized.
func opResize(b *builder, n *node, in []*Node) []*Node {
	x := in[0]
	r := x.Rank()
	var scales []float64
	var sizes []int
	switch {
	case len(in) == 2: // opset 10: X, scales
		scales = b.constFloats(n, in[1], "scales")
	default:
		if len(in) > 2 && in[2] != nil && in[2].Shape().Size() > 0 {
			scales = b.constFloats(n, in[2], "scales")
		}
		if len(in) > 3 && in[3] != nil && in[3].Shape().Size() > 0 {
			sizes = b.constInts(n, in[3], "sizes")
		}
	}
	axes := n.intsAttr("axes")
	if len(axes) == 0 {
		for i := range r {
			axes = append(axes, i)
		}
	}
	dims := x.Shape().Dimensions
	outDims := append([]int(nil), dims...)
	scaleOf := make([]float64, r)
	for i := range scaleOf {
		scaleOf[i] = 1
	}
	for j, a := range axes {
		a = axis(n, a, r)
		switch {
		case sizes != nil:
			if len(sizes) != len(axes) {
				panicf("%s: %d sizes for %d axes", n, len(sizes), len(axes))
			}
			outDims[a] = sizes[j]
			scaleOf[a] = float64(sizes[j]) / float64(dims[a])
		case scales != nil:
			if len(scales) != len(axes) {
				panicf("%s: %d scales for %d axes", n, len(scales), len(axes))
			}
			scaleOf[a] = scales[j]
			outDims[a] = int(math.Floor(float64(dims[a]) * scales[j]))
		default:
			panicf("%s: neither scales nor sizes given", n)
		}
	}
	mode := n.strAttr("mode", "nearest")
	ctm := n.strAttr("coordinate_transformation_mode", "half_pixel")
	nm := n.strAttr("nearest_mode", "round_prefer_floor")
	cub := cubic{a: n.floatAttr("cubic_coeff_a", -0.75), excludeOutside: n.intAttr("exclude_outside", 0) != 0}
	mats := make([][][]float32, r)
	factors := make([]int, r)
	repeats, resized := true, false // every resized axis is a spatial repeat of an NCHW image
	for a := range r {
		if outDims[a] == dims[a] && scaleOf[a] == 1 {
			continue
		}
		mats[a] = interpMatrix(dims[a], outDims[a], scaleOf[a], mode, ctm, nm, sizes == nil, cub)
		k, ok := repeatFactor(mats[a])
		factors[a] = k
		repeats, resized = repeats && ok && a >= 2, true
	}
	if repeats && resized && r == 4 {
		return one(repeatNHWC(x, factors[2], factors[3]))
	}
	y := x
	for a := range r {
		switch {
		case mats[a] == nil:
		case factors[a] > 0:
			y = repeatAlong(y, a, factors[a])
		default:
			y = alongAxis(y, Const(x.Graph(), mats[a]), a)
		}
	}
	if y.DType() != x.DType() {
		y = ConvertDType(y, x.DType())
	}
	return one(y)
}

// interpMatrix returns M [in][out] with y[o] = sum_i x[i] M[i][o].
// With scales given (fromScale), align_corners uses the unrounded output length in*scale, as ONNX does.
func interpMatrix(in, out int, scale float64, mode, ctm, nm string, fromScale bool, cub cubic) [][]float32 {
	m := make([][]float32, in)
	for i := range m {
		m[i] = make([]float32, out)
	}
	clamp := func(i int) int { return min(max(i, 0), in-1) }
	for o := range out {
		var x float64
		switch ctm {
		case "half_pixel":
			x = (float64(o)+0.5)/scale - 0.5
		case "pytorch_half_pixel":
			if out > 1 {
				x = (float64(o)+0.5)/scale - 0.5
			}
		case "align_corners":
			outLen := float64(out)
			if fromScale {
				outLen = float64(in) * scale
			}
			if outLen > 1 {
				x = float64(o) * float64(in-1) / (outLen - 1)
			}
		case "asymmetric":
			x = float64(o) / scale
		case "half_pixel_symmetric":
			adj := float64(out) / (scale * float64(in))
			center := float64(in) / 2
			offset := center * (1 - adj)
			x = offset + (float64(o)+0.5)/scale - 0.5
		}
		if mode == "nearest" {
			var i int
			switch nm {
			case "floor":
				i = int(math.Floor(x))
			case "ceil":
				i = int(math.Ceil(x))
			case "round_prefer_ceil":
				i = int(math.Floor(x + 0.5))
			default: // round_prefer_floor
				i = int(math.Ceil(x - 0.5))
			}
			m[clamp(i)][o] += 1
			continue
		}
		i0 := int(math.Floor(x))
		f := x - float64(i0)
		if mode == "cubic" || mode == "bicubic" {
			cub.weights(m, o, i0, f, in)
			continue
		}
		m[clamp(i0)][o] += float32(1 - f)
		m[clamp(i0+1)][o] += float32(f)
	}
	return m
}

// cubic is Resize's cubic interpolation: Keys' kernel with coefficient a.
type cubic struct {
	a              float64
	excludeOutside bool
}

// kernel is W(d) = (a+2)|d|^3 - (a+3)|d|^2 + 1 for |d| <= 1, a|d|^3 - 5a|d|^2 + 8a|d| - 4a for
// 1 < |d| < 2, 0 beyond.
func (c cubic) kernel(d float64) float64 {
	d = math.Abs(d)
	switch {
	case d <= 1:
		return ((c.a+2)*d-(c.a+3))*d*d + 1
	case d < 2:
		return ((c.a*d-5*c.a)*d+8*c.a)*d - 4*c.a
	}
	return 0
}

// weights adds to column o of m [in][out] the weights of the four neighbours i0-1 .. i0+2 of a
// source coordinate i0 + f.
func (c cubic) weights(m [][]float32, o, i0 int, f float64, in int) {
	var w [4]float64
	total := 0.0
	for k := range 4 {
		w[k] = c.kernel(f - float64(k-1))
		if i := i0 + k - 1; c.excludeOutside && (i < 0 || i >= in) {
			w[k] = 0
		}
		total += w[k]
	}
	if !c.excludeOutside {
		total = 1
	}
	for k := range 4 {
		i := min(max(i0+k-1, 0), in-1)
		m[i][o] += float32(w[k] / total)
	}
}

// repeatFactor returns k when M [in][out] repeats each input k times (out = k·in, M[i][o] = 1 if
// o/k = i, else 0): a nearest upsampling by an integer factor.
func repeatFactor(m [][]float32) (int, bool) {
	in := len(m)
	if in == 0 || len(m[0])%in != 0 {
		return 0, false
	}
	k := len(m[0]) / in
	for i, row := range m {
		for o, v := range row {
			want := float32(0)
			if o/k == i {
				want = 1
			}
			if v != want {
				return 0, false
			}
		}
	}
	return k, true
}

// repeatAlong repeats each entry of x k times along axis a, as a broadcast over a new axis after a
// (y = x ×_a M for repeatFactor's M, without the product and its transpose).
func repeatAlong(x *Node, a, k int) *Node {
	dims := x.Shape().Dimensions
	split := append(append(append([]int(nil), dims[:a+1]...), 1), dims[a+1:]...)
	wide := append([]int(nil), split...)
	wide[a+1] = k
	out := append([]int(nil), dims...)
	out[a] *= k
	return Reshape(BroadcastToDims(Reshape(x, split...), wide...), out...)
}

// repeatNHWC is the nearest upsampling of an NCHW image x by integer factors kh, kw (0 or 1: none),
// computed channels-last: Transpose(repeat(Transpose(x, NCHW→NHWC)), NHWC→NCHW). In a UNet or a VAE
// decoder the upsampling feeds a convolution, which the compute backend runs channels-last: there the
// outer transpose cancels with the convolution's own, and the inner one with the transpose of the
// convolution or residual sum that computed x (compute/transposes.go), so the image is repeated once
// and never transposed at the upsampled size. Elsewhere it costs two transposes the plain repeat
// does not.
func repeatNHWC(x *Node, kh, kw int) *Node {
	y := TransposeAllAxes(x, 0, 2, 3, 1)
	if kh > 1 {
		y = repeatAlong(y, 1, kh)
	}
	if kw > 1 {
		y = repeatAlong(y, 2, kw)
	}
	return TransposeAllAxes(y, 0, 3, 1, 2)
}

// alongAxis contracts axis a of x with the first axis of m [in, out]; the result keeps x's axis order.
func alongAxis(x, m *Node, a int) *Node {
	if m.DType() != x.DType() {
		m = ConvertDType(m, x.DType())
	}
	r := x.Rank()
	y := DotGeneral(x, []int{a}, nil, m, []int{0}, nil) // [x axes without a..., out]
	perm := make([]int, 0, r)
	for i := range r {
		switch {
		case i < a:
			perm = append(perm, i)
		case i == a:
			perm = append(perm, r-1)
		default:
			perm = append(perm, i-1)
		}
	}
	return TransposeAllAxes(y, perm...)
}
