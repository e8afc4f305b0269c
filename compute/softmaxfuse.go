package compute

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Softmax as one node.
//
// GoMLX's Softmax over x's trailing axes is, on the backend,
//
//	max = Identity(Reshape(ReduceMax(x, axes)))   (StopGradient; the Reshape keeps the axes as 1s)
//	e   = Exp(x - max)
//	y   = e / Reshape(ReduceSum(e, axes))
//
// five passes over the attention's scores, each allocating its output. The patched builder tags
// that chain as it is built (normTag kinds softMax..softSum, beside the normalization's) and builds
// the Div as one node with input x computing per row of M entries the max, e_j = exp(x_j - max) and
// their sum (float64) in one pass over the output, then y_j = e_j · (1/sum). The float32 exponential
// is expNeg32 (the logistic's polynomial, logistic.go: within a few ulps of e^-a), float64 rows use
// math.Exp. As for the normalization, the chain's own nodes stay in the graph for its gradient, and
// in a graph that reads them (a gradient reads e and the sum) the fused node is replaced at compile
// time by the plain Div built beside it (unfuse.go).
//
// Attention's softmax reads scaled scores, softmax(c·s) with c = 1/√d a positive scalar constant
// (`bmm(q, kᵀ) * scale` as exported): one more full pass over the [heads, N, N] scores. When the
// chain's x is such a product (a Mul tagged fuseProduct whose other operand is a positive finite
// scalar constant and whose output has s's shape), the fused node reads s and applies c in its row
// pass: max_j fl(c·s_j) = fl(c·max_j s_j) because rounding is monotone and c > 0, and the
// exponentials take a_j = fl(c·max) - fl(c·s_j), so the values are the bits the unscaled node gives
// on the Mul's output. In a forward-only graph nothing then reads the Mul, and SimpleGo skips it.

// softmaxNodeData is the data of a fused softmax node: its input s, rows of m entries, is scaled by
// scale (1 when the chain's x is read as it is).
type softmaxNodeData struct {
	m     int
	scale float64
}

// statSoftmaxFused and statSoftmaxScaled count fused softmax nodes built, and those of them that
// read a scaled product's unscaled operand (for tests).
var statSoftmaxFused, statSoftmaxScaled atomic.Int64

// ReduceMax implements backends.Builder, remembering maxima over trailing axes.
func (b *patchedBuilder) ReduceMax(x backends.Op, axes ...int) (backends.Op, error) {
	op, err := b.Builder.ReduceMax(x, axes...)
	if err == nil && b.normOn() {
		xn, ok := x.(*simplego.Node)
		xs, err2 := b.OpShape(x)
		if m := trailingRows(xs, axes); ok && err2 == nil && isFloatShape(xs) && m > 0 {
			b.ntag(op, normTag{kind: softMax, x: xn, m: m})
		}
	}
	return op, err
}

// Identity implements backends.Builder, passing a softmax's max through StopGradient's Identity.
func (b *patchedBuilder) Identity(x backends.Op) (backends.Op, error) {
	op, err := b.Builder.Identity(x)
	if t := b.ntagOf(x); err == nil && t.kind == softMax {
		b.ntag(op, t)
	}
	return op, err
}

// Exp implements backends.Builder, remembering Exp(x - max).
func (b *patchedBuilder) Exp(x backends.Op) (backends.Op, error) {
	op, err := b.Builder.Exp(x)
	if t := b.ntagOf(x); err == nil && t.kind == softShift {
		t.kind = softExp
		b.ntag(op, t)
	}
	return op, err
}

// softmaxDiv builds e / sum of a softmax chain as the fused node.
func (b *patchedBuilder) softmaxDiv(lhs, rhs backends.Op) (backends.Op, bool, error) {
	e := b.ntagOf(lhs)
	if e.kind != softExp {
		return nil, false, nil
	}
	if _, ok := b.statFor(rhs, softSum, e.x, e.m, lhs); !ok {
		return nil, false, nil
	}
	xs, err := b.OpShape(e.x)
	if err != nil || !isFloatShape(xs) {
		return nil, false, err
	}
	in, scale := b.scaledSource(e.x, xs)
	node := simplegoNewNode(b.Builder, backends.OpTypePad, xs.Clone(), in)
	if !setNodeData(node, &softmaxNodeData{m: e.m, scale: scale}) {
		return nil, false, nil
	}
	plain, err := b.Builder.Div(lhs, rhs)
	if err != nil {
		return nil, false, err
	}
	statSoftmaxFused.Add(1)
	if in != e.x {
		statSoftmaxScaled.Add(1)
	}
	b.newChain(false, lhs, rhs).addSub(node, plain)
	return node, true, nil
}

// scaledSource returns (s, c) when x = s·c (either order) for a positive finite scalar constant c and
// an s of x's shape xs, else (x, 1).
func (b *patchedBuilder) scaledSource(x *simplego.Node, xs shapes.Shape) (*simplego.Node, float64) {
	t := b.tagOf(x)
	if t.kind != fuseProduct {
		return x, 1
	}
	for _, p := range [][2]*simplego.Node{{t.a, t.b}, {t.b, t.a}} {
		c, ok := b.scalarOf(p[1])
		if !ok || !(c > 0) || math.IsInf(c, 0) {
			continue
		}
		if ss, err := b.OpShape(p[0]); err == nil && ss.Equal(xs) {
			return p[0], c
		}
	}
	return x, 1
}

// execSoftmax runs a fused softmax node, writing into x's buffer when it is x's last use.
func execSoftmax(backend *simplego.Backend, data *softmaxNodeData, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	xs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	xf, _ := backend.BufferData(inputs[0])
	outBuf, outFlat, err := outputBuffer(backend, inputs, owned, xs)
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		softmaxParallel(out, xf.([]float32), data.m, float32(data.scale))
	case []float64:
		softmaxParallel(out, xf.([]float64), data.m, data.scale)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: softmax of dtype %s", xs.DType)
	}
	statFastOps.Add(1)
	statSoftmaxRun.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// softmaxParallel runs softmaxRows over bands of rows on the cores.
func softmaxParallel[T float32 | float64](out, x []T, m int, c T) {
	if m == 0 || len(out) == 0 {
		return
	}
	parallelAxis(len(out)/m, len(out), func(lo, hi int) {
		softmaxRows(out[lo*m:hi*m], x[lo*m:hi*m], m, c)
	})
}

// softmaxRows writes the softmax of each row of m entries of c·x into out (out may be x), for c > 0:
// the products fl(c·x_j) are rounded before they are shifted by fl(c·max_j x_j), which is their
// maximum, so the result is the softmax of the rounded products (c = 1 reads x as it is).
func softmaxRows[T float32 | float64](out, x []T, m int, c T) {
	if x32, ok := any(x).([]float32); ok {
		softmaxRows32(any(out).([]float32), x32, m, float32(c))
		return
	}
	for r := 0; r+m <= len(x); r += m {
		row, dst := x[r:r+m], out[r:r+m]
		mx := row[0]
		for _, v := range row {
			if v > mx || v != v { // NaN propagates
				mx = v
			}
		}
		mx = T(c * mx)
		var sum float64
		for j, v := range row {
			e := T(math.Exp(float64(T(c*v) - mx)))
			dst[j] = e
			sum += float64(e)
		}
		inv := T(1 / sum)
		for j := range dst {
			dst[j] *= inv
		}
	}
}

// softmaxRows32 is softmaxRows on float32 rows, each pass over a row vectorized (rowops.go): the
// maximum, the exponentials (expNegShift32), their float64 sum in sumRow32's fixed order, and the
// scaling by 1/sum.
func softmaxRows32(out, x []float32, m int, c float32) {
	for r := 0; r+m <= len(x); r += m {
		row, dst := x[r:r+m], out[r:r+m]
		mx := float32(c * maxRow32(row))
		expNegShift32(dst, row, mx, c)
		scaleRow32(dst, float32(1/sumRow32(dst)))
	}
}

// expNeg32 is e^-a for a ≥ 0 (NaN for NaN) in float32 arithmetic: the logistic's exponential
// (expNegCore32, within a few ulps of the exact value), 0 beyond a = lgMax.
func expNeg32(a float32) float32 {
	if a > lgMax {
		if a != a {
			return a
		}
		return 0
	}
	return expNegCore32(a)
}

// expNegShift32 writes out[i] = expNeg32(m - fl(c·x[i])), e^-(m - c·x[i]) for m ≥ c·x[i] with the
// product rounded to float32 first, sixteen (AVX-512) or eight (AVX2) values at a time where it can:
// the vector kernels clamp m - c·x[i] at lgMax, where expNegCore32 is already 0 (as expNeg32 returns
// beyond it), so every path gives the same bits. c = 1 leaves x[i] as it is. len(out) >= len(x).
func expNegShift32(out, x []float32, m, c float32) {
	n := len(x)
	if logisticVector512 && n >= 16 {
		v := n &^ 15
		expNegShift32AVX512(out[:v], x[:v], m, c)
		out, x = out[v:], x[v:]
		n -= v
	}
	if logisticVector && n >= 8 {
		v := n &^ 7
		expNegShift32AVX2(out[:v], x[:v], m, c)
		out, x = out[v:], x[v:]
	}
	expNegShift32Scalar(out, x, m, c)
}

// expNegShift32Scalar is expNegShift32 one value at a time (the conversion rounds the product, so it
// is never fused with the difference).
func expNegShift32Scalar(out, x []float32, m, c float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = expNeg32(m - float32(c*v))
	}
}
