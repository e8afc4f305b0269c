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

// fuseKind says what a builder op was made from.
type fuseKind int

const (
	fuseOne       fuseKind = iota + 1 // the scalar constant 1
	fuseLogistic                      // Logistic(x)
	fuseOneMinus                      // Sub(1, σ) of a Logistic σ
	fuseSigmoidDx                     // Mul(σ, 1-σ) or Mul(1-σ, σ)
)

// fuseTag is a builder op's origin: its kind and, past fuseLogistic, the Logistic it derives from.
type fuseTag struct {
	kind  fuseKind
	sigma *simplego.Node
}

// sigmoidGradNodeData is the data of a fused logistic-gradient node (inputs v, σ).
type sigmoidGradNodeData struct{}

// statSigmoidGradFused counts fused logistic-gradient nodes built (for tests).
var statSigmoidGradFused atomic.Int64

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

// Constant implements backends.Builder, remembering the scalar float constant 1.
func (b *patchedBuilder) Constant(flat any, dims ...int) (backends.Op, error) {
	op, err := b.Builder.Constant(flat, dims...)
	if err == nil && len(dims) == 0 {
		switch f := flat.(type) {
		case []float32:
			if len(f) == 1 && f[0] == 1 {
				b.tag(op, fuseTag{kind: fuseOne})
			}
		case []float64:
			if len(f) == 1 && f[0] == 1 {
				b.tag(op, fuseTag{kind: fuseOne})
			}
		}
	}
	return op, err
}

// Logistic implements backends.Builder, remembering its output.
func (b *patchedBuilder) Logistic(x backends.Op) (backends.Op, error) {
	op, err := b.Builder.Logistic(x)
	if err == nil {
		if n, ok := op.(*simplego.Node); ok {
			b.tag(op, fuseTag{kind: fuseLogistic, sigma: n})
		}
	}
	return op, err
}

// Sub implements backends.Builder, remembering 1 - σ.
func (b *patchedBuilder) Sub(lhs, rhs backends.Op) (backends.Op, error) {
	op, err := b.Builder.Sub(lhs, rhs)
	if err == nil && b.tagOf(lhs).kind == fuseOne {
		if t := b.tagOf(rhs); t.kind == fuseLogistic {
			b.tag(op, fuseTag{kind: fuseOneMinus, sigma: t.sigma})
		}
	}
	return op, err
}

// Mul implements backends.Builder: it remembers σ·(1-σ), and builds v·(σ·(1-σ)) (either order) as
// one node.
func (b *patchedBuilder) Mul(lhs, rhs backends.Op) (backends.Op, error) {
	lt, rt := b.tagOf(lhs), b.tagOf(rhs)
	if (lt.kind == fuseLogistic && rt.kind == fuseOneMinus && rt.sigma == lt.sigma) ||
		(rt.kind == fuseLogistic && lt.kind == fuseOneMinus && lt.sigma == rt.sigma) {
		op, err := b.Builder.Mul(lhs, rhs)
		if err == nil {
			b.tag(op, fuseTag{kind: fuseSigmoidDx, sigma: lt.sigma})
		}
		return op, err
	}
	v, dx := lhs, rt
	if lt.kind == fuseSigmoidDx {
		v, dx = rhs, lt
	}
	if dx.kind == fuseSigmoidDx {
		if op, ok, err := b.sigmoidGradNode(v, dx.sigma); err != nil || ok {
			return op, err
		}
	}
	return b.Builder.Mul(lhs, rhs)
}

// sigmoidGradNode builds the fused node for v·(σ·(1-σ)), or returns ok=false when the custom nodes
// are off or v and σ differ in shape or are not float32/float64.
func (b *patchedBuilder) sigmoidGradNode(v backends.Op, sigma *simplego.Node) (backends.Op, bool, error) {
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
	if !setNodeData(node, &sigmoidGradNodeData{}) {
		return nil, false, nil
	}
	statSigmoidGradFused.Add(1)
	return node, true, nil
}

// execSigmoidGrad runs a fused logistic-gradient node, writing into v's buffer when it is v's last use.
func execSigmoidGrad(backend *simplego.Backend, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	vs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	vf, _ := backend.BufferData(inputs[0])
	sf, _ := backend.BufferData(inputs[1])
	var outBuf backends.Buffer
	outFlat := vf
	if len(owned) > 0 && owned[0] {
		outBuf = inputs[0]
		inputs[0] = nil // the input buffer became the output
	} else if outBuf, outFlat, err = backend.NewSharedBuffer(0, shapes.Make(vs.DType, vs.Dimensions...)); err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		parallelAxis(len(out), len(out), func(lo, hi int) {
			sigmoidGrad(out[lo:hi], vf.([]float32)[lo:hi], sf.([]float32)[lo:hi])
		})
	case []float64:
		parallelAxis(len(out), len(out), func(lo, hi int) {
			sigmoidGrad(out[lo:hi], vf.([]float64)[lo:hi], sf.([]float64)[lo:hi])
		})
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: logistic gradient of dtype %s", vs.DType)
	}
	statFastOps.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// sigmoidGrad writes out = v·(σ·(1-σ)) (out may be v).
func sigmoidGrad[T float32 | float64](out, v, s []T) {
	s = s[:len(out)]
	v = v[:len(out)]
	for i, si := range s {
		out[i] = v[i] * (si * (1 - si))
	}
}
