package compute

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
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

// softmaxNodeData is the data of a fused softmax node (input x, rows of m entries).
type softmaxNodeData struct{ m int }

// statSoftmaxFused counts fused softmax nodes built (for tests).
var statSoftmaxFused atomic.Int64

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
	node := simplegoNewNode(b.Builder, backends.OpTypePad, xs.Clone(), e.x)
	if !setNodeData(node, &softmaxNodeData{m: e.m}) {
		return nil, false, nil
	}
	plain, err := b.Builder.Div(lhs, rhs)
	if err != nil {
		return nil, false, err
	}
	statSoftmaxFused.Add(1)
	b.newChain(false, lhs, rhs).addSub(node, plain)
	return node, true, nil
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
		softmaxParallel(out, xf.([]float32), data.m)
	case []float64:
		softmaxParallel(out, xf.([]float64), data.m)
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: softmax of dtype %s", xs.DType)
	}
	statFastOps.Add(1)
	statSoftmaxRun.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// softmaxParallel runs softmaxRows over bands of rows on the cores.
func softmaxParallel[T float32 | float64](out, x []T, m int) {
	if m == 0 || len(out) == 0 {
		return
	}
	parallelAxis(len(out)/m, len(out), func(lo, hi int) {
		softmaxRows(out[lo*m:hi*m], x[lo*m:hi*m], m)
	})
}

// softmaxRows writes the softmax of each row of m entries of x into out (out may be x).
func softmaxRows[T float32 | float64](out, x []T, m int) {
	for r := 0; r+m <= len(x); r += m {
		row, dst := x[r:r+m], out[r:r+m]
		mx := row[0]
		for _, v := range row {
			if v > mx || v != v { // NaN propagates
				mx = v
			}
		}
		var sum float64
		if r32, ok := any(row).([]float32); ok {
			d32 := any(dst).([]float32)
			expNegShift32(d32, r32, float32(mx))
			for _, e := range d32 {
				sum += float64(e)
			}
		} else {
			for j, v := range row {
				e := T(math.Exp(float64(v - mx)))
				dst[j] = e
				sum += float64(e)
			}
		}
		inv := T(1 / sum)
		for j := range dst {
			dst[j] *= inv
		}
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

// expNegShift32 writes out[i] = expNeg32(m - x[i]), e^-(m - x[i]) for m ≥ x[i], sixteen (AVX-512)
// or eight (AVX2) values at a time where it can: the vector kernels clamp m - x[i] at lgMax, where
// expNegCore32 is already 0 (as expNeg32 returns beyond it), so every path gives the same bits.
// len(out) >= len(x).
func expNegShift32(out, x []float32, m float32) {
	n := len(x)
	if logisticVector512 && n >= 16 {
		v := n &^ 15
		expNegShift32AVX512(out[:v], x[:v], m)
		out, x = out[v:], x[v:]
		n -= v
	}
	if logisticVector && n >= 8 {
		v := n &^ 7
		expNegShift32AVX2(out[:v], x[:v], m)
		out, x = out[v:], x[v:]
	}
	expNegShift32Scalar(out, x, m)
}

// expNegShift32Scalar is expNegShift32 one value at a time.
func expNegShift32Scalar(out, x []float32, m float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = expNeg32(m - v)
	}
}
