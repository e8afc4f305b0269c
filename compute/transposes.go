package compute

import (
	"slices"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// Transposes that cancel, and sums carried in the layout their operands were computed in.
//
// The convolutions run channels-last (NHWC) while an imported graph is channels-first (NCHW), so the
// lowering wraps each convolution in Transpose(x, NCHW→NHWC) and Transpose(y, NHWC→NCHW)
// (conv_lower.go). Two patterns of a diffusion UNet or VAE decoder then move every activation twice
// for nothing:
//
//   - A convolution whose input is another convolution's output (a ResNet block's 1x1 shortcut, the
//     convolution after a nearest upsampling written channels-last, see models/onnx/shim/resize.go)
//     builds Transpose(Transpose(y, q), p) with p undoing q: that is y, and the builder returns y.
//   - A residual sum of two convolution outputs, Transpose(a, q) + Transpose(b, q), is
//     Transpose(a + b, q): the builder adds in the operands' own layout and transposes once. The
//     result is itself a remembered transpose, so the next convolution (or the channels-last twin of
//     the next GroupNorm, normnhwc.go) reads a + b without any transpose, and when nothing reads the
//     channels-first sum SimpleGo never computes it.
//
// Both are exact: the same values, in the same order of addition. Only the builder's own Transposes
// are remembered (the fast custom nodes must be on), so a graph built on the stock backend is
// unchanged.

var (
	// transposeCancelOn switches both rewrites on (tests compare them with the plain ops).
	transposeCancelOn atomic.Bool
	// statTransposeCancelled counts transposes cancelled, statSumCarried sums built in their
	// operands' layout (for tests).
	statTransposeCancelled, statSumCarried atomic.Int64
)

func init() { transposeCancelOn.Store(true) }

// Transpose implements backends.Builder: Transpose(Transpose(y, q), p) with p undoing q is y, and
// every other transpose is remembered (see above).
func (b *patchedBuilder) Transpose(x backends.Op, perm ...int) (backends.Op, error) {
	if y, ok := b.untranspose(x, perm); ok {
		statTransposeCancelled.Add(1)
		return y, nil
	}
	out, err := b.Builder.Transpose(x, perm...)
	if err == nil {
		b.rememberTranspose(out, x, perm)
	}
	return out, err
}

// untranspose returns y when x = Transpose(y, q) was built here and Transpose(x, perm) is y.
func (b *patchedBuilder) untranspose(x backends.Op, perm []int) (*simplego.Node, bool) {
	xn, ok := x.(*simplego.Node)
	if !ok || !transposeCancelOn.Load() {
		return nil, false
	}
	tr, ok := b.transposes[xn]
	if !ok || len(tr.perm) != len(perm) {
		return nil, false
	}
	// Transpose(x, perm) takes axis perm[j] of x, which is axis q[perm[j]] of y.
	for j, p := range perm {
		if tr.perm[p] != j {
			return nil, false
		}
	}
	y, ok := tr.src.(*simplego.Node)
	return y, ok
}

// carriedSum builds lhs + rhs as Transpose(a + b, q) when lhs = Transpose(a, q) and
// rhs = Transpose(b, q) were built here with a and b of one shape, else ok=false.
func (b *patchedBuilder) carriedSum(lhs, rhs backends.Op) (backends.Op, bool, error) {
	if !transposeCancelOn.Load() || len(b.transposes) == 0 {
		return nil, false, nil
	}
	ln, ok1 := lhs.(*simplego.Node)
	rn, ok2 := rhs.(*simplego.Node)
	if !ok1 || !ok2 {
		return nil, false, nil
	}
	lt, ok1 := b.transposes[ln]
	rt, ok2 := b.transposes[rn]
	if !ok1 || !ok2 || !slices.Equal(lt.perm, rt.perm) {
		return nil, false, nil
	}
	ls, err := b.OpShape(lt.src)
	if err != nil {
		return nil, false, err
	}
	rs, err := b.OpShape(rt.src)
	if err != nil {
		return nil, false, err
	}
	if !ls.Equal(rs) {
		return nil, false, nil
	}
	sum, err := b.Builder.Add(lt.src, rt.src)
	if err != nil {
		return nil, false, err
	}
	out, err := b.Transpose(sum, lt.perm...)
	if err != nil {
		return nil, false, err
	}
	statSumCarried.Add(1)
	return out, true, nil
}

// distinctOutputs returns outputs with every repeat of an earlier output replaced by an Identity of
// it: cancelled transposes can make two outputs of a graph one op, which SimpleGo's Compile refuses.
func (b *patchedBuilder) distinctOutputs(outputs []backends.Op) ([]backends.Op, error) {
	seen := make(map[backends.Op]bool, len(outputs))
	var out []backends.Op
	for i, o := range outputs {
		if !seen[o] {
			seen[o] = true
			continue
		}
		if out == nil {
			out = slices.Clone(outputs)
		}
		id, err := b.Builder.Identity(o)
		if err != nil {
			return nil, err
		}
		out[i] = id
	}
	if out == nil {
		return outputs, nil
	}
	return out, nil
}
