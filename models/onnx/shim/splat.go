package shim

import (
	"errors"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// splat is a tensor whose every element is the same value, held as that value and its shape until
// something needs it as a node. Exports of diffusers' classic attention compute
// baddbmm(torch.empty(B*heads, N, N), q, k^T, beta=0, alpha=scale) as
// ConstantOfShape -> Mul(·, 0) -> Add(q k^T · scale, ·): folded as constants, the two [B*heads, N, N]
// tensors were materialized at build time (671 MB each at SD-Turbo's 64x64 self-attention, batch 2).
// As splats, the zeros cost nothing and the addition of zeros disappears.
type splat struct {
	value float64
	dtype dtypes.DType
	dims  []int
}

// minSplat is the smallest ConstantOfShape result kept as a splat: smaller ones are folded as usual,
// since shape computations read them as constant values.
const minSplat = 1 << 12

// bySplat converts n without materializing splats when it can (ConstantOfShape of a large constant
// shape; Mul of a splat by a constant scalar; Add or Sub of a zero splat; Cast and Identity of a
// splat) and reports whether it did.
func (b *builder) bySplat(n *node) bool {
	switch n.op {
	case "ConstantOfShape":
		return b.constantOfShape(n)
	case "Cast", "Identity":
		s, ok := b.splats[n.in[0]]
		if !ok {
			return false
		}
		if n.op == "Cast" {
			dt, err := dtypeOf(n.intAttr("to", onnxFloat))
			if err != nil || !dt.IsFloat() || !s.dtype.IsFloat() {
				return false
			}
			s.dtype = dt
		}
		b.splats[n.out[0]] = s
		return true
	case "Mul", "Add", "Sub":
		if len(n.in) != 2 {
			return false
		}
		return b.splatArith(n)
	}
	return false
}

func (b *builder) constantOfShape(n *node) bool {
	if len(n.in) != 1 || n.in[0] == "" {
		return false
	}
	if b.pendingOut[n.in[0]] {
		b.flush()
	}
	t := b.constTensor(b.value(n.in[0]))
	if t == nil || !t.DType().IsInt() || t.Rank() != 1 {
		return false
	}
	dims := make([]int, t.Shape().Dim(0))
	size := 1
	for i := range dims {
		v, err := tensorInt(t, i)
		if err != nil || v < 0 {
			return false
		}
		dims[i] = v
		size *= v
	}
	s := splat{dtype: dtypes.Float32, dims: dims}
	if a, ok := n.attrs["value"]; ok && a.t != nil {
		if a.t.Size() != 1 || !a.t.DType().IsFloat() {
			return false
		}
		s.dtype = a.t.DType()
		s.value = scalarOf(a.t)
	}
	if size < minSplat {
		return false
	}
	b.splats[n.out[0]] = s
	return true
}

// splatArith handles Mul(splat, constant scalar), Add(zero splat, y), Add(y, zero splat) and
// Sub(y, zero splat) where y has the result's shape.
func (b *builder) splatArith(n *node) bool {
	s0, ok0 := b.splats[n.in[0]]
	s1, ok1 := b.splats[n.in[1]]
	if !ok0 && !ok1 {
		return false
	}
	if ok0 && ok1 {
		return false // materialized by value() below
	}
	s, other, splatFirst := s0, n.in[1], true
	if ok1 {
		s, other, splatFirst = s1, n.in[0], false
	}
	if b.pendingOut[other] {
		b.flush()
	}
	y := b.value(other)
	if n.op == "Mul" {
		c := b.constTensor(y)
		if c == nil || c.Size() != 1 || c.DType() != s.dtype {
			return false
		}
		v := s.value * scalarOf(c)
		if v != v || v-v != 0 { // NaN or infinite: left to the graph
			return false
		}
		b.splats[n.out[0]] = splat{value: v, dtype: s.dtype, dims: broadcastDims(s.dims, c.Shape().Dimensions)}
		return true
	}
	if s.value != 0 || (n.op == "Sub" && splatFirst) || y.DType() != s.dtype ||
		!slices.Equal(broadcastDims(s.dims, y.Shape().Dimensions), y.Shape().Dimensions) {
		return false
	}
	b.vals[n.out[0]] = y
	return true
}

// materializeSplat is the node of a splat (a scalar broadcast in gr; computed when run, never a
// build-time constant).
func materializeSplat(gr *Graph, s splat) *Node {
	return BroadcastToDims(ConvertDType(Scalar(gr, dtypes.Float64, s.value), s.dtype), s.dims...)
}

// broadcastDims is the numpy broadcast of two shapes (right-aligned; a 1 stretches).
func broadcastDims(a, b []int) []int {
	if len(a) < len(b) {
		a, b = b, a
	}
	out := slices.Clone(a)
	off := len(a) - len(b)
	for i, d := range b {
		if out[off+i] == 1 {
			out[off+i] = d
		}
	}
	return out
}

// scalarOf is the value of a one-element floating-point or integer tensor, as float64.
func scalarOf(t *tensors.Tensor) float64 {
	var v float64
	t.ConstFlatData(func(flat any) {
		switch x := flat.(type) {
		case []float32:
			v = float64(x[0])
		case []float64:
			v = x[0]
		case []int64:
			v = float64(x[0])
		case []int32:
			v = float64(x[0])
		}
	})
	return v
}

// tensorInt is element i of an integer tensor.
func tensorInt(t *tensors.Tensor, i int) (int, error) {
	v, err := 0, error(nil)
	t.ConstFlatData(func(flat any) {
		switch x := flat.(type) {
		case []int64:
			v = int(x[i])
		case []int32:
			v = int(x[i])
		default:
			err = errNotInt
		}
	})
	return v, err
}

var errNotInt = errors.New("not an int32 or int64 tensor")
