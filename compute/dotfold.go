package compute

import (
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// Transposes read by a matrix product.
//
// An imported graph often transposes an operand only to multiply it: ONNX's Gemm with transB = 1
// (a stored weight W^T), or attention's Q·K^T, become DotGeneral(x, Transpose(W, [1 0])) and
// DotGeneral(q, Transpose(k, [0 2 1])). The Transpose moves every value, on every call, although the
// product can read W or k where they are: with x' = Transpose(s, p), axis i of x' is axis p[i] of s,
// so
//
//	DotGeneral(·, x', contracting C, batch B) = DotGeneral(·, s, contracting p[C], batch p[B])
//
// whenever the permutation keeps the order of x''s remaining (cross) axes, which fixes the order of
// the product's output axes. The patched builder reads such a transpose's source instead (the
// Transposes it built, remembered in normnhwc.go); the GEMM takes either layout with a transpose
// flag (fastdot.go). The Transpose stays in the graph for whatever else reads it; SimpleGo skips it
// when nothing does. The values are the same products summed by the same GEMM kernel, whose order
// of addition may differ with the layout by a rounding.

var (
	// dotTransposeFoldOn switches the rewrite on (tests compare it with the plain ops).
	dotTransposeFoldOn atomic.Bool
	// statDotTransposeFolded counts operands read through a folded transpose (for tests).
	statDotTransposeFolded atomic.Int64
)

func init() { dotTransposeFoldOn.Store(true) }

// DotGeneral implements backends.Builder, reading an operand that is a Transpose built here from the
// Transpose's source where the product allows it (above).
func (b *patchedBuilder) DotGeneral(lhs backends.Op, lhsContracting, lhsBatch []int, rhs backends.Op,
	rhsContracting, rhsBatch []int) (backends.Op, error) {
	if dotTransposeFoldOn.Load() {
		lhs, lhsContracting, lhsBatch = b.dotOperandSource(lhs, lhsContracting, lhsBatch)
		rhs, rhsContracting, rhsBatch = b.dotOperandSource(rhs, rhsContracting, rhsBatch)
	}
	if op, ok, err := b.attentionNode(lhs, rhs, lhsContracting, lhsBatch, rhsContracting, rhsBatch); ok || err != nil {
		return op, err
	}
	op, err := b.Builder.DotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch)
	if err == nil {
		b.rememberDot(op, lhs, rhs, lhsContracting, lhsBatch, rhsContracting, rhsBatch)
	}
	return op, err
}

// dotOperandSource returns, for x = Transpose(s, p) built here whose permutation keeps the order of
// x's cross axes, s with the contracting and batch axes mapped through p; else x as it is.
func (b *patchedBuilder) dotOperandSource(x backends.Op, contracting, batch []int) (backends.Op, []int, []int) {
	xn, ok := x.(*simplego.Node)
	if !ok {
		return x, contracting, batch
	}
	tr, ok := b.transposes[xn]
	if !ok {
		return x, contracting, batch
	}
	named := make([]bool, len(tr.perm))
	for _, lists := range [][]int{contracting, batch} {
		for _, a := range lists {
			if a < 0 || a >= len(named) {
				return x, contracting, batch // let the builder report the bad axis
			}
			named[a] = true
		}
	}
	last := -1
	for i, src := range tr.perm {
		if named[i] {
			continue
		}
		if src < last {
			return x, contracting, batch // the cross axes would come out in another order
		}
		last = src
	}
	through := func(axes []int) []int {
		out := make([]int, len(axes))
		for i, a := range axes {
			out[i] = tr.perm[a]
		}
		return out
	}
	statDotTransposeFolded.Add(1)
	return tr.src, through(contracting), through(batch)
}
