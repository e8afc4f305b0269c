package compute

import (
	"fmt"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// The logistic's gradient as one node.
//
// GoMLX differentiates σ = Logistic(x) as v·(σ·(1-σ)): three element-wise ops (Sub, Mul, Mul), so three
// passes over tensors as large as the activation (every SiLU and sigmoid of a network). The patched
// builder recognises that chain as it is built, from the operands' origins (a Logistic, the scalar
// constant 1), and builds the last Mul as one node of this package with inputs v and σ, computing
//
//	g = v · (σ · (1 - σ))
//
// in one pass, with the same float operations in the same order, so the same values. The Sub and the
// inner Mul are then unused (SimpleGo skips unused nodes) unless something else reads them.
//
// Add, Sub and Mul of a tensor with a BroadcastInDim that only repeats its operand a along a's unit
// axes (or a scalar), as GoMLX's gradients write them (the product rule broadcasts the smaller factor
// first), are built on a itself: the binary kernels broadcast as they go, with the same values, and
// the copy is skipped when nothing else reads it.
//
// A SiLU y = x·σ(x) gets one step further: its gradient is the sum of the product rule's two terms,
// v·σ and (v·x)·(σ·(1-σ)) (the second through the node above), four passes; the Add of exactly those
// two terms (either order) is built as one node with inputs v, x and σ computing the same expression.

// fuseKind says what a builder op was made from.
type fuseKind int

const (
	fuseOne        fuseKind = iota + 1 // the scalar constant 1
	fuseLogistic                       // Logistic(x)
	fuseOneMinus                       // Sub(1, σ) of a Logistic σ
	fuseSigmoidDx                      // Mul(σ, 1-σ) or Mul(1-σ, σ)
	fuseProduct                        // Mul(a, b) of any other operands
	fuseVSigma                         // Mul(v, σ) or Mul(σ, v) of a Logistic σ
	fuseSiluSecond                     // the fused node for (v·x)·(σ·(1-σ)), x being σ's input
	fuseBroadcast                      // BroadcastInDim of a, repeating it along its unit axes (or a scalar)
)

// fuseTag is a builder op's origin: its kind, the Logistic it derives from (sigma, from fuseLogistic
// on; for fuseLogistic itself, x is its input) and the operands involved (a, b of a product; v; x).
type fuseTag struct {
	kind     fuseKind
	sigma    *simplego.Node
	a, b     *simplego.Node
	v, x     *simplego.Node
	vxIsLeft bool // fuseSiluSecond: v·x was the Mul's left operand
}

// sigmoidGradNodeData is the data of a fused logistic-gradient node (inputs v, σ). vRight: σ·(1-σ) was
// the Mul's left operand (the product is computed in the original operand order).
type sigmoidGradNodeData struct{ vRight bool }

// siluGradNodeData is the data of a fused SiLU-gradient node (inputs v, x, σ), computing
// v·σ + (v·x)·(σ·(1-σ)) with each product and the sum in the original operand order.
type siluGradNodeData struct {
	sigmaLeft   bool // the first term was σ·v
	xLeft       bool // the product was x·v
	vxLeft      bool // the second term was (v·x)·(σ·(1-σ)) (else (σ·(1-σ))·(v·x))
	secondFirst bool // the sum was second + first
}

// statSigmoidGradFused and statSiluGradFused count the fused nodes built (for tests).
var statSigmoidGradFused, statSiluGradFused atomic.Int64

// tag records op's origin.
func (b *patchedBuilder) tag(op backends.Op, t fuseTag) {
	if n, ok := op.(*simplego.Node); ok && b.fastPad {
		if b.tags == nil {
			b.tags = map[*simplego.Node]fuseTag{}
		}
		b.tags[n] = t
	}
}

// tagOf returns op's recorded origin (kind 0 if none).
func (b *patchedBuilder) tagOf(op backends.Op) fuseTag {
	if n, ok := op.(*simplego.Node); ok {
		return b.tags[n]
	}
	return fuseTag{}
}

// Constant implements backends.Builder, remembering the scalar float constant 1 and the values of
// scalar float constants (see normfuse.go).
func (b *patchedBuilder) Constant(flat any, dims ...int) (backends.Op, error) {
	op, err := b.Builder.Constant(flat, dims...)
	if err == nil && len(dims) == 0 {
		switch f := flat.(type) {
		case []float32:
			if len(f) == 1 && f[0] == 1 {
				b.tag(op, fuseTag{kind: fuseOne})
			}
			if len(f) == 1 {
				b.rememberScalar(op, float64(f[0]))
			}
		case []float64:
			if len(f) == 1 && f[0] == 1 {
				b.tag(op, fuseTag{kind: fuseOne})
			}
			if len(f) == 1 {
				b.rememberScalar(op, f[0])
			}
		}
	}
	return op, err
}

// Logistic implements backends.Builder, remembering its output and input.
func (b *patchedBuilder) Logistic(x backends.Op) (backends.Op, error) {
	op, err := b.Builder.Logistic(x)
	if err == nil {
		n, ok1 := op.(*simplego.Node)
		xn, ok2 := x.(*simplego.Node)
		if ok1 && ok2 {
			b.tag(op, fuseTag{kind: fuseLogistic, sigma: n, x: xn})
		}
	}
	return op, err
}

// BroadcastInDim implements backends.Builder, remembering a broadcast that only repeats its operand
// along the operand's unit axes, or a scalar.
func (b *patchedBuilder) BroadcastInDim(x backends.Op, shape shapes.Shape, axes []int) (backends.Op, error) {
	op, err := b.Builder.BroadcastInDim(x, shape, axes)
	if err != nil {
		return op, err
	}
	xn, ok := x.(*simplego.Node)
	xs, err2 := b.OpShape(x)
	if !ok || err2 != nil || (xs.Rank() != 0 && xs.Rank() != shape.Rank()) {
		return op, nil
	}
	for i, a := range axes {
		if a != i || (xs.Dimensions[i] != 1 && xs.Dimensions[i] != shape.Dimensions[i]) {
			return op, nil
		}
	}
	b.tag(op, fuseTag{kind: fuseBroadcast, a: xn})
	return op, nil
}

// unbroadcast replaces one operand of a binary op that is a fuseBroadcast by its source, when the
// other operand already has the broadcast's (so the result's) shape.
func (b *patchedBuilder) unbroadcast(lhs, rhs backends.Op) (backends.Op, backends.Op) {
	if !b.fastPad {
		return lhs, rhs
	}
	same := func(x, y backends.Op) bool {
		xs, err1 := b.OpShape(x)
		ys, err2 := b.OpShape(y)
		return err1 == nil && err2 == nil && xs.Equal(ys)
	}
	if t := b.tagOf(lhs); t.kind == fuseBroadcast && same(lhs, rhs) {
		statUnbroadcast.Add(1)
		return t.a, rhs
	}
	if t := b.tagOf(rhs); t.kind == fuseBroadcast && same(lhs, rhs) {
		statUnbroadcast.Add(1)
		return lhs, t.a
	}
	return lhs, rhs
}

// statUnbroadcast counts binary ops built on a broadcast's source (for tests).
var statUnbroadcast atomic.Int64

// Sub implements backends.Builder, remembering 1 - σ and x - mean (see normfuse.go) and skipping
// broadcasts (see unbroadcast).
func (b *patchedBuilder) Sub(lhs, rhs backends.Op) (backends.Op, error) {
	lhs, rhs = b.unbroadcast(lhs, rhs)
	if op, ok, err := b.normSub(lhs, rhs); err != nil || ok {
		return op, err
	}
	op, err := b.Builder.Sub(lhs, rhs)
	if err == nil {
		b.normAfterSub(op, lhs, rhs)
	}
	if err == nil && b.tagOf(lhs).kind == fuseOne {
		if t := b.tagOf(rhs); t.kind == fuseLogistic {
			b.tag(op, fuseTag{kind: fuseOneMinus, sigma: t.sigma})
		}
	}
	return op, err
}

// Add implements backends.Builder: v·σ + (v·x)·(σ·(1-σ)) (either order) of a SiLU's σ = σ(x) is built
// as one node, a normalization's bias is folded into its fused node (see normfuse.go); broadcasts are
// skipped (see unbroadcast).
func (b *patchedBuilder) Add(lhs, rhs backends.Op) (backends.Op, error) {
	lhs, rhs = b.unbroadcast(lhs, rhs)
	lt, rt := b.tagOf(lhs), b.tagOf(rhs)
	first, second, secondFirst := lt, rt, false
	if lt.kind == fuseSiluSecond {
		first, second, secondFirst = rt, lt, true
	}
	if first.kind == fuseVSigma && second.kind == fuseSiluSecond && first.sigma == second.sigma && first.v == second.v {
		if op, ok, err := b.siluGradNode(first, second, secondFirst); err != nil || ok {
			return op, err
		}
	}
	if op, ok, err := b.normAdd(lhs, rhs); err != nil || ok {
		return op, err
	}
	if op, ok, err := b.convBiasAdd(lhs, rhs); err != nil || ok {
		return op, err
	}
	if op, ok, err := b.carriedSum(lhs, rhs); err != nil || ok {
		return op, err
	}
	op, err := b.Builder.Add(lhs, rhs)
	if err == nil {
		b.normAfterAdd(op, lhs, rhs)
	}
	return op, err
}

// Mul implements backends.Builder: it remembers σ·(1-σ), and builds v·(σ·(1-σ)) (either order) as
// one node; a normalization's c·rstd and scale are built as or folded into its fused node (see
// normfuse.go); broadcasts are skipped (see unbroadcast).
func (b *patchedBuilder) Mul(lhs, rhs backends.Op) (backends.Op, error) {
	lhs, rhs = b.unbroadcast(lhs, rhs)
	if op, ok, err := b.normMul(lhs, rhs); err != nil || ok {
		return op, err
	}
	op, err := b.mul(lhs, rhs)
	if err == nil {
		b.normAfterMul(op, lhs, rhs)
	}
	return op, err
}

// mul is Mul after the normalization chain's checks: the logistic-gradient fusions.
func (b *patchedBuilder) mul(lhs, rhs backends.Op) (backends.Op, error) {
	lt, rt := b.tagOf(lhs), b.tagOf(rhs)
	if (lt.kind == fuseLogistic && rt.kind == fuseOneMinus && rt.sigma == lt.sigma) ||
		(rt.kind == fuseLogistic && lt.kind == fuseOneMinus && lt.sigma == rt.sigma) {
		op, err := b.Builder.Mul(lhs, rhs)
		if err == nil {
			b.tag(op, fuseTag{kind: fuseSigmoidDx, sigma: lt.sigma})
		}
		return op, err
	}
	v, dx, vRight := lhs, rt, false
	if lt.kind == fuseSigmoidDx {
		v, dx, vRight = rhs, lt, true
	}
	if dx.kind == fuseSigmoidDx {
		if op, ok, err := b.sigmoidGradNode(v, dx.sigma, vRight); err != nil || ok {
			return op, err
		}
	}
	op, err := b.Builder.Mul(lhs, rhs)
	if err != nil {
		return op, err
	}
	ln, ok1 := lhs.(*simplego.Node)
	rn, ok2 := rhs.(*simplego.Node)
	switch {
	case !ok1 || !ok2:
	case rt.kind == fuseLogistic && lt.kind != fuseLogistic:
		b.tag(op, fuseTag{kind: fuseVSigma, sigma: rt.sigma, v: ln, a: ln, b: rn})
	case lt.kind == fuseLogistic && rt.kind != fuseLogistic:
		b.tag(op, fuseTag{kind: fuseVSigma, sigma: lt.sigma, v: rn, a: ln, b: rn})
	default:
		b.tag(op, fuseTag{kind: fuseProduct, a: ln, b: rn})
	}
	return op, nil
}

// sigmoidGradNode builds the fused node for v·(σ·(1-σ)) ((σ·(1-σ))·v if vRight), or returns ok=false
// when the custom nodes are off or v and σ differ in shape or are not float32/float64. When v is the
// product of σ's input x with some w, it tags the node as a SiLU's second gradient term.
func (b *patchedBuilder) sigmoidGradNode(v backends.Op, sigma *simplego.Node, vRight bool) (backends.Op, bool, error) {
	if !b.fastPad || !padNodeOn.Load() {
		return nil, false, nil
	}
	vn, ok := v.(*simplego.Node)
	if !ok {
		return nil, false, nil
	}
	vs, err := b.OpShape(v)
	if err != nil {
		return nil, false, err
	}
	ss, err := b.OpShape(sigma)
	if err != nil {
		return nil, false, err
	}
	if !vs.Equal(ss) || (vs.DType != dtypes.Float32 && vs.DType != dtypes.Float64) {
		return nil, false, nil
	}
	node := simplegoNewNode(b.Builder, backends.OpTypePad, vs.Clone(), vn, sigma)
	if !setNodeData(node, &sigmoidGradNodeData{vRight: vRight}) {
		return nil, false, nil
	}
	statSigmoidGradFused.Add(1)
	if vt, st := b.tags[vn], b.tags[sigma]; vt.kind == fuseProduct && st.kind == fuseLogistic && !vRight {
		switch st.x {
		case vt.b: // (w·x)·(σ·(1-σ))
			b.tag(node, fuseTag{kind: fuseSiluSecond, sigma: sigma, v: vt.a, x: st.x, vxIsLeft: false})
		case vt.a: // (x·w)·(σ·(1-σ))
			b.tag(node, fuseTag{kind: fuseSiluSecond, sigma: sigma, v: vt.b, x: st.x, vxIsLeft: true})
		}
	}
	return node, true, nil
}

// siluGradNode builds the fused node for first + second (second + first if secondFirst), first being
// v·σ or σ·v and second (v·x)·(σ·(1-σ)) or (x·v)·(σ·(1-σ)), or returns ok=false.
func (b *patchedBuilder) siluGradNode(first, second fuseTag, secondFirst bool) (backends.Op, bool, error) {
	vs, err := b.OpShape(first.v)
	if err != nil {
		return nil, false, err
	}
	for _, n := range []*simplego.Node{second.x, first.sigma} {
		s, err := b.OpShape(n)
		if err != nil {
			return nil, false, err
		}
		if !s.Equal(vs) {
			return nil, false, nil
		}
	}
	data := &siluGradNodeData{sigmaLeft: first.a == first.sigma, xLeft: second.vxIsLeft, vxLeft: true,
		secondFirst: secondFirst}
	node := simplegoNewNode(b.Builder, backends.OpTypePad, vs.Clone(), first.v, second.x, first.sigma)
	if !setNodeData(node, data) {
		return nil, false, nil
	}
	statSiluGradFused.Add(1)
	return node, true, nil
}

// execSigmoidGrad runs a fused logistic-gradient node, writing into v's buffer when it is v's last use.
func execSigmoidGrad(backend *simplego.Backend, data *sigmoidGradNodeData, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	return execElementwise(backend, inputs, owned, "logistic gradient",
		func(out []float32, in [][]float32) { sigmoidGrad(out, in[0], in[1], data.vRight) },
		func(out []float64, in [][]float64) { sigmoidGrad(out, in[0], in[1], data.vRight) })
}

// execElementwise runs an element-wise node of same-shape inputs: the output (inputs[0]'s buffer when
// it is its last use, see outputBuffer) is filled band by band over the cores by k32 or k64, each
// call given one band of the output and the same band of every input.
func execElementwise(backend *simplego.Backend, inputs []*simplego.Buffer, owned []bool, what string,
	k32 func(out []float32, in [][]float32), k64 func(out []float64, in [][]float64)) (*simplego.Buffer, error) {
	shape, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	flats := make([]any, len(inputs))
	for i, b := range inputs {
		flats[i], _ = backend.BufferData(b)
	}
	outBuf, outFlat, err := outputBuffer(backend, inputs, owned, shape)
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		elementwiseBands(out, flats, k32)
	case []float64:
		elementwiseBands(out, flats, k64)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: %s of dtype %s", what, shape.DType)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// elementwiseBands calls k on bands of out and of each flat input (all of out's length) over the cores.
func elementwiseBands[T float32 | float64](out []T, flats []any, k func(out []T, in [][]T)) {
	parallelAxis(len(out), len(out), func(lo, hi int) {
		in := make([][]T, len(flats))
		for i, f := range flats {
			in[i] = f.([]T)[lo:hi]
		}
		k(out[lo:hi], in)
	})
}

// sigmoidGrad writes out = v·(σ·(1-σ)), or (σ·(1-σ))·v if vRight (out may be v).
func sigmoidGrad[T float32 | float64](out, v, s []T, vRight bool) {
	s = s[:len(out)]
	v = v[:len(out)]
	if vRight {
		for i, si := range s {
			out[i] = (si * (1 - si)) * v[i]
		}
		return
	}
	for i, si := range s {
		out[i] = v[i] * (si * (1 - si))
	}
}

// execSiluGrad runs a fused SiLU-gradient node (inputs v, x, σ), writing into v's buffer when it is
// v's last use.
func execSiluGrad(backend *simplego.Backend, data *siluGradNodeData, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	return execElementwise(backend, inputs, owned, "SiLU gradient",
		func(out []float32, in [][]float32) { siluGrad(out, in[0], in[1], in[2], data) },
		func(out []float64, in [][]float64) { siluGrad(out, in[0], in[1], in[2], data) })
}

// siluGrad writes out = v·σ + (v·x)·(σ·(1-σ)), each product and the sum in the operand order that
// data records (out may be v). The conversions round every product, so that a compiler targeting
// FMA (GOAMD64=v3) does not fuse a product into the sum, as the separate ops could not.
func siluGrad[T float32 | float64](out, v, x, s []T, data *siluGradNodeData) {
	v, x, s = v[:len(out)], x[:len(out)], s[:len(out)]
	if o32, ok := any(out).([]float32); ok && binaryVector && len(out) >= 8 {
		n := len(out) &^ 7
		siluGradF32AVX2(o32[:n], any(v).([]float32)[:n], any(x).([]float32)[:n], any(s).([]float32)[:n])
		out, v, x, s = out[n:], v[n:], x[n:], s[n:]
	}
	for i := range out {
		vi, xi, si := v[i], x[i], s[i]
		first := T(vi * si)
		if data.sigmaLeft {
			first = T(si * vi)
		}
		vx := T(vi * xi)
		if data.xLeft {
			vx = T(xi * vi)
		}
		dsig := T(si * (1 - si))
		second := T(vx * dsig)
		if !data.vxLeft {
			second = T(dsig * vx)
		}
		if data.secondFirst {
			out[i] = second + first
		} else {
			out[i] = first + second
		}
	}
}
