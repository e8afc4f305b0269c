package compute

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Normalization as one node.
//
// Instance, group and layer normalization are written in GoMLX as a chain of element-wise ops and
// reductions over the trailing axes of x (the ONNX importer's normalize and opLayerNorm, GoMLX's
// ReduceMean):
//
//	mean = ReduceSum(x, trailing axes) · (1/M), reshaped to keep the reduced axes as 1s
//	c    = x - mean
//	var  = ReduceSum(c·c, same axes) · (1/M), reshaped likewise
//	y    = c / Sqrt(var + ε)   or   c · Rsqrt(var + ε)
//
// followed by per-channel scale and bias (Mul, Add; PyTorch's GroupNorm export adds a Reshape and a
// second Mul and Add). On SimpleGo that is ten or more passes over tensors as large as x, each
// allocating its output. The patched builder recognises the chain as it is built, from the operands'
// origins (below, normTag), and builds y as one node of this package with x as its input, computing
// per row of M entries (one (batch, group) of a GroupNorm, one position of a LayerNorm) the mean and
// variance in one pass (float64 sums) and writing (x - mean)·rstd in a second. A Mul, Add or Sub of
// that node (or of a Reshape of it) with an operand that broadcasts along all but one contiguous block
// of axes (a per-channel scale or bias, a scalar; not an operand as large as the output) is built as
// a new node with that operand as one more input: every stage's coefficient is folded, per run of entries that share them, into
// y = (x - mean)·A + B.
//
// The nodes the chain is built from stay in the graph; SimpleGo runs only those that something still
// reads. A gradient reads c and the root, so in a graph that computes gradients the chain runs anyway:
// there the fused nodes are replaced at compile time by the plain ops built beside them (unfuse.go),
// and only forward-only graphs run them. Gradients are untouched: GoMLX differentiates the graph's own
// nodes, whose values the fused node reproduces to float rounding (the sums in float64, the output
// within a few ulps of the composed ops). Other backends (XLA) never see these nodes.

// normKind says what part of a normalization chain a builder op is.
type normKind int

const (
	normSum    normKind = iota + 1 // ReduceSum(x) over x's trailing axes (M entries per row)
	normMean                       // normSum · (1/M), possibly reshaped
	normCent                       // x - mean
	normSq                         // c · c of a normCent c
	normSumSq                      // ReduceSum(c·c) over the same axes
	normVar                        // normSumSq · (1/M), possibly reshaped
	normVarEps                     // var + ε
	normStd                        // Sqrt(var + ε)
	normRstd                       // Rsqrt(var + ε)
	normOut                        // a fused node (or a Reshape of one)

	softMax   // ReduceMax(x) over trailing axes, possibly reshaped or through Identity (softmaxfuse.go)
	softShift // x - max
	softExp   // Exp(x - max)
	softSum   // ReduceSum(Exp(x - max)) over the same axes, possibly reshaped
)

// normTag is a builder op's place in a normalization chain of x with rows of m entries.
type normTag struct {
	kind  normKind
	x     *simplego.Node
	m     int
	eps   float64
	node  *simplego.Node   // normOut: the fused node
	ins   []*simplego.Node // normOut: its inputs
	chain *fusedChain      // normOut: the chain, with the plain ops of its fused ops (unfuse.go)
}

// normStage is one affine stage applied after the normalization: entry i of the output is combined
// with entry (i/s)%c of input in (entry 0 when c is 1, whatever s).
type normStage struct {
	op   backends.OpType // OpTypeMul, OpTypeAdd or OpTypeSub (y - p)
	in   int             // index of the operand among the node's inputs
	c, s int
}

// normNodeData is the data of a fused normalization node: inputs x, then the stages' operands.
type normNodeData struct {
	m      int
	eps    float64
	stages []normStage
	run    int       // entries per run sharing every stage's coefficient: gcd of m and the stages' s
	nhwc   *normNHWC // a twin writing its output channels-last (see normnhwc.go), else nil
}

// maxNormStages bounds the affine stages folded into one node.
const maxNormStages = 8

// statNormFused counts fused normalization nodes built (for tests).
var statNormFused atomic.Int64

// normOn reports whether the builder builds fused normalization nodes.
func (b *patchedBuilder) normOn() bool { return b.fastPad && padNodeOn.Load() }

// ntag records op's place in a normalization chain.
func (b *patchedBuilder) ntag(op backends.Op, t normTag) {
	if n, ok := op.(*simplego.Node); ok && b.normOn() {
		if b.ntags == nil {
			b.ntags = map[*simplego.Node]normTag{}
		}
		b.ntags[n] = t
	}
}

// ntagOf returns op's recorded place (kind 0 if none).
func (b *patchedBuilder) ntagOf(op backends.Op) normTag {
	if n, ok := op.(*simplego.Node); ok {
		return b.ntags[n]
	}
	return normTag{}
}

// scalarOf returns the value of a scalar float constant op.
func (b *patchedBuilder) scalarOf(op backends.Op) (float64, bool) {
	if n, ok := op.(*simplego.Node); ok {
		v, found := b.scalars[n]
		return v, found
	}
	return 0, false
}

// rememberScalar records the value of a scalar float constant.
func (b *patchedBuilder) rememberScalar(op backends.Op, v float64) {
	if n, ok := op.(*simplego.Node); ok && b.normOn() {
		if b.scalars == nil {
			b.scalars = map[*simplego.Node]float64{}
		}
		b.scalars[n] = v
	}
}

// isFloatShape reports a float32/float64 shape.
func isFloatShape(s shapes.Shape) bool { return s.DType == dtypes.Float32 || s.DType == dtypes.Float64 }

// trailingRows returns the entries per row when axes are exactly the last len(axes) axes of shape
// (in increasing order), 0 otherwise.
func trailingRows(shape shapes.Shape, axes []int) int {
	r, k := shape.Rank(), len(axes)
	if k == 0 || k > r {
		return 0
	}
	m := 1
	for i, a := range axes {
		if a != r-k+i {
			return 0
		}
		m *= shape.Dimensions[a]
	}
	return m
}

// keptRows reports whether stat (a per-row statistic) has x's shape with trailing axes of m entries
// in all set to 1, so that it broadcasts one value over each row of x.
func keptRows(x, stat shapes.Shape, m int) bool {
	if x.Rank() != stat.Rank() || m <= 0 {
		return false
	}
	for j := 0; j <= x.Rank(); j++ {
		tail := 1
		for _, d := range x.Dimensions[j:] {
			tail *= d
		}
		if tail != m {
			continue
		}
		ok := true
		for i, d := range stat.Dimensions {
			if (i < j && d != x.Dimensions[i]) || (i >= j && d != 1) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// isInverse reports whether v is 1/m as a float of dtype dt.
func isInverse(v float64, m int, dt dtypes.DType) bool {
	want := 1 / float64(m)
	if dt == dtypes.Float32 {
		return float32(v) == float32(want)
	}
	return v == want
}

// normReduceSum tags a ReduceSum over x's trailing axes (op being its result).
func (b *patchedBuilder) normReduceSum(op, x backends.Op, axes []int) {
	if !b.normOn() {
		return
	}
	xn, ok := x.(*simplego.Node)
	xs, err := b.OpShape(x)
	if !ok || err != nil || !isFloatShape(xs) {
		return
	}
	m := trailingRows(xs, axes)
	if m == 0 {
		return
	}
	if t := b.ntagOf(x); t.kind == normSq && t.m == m {
		b.ntag(op, normTag{kind: normSumSq, x: t.x, m: m})
		return
	}
	if t := b.ntagOf(x); t.kind == softExp && t.m == m {
		b.ntag(op, normTag{kind: softSum, x: t.x, m: m})
		return
	}
	b.ntag(op, normTag{kind: normSum, x: xn, m: m})
}

// normMulScalar tags sum·(1/M) (either order) as a mean or variance; reports whether it did.
func (b *patchedBuilder) normMulScalar(op, lhs, rhs backends.Op) {
	t, k := b.ntagOf(lhs), rhs
	if t.kind != normSum && t.kind != normSumSq {
		t, k = b.ntagOf(rhs), lhs
	}
	if t.kind != normSum && t.kind != normSumSq {
		return
	}
	v, ok := b.scalarOf(k)
	xs, err := b.OpShape(t.x)
	if !ok || err != nil || !isInverse(v, t.m, xs.DType) {
		return
	}
	kind := normMean
	if t.kind == normSumSq {
		kind = normVar
	}
	b.ntag(op, normTag{kind: kind, x: t.x, m: t.m})
}

// statFor reports whether op is a per-row statistic of kind k of x (rows of m entries) shaped to
// broadcast over like's shape.
func (b *patchedBuilder) statFor(op backends.Op, k normKind, x *simplego.Node, m int, like backends.Op) (normTag, bool) {
	t := b.ntagOf(op)
	if t.kind != k || t.x != x || t.m != m {
		return t, false
	}
	ls, err1 := b.OpShape(like)
	ss, err2 := b.OpShape(op)
	return t, err1 == nil && err2 == nil && keptRows(ls, ss, m)
}

// normSub folds y - p (y a fused node) into a new fused node; ok=false: build the Sub (then call
// normAfterSub).
func (b *patchedBuilder) normSub(lhs, rhs backends.Op) (backends.Op, bool, error) {
	if !b.normOn() {
		return nil, false, nil
	}
	if lt := b.ntagOf(lhs); lt.kind == normOut {
		return b.normStageNode(lhs, rhs, backends.OpTypeSub, lhs, rhs)
	}
	return nil, false, nil
}

// normAfterSub tags op = lhs - rhs when it centres x on its row means.
func (b *patchedBuilder) normAfterSub(op, lhs, rhs backends.Op) {
	if !b.normOn() {
		return
	}
	rt := b.ntagOf(rhs)
	if (rt.kind != normMean && rt.kind != softMax) || rt.x != lhs {
		return
	}
	if _, ok := b.statFor(rhs, rt.kind, rt.x, rt.m, lhs); ok {
		kind := normCent
		if rt.kind == softMax {
			kind = softShift
		}
		b.ntag(op, normTag{kind: kind, x: rt.x, m: rt.m})
	}
}

// normMul handles a Mul in a normalization chain: c·rstd (either order) builds the fused node, a
// fused node times a broadcast operand folds it in. ok=false: build the Mul (then call normAfterMul).
func (b *patchedBuilder) normMul(lhs, rhs backends.Op) (backends.Op, bool, error) {
	if !b.normOn() {
		return nil, false, nil
	}
	lt, rt := b.ntagOf(lhs), b.ntagOf(rhs)
	cOp, rOp := lhs, rhs
	if rt.kind == normCent {
		cOp, rOp = rhs, lhs
	}
	if c := b.ntagOf(cOp); c.kind == normCent {
		if r, ok := b.statFor(rOp, normRstd, c.x, c.m, cOp); ok {
			return b.normNode(c.x, c.m, r.eps, lhs, rhs, backends.OpTypeMul)
		}
	}
	if lt.kind == normOut {
		return b.normStageNode(lhs, rhs, backends.OpTypeMul, lhs, rhs)
	}
	if rt.kind == normOut {
		return b.normStageNode(rhs, lhs, backends.OpTypeMul, lhs, rhs)
	}
	return nil, false, nil
}

// normAfterMul tags op = lhs·rhs: c·c of a centred c, or a sum times 1/M.
func (b *patchedBuilder) normAfterMul(op, lhs, rhs backends.Op) {
	if !b.normOn() {
		return
	}
	if t := b.ntagOf(lhs); t.kind == normCent && lhs == rhs {
		b.ntag(op, normTag{kind: normSq, x: t.x, m: t.m})
		return
	}
	b.normMulScalar(op, lhs, rhs)
}

// normAdd handles an Add in a normalization chain: var + ε (either order) is tagged after it is
// built (normAfterAdd); a fused node plus a broadcast operand folds it in.
func (b *patchedBuilder) normAdd(lhs, rhs backends.Op) (backends.Op, bool, error) {
	if !b.normOn() {
		return nil, false, nil
	}
	if b.ntagOf(lhs).kind == normOut {
		return b.normStageNode(lhs, rhs, backends.OpTypeAdd, lhs, rhs)
	}
	if b.ntagOf(rhs).kind == normOut {
		return b.normStageNode(rhs, lhs, backends.OpTypeAdd, lhs, rhs)
	}
	return nil, false, nil
}

// normAfterAdd tags op = var + ε (either order).
func (b *patchedBuilder) normAfterAdd(op, lhs, rhs backends.Op) {
	if !b.normOn() {
		return
	}
	t, k := b.ntagOf(lhs), rhs
	if t.kind != normVar {
		t, k = b.ntagOf(rhs), lhs
	}
	if t.kind != normVar {
		return
	}
	if eps, ok := b.scalarOf(k); ok && eps >= 0 {
		b.ntag(op, normTag{kind: normVarEps, x: t.x, m: t.m, eps: eps})
	}
}

// normUnary tags Sqrt or Rsqrt of var + ε.
func (b *patchedBuilder) normUnary(op, x backends.Op, kind normKind) {
	if t := b.ntagOf(x); t.kind == normVarEps {
		t.kind = kind
		b.ntag(op, t)
	}
}

// normDiv builds c / Sqrt(var + ε) as the fused node, or a softmax's e / sum as its own.
func (b *patchedBuilder) normDiv(lhs, rhs backends.Op) (backends.Op, bool, error) {
	if !b.normOn() {
		return nil, false, nil
	}
	c := b.ntagOf(lhs)
	if c.kind == softExp {
		return b.softmaxDiv(lhs, rhs)
	}
	if c.kind != normCent {
		return nil, false, nil
	}
	if s, ok := b.statFor(rhs, normStd, c.x, c.m, lhs); ok {
		return b.normNode(c.x, c.m, s.eps, lhs, rhs, backends.OpTypeDiv)
	}
	return nil, false, nil
}

// normReshape tags a Reshape of a statistic or of a fused node with the same tag.
func (b *patchedBuilder) normReshape(op, x backends.Op) {
	switch t := b.ntagOf(x); t.kind {
	case normMean, normVar, normVarEps, normStd, normRstd, normOut, softMax, softSum:
		b.ntag(op, t)
	}
}

// normNode builds the fused (x - mean)·rstd node for lhs op rhs (c / √(var+ε) or c·rstd, either
// order), and the plain op beside it (see unfuse.go).
func (b *patchedBuilder) normNode(x *simplego.Node, m int, eps float64, lhs, rhs backends.Op, op backends.OpType) (backends.Op, bool, error) {
	xs, err := b.OpShape(x)
	if err != nil || !isFloatShape(xs) {
		return nil, false, err
	}
	node, plain, err := b.newNormNode(xs, &normNodeData{m: m, eps: eps, run: m}, op, lhs, rhs, x)
	if node == nil || err != nil {
		return nil, false, err
	}
	chain := b.newChain(true, lhs, rhs)
	chain.addSub(node, plain)
	b.ntag(node, normTag{kind: normOut, x: x, m: m, eps: eps, node: node, ins: []*simplego.Node{x}, chain: chain})
	return node, true, nil
}

// newNormNode builds a fused normalization node of shape xs over inputs and, beside it, the plain
// lhs op rhs it stands for (see unfuse.go); a nil node (and nil error) when the node data cannot be
// attached.
func (b *patchedBuilder) newNormNode(xs shapes.Shape, data *normNodeData, op backends.OpType, lhs, rhs backends.Op, inputs ...*simplego.Node) (*simplego.Node, backends.Op, error) {
	node := simplegoNewNode(b.Builder, backends.OpTypePad, xs.Clone(), inputs...)
	if !setNodeData(node, data) {
		return nil, nil, nil
	}
	plain, err := b.plainBinary(op, lhs, rhs)
	if err != nil {
		return nil, nil, err
	}
	statNormFused.Add(1)
	return node, plain, nil
}

// plainBinary builds lhs op rhs with SimpleGo's own op (the op a fused node stands for).
func (b *patchedBuilder) plainBinary(op backends.OpType, lhs, rhs backends.Op) (backends.Op, error) {
	switch op {
	case backends.OpTypeMul:
		return b.Builder.Mul(lhs, rhs)
	case backends.OpTypeAdd:
		return b.Builder.Add(lhs, rhs)
	case backends.OpTypeSub:
		return b.Builder.Sub(lhs, rhs)
	default:
		return b.Builder.Div(lhs, rhs)
	}
}

// stageLayout returns (c, s) when p broadcasts over y's shape by repeating it along all but one
// contiguous block of axes on which it matches y (c entries, each spanning s entries of y), or for
// a scalar (1, 1).
func stageLayout(y, p shapes.Shape) (c, s int, ok bool) {
	if p.DType != y.DType {
		return 0, 0, false
	}
	if p.Rank() == 0 {
		return 1, 1, true
	}
	if p.Rank() != y.Rank() {
		return 0, 0, false
	}
	lo, hi := -1, -1
	for i, d := range p.Dimensions {
		if d != 1 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	if lo < 0 {
		return 1, 1, true
	}
	c, s = 1, 1
	for i, d := range p.Dimensions {
		switch {
		case i < lo || i > hi:
			if d != 1 {
				return 0, 0, false
			}
		case d != y.Dimensions[i]:
			return 0, 0, false
		default:
			c *= d
		}
		if i > hi {
			s *= y.Dimensions[i]
		}
	}
	return c, s, true
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// normStageNode folds y op p (y a fused node or a Reshape of one) into a new fused node; lhs op rhs is
// the op as written (y and p in either order), built beside it as its plain op (see unfuse.go).
func (b *patchedBuilder) normStageNode(y, p backends.Op, op backends.OpType, lhs, rhs backends.Op) (backends.Op, bool, error) {
	t := b.ntagOf(y)
	pn, ok := p.(*simplego.Node)
	if !ok || pn == t.x || t.chain == nil {
		return nil, false, nil
	}
	ys, err := b.OpShape(y)
	if err != nil {
		return nil, false, err
	}
	ps, err := b.OpShape(p)
	if err != nil {
		return nil, false, err
	}
	c, s, ok := stageLayout(ys, ps)
	old, ok2 := getNodeData(t.node).(*normNodeData)
	// An operand as large as y (a gradient's cotangent, another activation) is no scale or bias:
	// its Mul or Add is one pass anyway, and the fused node would compute the statistics again.
	if !ok || !ok2 || len(old.stages) >= maxNormStages || ps.Size() >= ys.Size() {
		return nil, false, nil
	}
	inputs := append(append([]*simplego.Node(nil), t.ins...), pn)
	run := old.run
	if c > 1 {
		run = gcd(run, s) // a scalar's entry is the same for every run
	}
	data := &normNodeData{m: old.m, eps: old.eps, run: run,
		stages: append(append([]normStage(nil), old.stages...), normStage{op: op, in: len(inputs) - 1, c: c, s: s})}
	// The node has x's shape (so that it may write into x's buffer); a Reshape gives it y's.
	xs, err := b.OpShape(t.x)
	if err != nil {
		return nil, false, err
	}
	node, plain, err := b.newNormNode(xs, data, op, lhs, rhs, inputs...)
	if node == nil || err != nil {
		return nil, false, err
	}
	tag := normTag{kind: normOut, x: t.x, m: t.m, eps: t.eps, node: node, ins: inputs, chain: t.chain}
	b.ntag(node, tag)
	if xs.Equal(ys) {
		t.chain.addSub(node, plain)
		return node, true, nil
	}
	view, err := b.Builder.Reshape(node, ys.Dimensions...)
	if err != nil {
		return nil, false, err
	}
	b.ntag(view, tag)
	t.chain.addSub(view, plain)
	return view, true, nil
}

// execNorm runs a fused normalization node, writing into x's buffer when it is x's last use, or a
// twin writing channels-last (normnhwc.go) into a new buffer of its own shape.
func execNorm(backend *simplego.Backend, data *normNodeData, inputs []*simplego.Buffer, owned []bool) (*simplego.Buffer, error) {
	xs, err := backend.BufferShape(inputs[0])
	if err != nil {
		return nil, err
	}
	flats := make([]any, len(inputs))
	for i, in := range inputs {
		flats[i], _ = backend.BufferData(in)
	}
	var outBuf backends.Buffer
	var outFlat any
	if data.nhwc != nil {
		outBuf, outFlat, err = backend.NewSharedBuffer(0, shapes.Make(xs.DType, data.nhwc.dims...))
	} else {
		outBuf, outFlat, err = outputBuffer(backend, inputs, owned, xs)
	}
	if err != nil {
		return nil, err
	}
	switch out := outFlat.(type) {
	case []float32:
		if data.nhwc != nil {
			normNHWCRun(out, flats, data)
		} else {
			normParallel(out, flats, data)
		}
	case []float64:
		if data.nhwc != nil {
			normNHWCRun(out, flats, data)
		} else {
			normParallel(out, flats, data)
		}
	default:
		_ = backend.BufferFinalize(outBuf)
		return nil, fmt.Errorf("compute: normalization of dtype %s", xs.DType)
	}
	statFastOps.Add(1)
	statNormRun.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// statNormRun and statSoftmaxRun count fused normalization and softmax nodes run (for tests).
var statNormRun, statSoftmaxRun atomic.Int64

// normParallel runs normRows over bands of rows on the cores.
func normParallel[T float32 | float64](out []T, flats []any, d *normNodeData) {
	x := flats[0].([]T)
	params := make([][]T, len(flats))
	for i, f := range flats[1:] {
		params[i+1] = f.([]T)
	}
	if d.m == 0 || len(out) == 0 {
		return
	}
	rows := len(out) / d.m
	parallelAxis(rows, len(out), func(lo, hi int) {
		normRows(out, x, params, d, lo, hi)
	})
}

// rowStats returns the mean and the (biased) variance of row, summed in float64: float32 rows in one
// pass (four interleaved partial sums), shifted by the first entry (so that a mean far from 0 costs
// no precision), float64 rows in two (the centred sum of squares).
func rowStats[T float32 | float64](row []T) (mean, variance float64) {
	n := float64(len(row))
	if r32, ok := any(row).([]float32); ok {
		k := float64(r32[0])
		// Four independent sums of each kind, so that the adds' latencies overlap.
		var s0, s1, s2, s3, q0, q1, q2, q3 float64
		i := 0
		for ; i+3 < len(r32); i += 4 {
			v := r32[i : i+4 : i+4]
			d0, d1, d2, d3 := float64(v[0])-k, float64(v[1])-k, float64(v[2])-k, float64(v[3])-k
			s0 += d0
			s1 += d1
			s2 += d2
			s3 += d3
			q0 += d0 * d0
			q1 += d1 * d1
			q2 += d2 * d2
			q3 += d3 * d3
		}
		for ; i < len(r32); i++ {
			d := float64(r32[i]) - k
			s0 += d
			q0 += d * d
		}
		s, q := (s0+s1)+(s2+s3), (q0+q1)+(q2+q3)
		return k + s/n, max(q-s*s/n, 0) / n
	}
	var s float64
	for _, v := range row {
		s += float64(v)
	}
	mean = s / n
	var q float64
	for _, v := range row {
		d := float64(v) - mean
		q += d * d
	}
	return mean, q / n
}

// normRows writes rows [lo, hi) of the fused node's output: per row its mean and rstd =
// 1/√(var+ε), then per run of entries sharing every stage's operand entry the coefficients A, B of
// ((x - mean)·rstd) followed by the stages, computed in float64, and out = (x - mean)·A + B.
func normRows[T float32 | float64](out, x []T, params [][]T, d *normNodeData, lo, hi int) {
	m, run := d.m, d.run
	if p, q, ok := periodicCoefs(params, d); ok {
		normRowsPeriodic(out, x, d, p, q, lo, hi)
		return
	}
	// Each stage's operand position at the band's first entry: idx = (i/s)%c, pos = i%s.
	idx := make([]int, len(d.stages))
	pos := make([]int, len(d.stages))
	for k, st := range d.stages {
		if i0 := lo * m; st.c > 1 {
			idx[k], pos[k] = (i0/st.s)%st.c, i0%st.s
		}
	}
	for r := lo; r < hi; r++ {
		row, dst := x[r*m:(r+1)*m], out[r*m:(r+1)*m]
		mean, variance := rowStats(row)
		rstd := 1 / math.Sqrt(variance+d.eps)
		mu := T(mean)
		if len(d.stages) == 0 {
			a := T(rstd)
			for j, v := range row {
				dst[j] = (v - mu) * a
			}
			continue
		}
		for j0 := 0; j0 < m; j0 += run {
			a, bias := rstd, 0.0
			for k, st := range d.stages {
				p := float64(params[st.in][idx[k]])
				switch st.op {
				case backends.OpTypeMul:
					a *= p
					bias *= p
				case backends.OpTypeAdd:
					bias += p
				case backends.OpTypeSub:
					bias -= p
				}
				if st.c == 1 {
					continue
				}
				pos[k] += run
				if pos[k] == st.s {
					pos[k] = 0
					if idx[k]++; idx[k] == st.c {
						idx[k] = 0
					}
				}
			}
			ta, tb := T(a), T(bias)
			seg, o := row[j0:j0+run], dst[j0:j0+run]
			for j, v := range seg {
				o[j] = (v-mu)*ta + tb
			}
		}
	}
}

// ReduceSum implements backends.Builder, remembering sums over trailing axes (see normfuse.go).
func (b *patchedBuilder) ReduceSum(x backends.Op, axes ...int) (backends.Op, error) {
	op, err := b.Builder.ReduceSum(x, axes...)
	if err == nil {
		b.normReduceSum(op, x, axes)
	}
	return op, err
}

// Reshape implements backends.Builder, remembering reshaped normalization statistics and outputs.
func (b *patchedBuilder) Reshape(x backends.Op, dims ...int) (backends.Op, error) {
	op, err := b.Builder.Reshape(x, dims...)
	if err == nil && b.normOn() {
		b.normReshape(op, x)
		b.rememberReshape(op, x)
	}
	return op, err
}

// Sqrt implements backends.Builder, remembering √(var + ε).
func (b *patchedBuilder) Sqrt(x backends.Op) (backends.Op, error) {
	op, err := b.Builder.Sqrt(x)
	if err == nil && b.normOn() {
		b.normUnary(op, x, normStd)
	}
	return op, err
}

// Rsqrt implements backends.Builder, remembering 1/√(var + ε).
func (b *patchedBuilder) Rsqrt(x backends.Op) (backends.Op, error) {
	op, err := b.Builder.Rsqrt(x)
	if err == nil && b.normOn() {
		b.normUnary(op, x, normRstd)
	}
	return op, err
}

// Div implements backends.Builder, building c / √(var + ε) of a normalization as its fused node.
func (b *patchedBuilder) Div(lhs, rhs backends.Op) (backends.Op, error) {
	if op, ok, err := b.normDiv(lhs, rhs); err != nil || ok {
		return op, err
	}
	return b.Builder.Div(lhs, rhs)
}

// periodicCoefs returns, when every stage's operand entries repeat with each row (a LayerNorm's scale
// and bias over the normalized axes, scalars), the coefficients of ((x - mean)·rstd) followed by the
// stages as (x - mean)·rstd·p[q] + b[q] for run q of a row; ok=false otherwise (or without stages).
func periodicCoefs[T float32 | float64](params [][]T, d *normNodeData) (p, b []float64, ok bool) {
	if len(d.stages) == 0 {
		return nil, nil, false
	}
	for _, st := range d.stages {
		if st.c > 1 && d.m%(st.c*st.s) != 0 {
			return nil, nil, false
		}
	}
	runs := d.m / d.run
	p, b = make([]float64, runs), make([]float64, runs)
	for q := range runs {
		p[q], b[q] = foldStages(params, d.stages, q*d.run, 1)
	}
	return p, b, true
}

// foldStages returns the coefficients (a, b) of y·a + b for y·a0 followed by the stages, with each
// stage's operand entry the one entry e (an index into the node's output) meets: (e/s)%c.
func foldStages[T float32 | float64](params [][]T, stages []normStage, e int, a0 float64) (a, b float64) {
	a = a0
	for _, st := range stages {
		v := float64(params[st.in][0])
		if st.c > 1 {
			v = float64(params[st.in][(e/st.s)%st.c])
		}
		switch st.op {
		case backends.OpTypeMul:
			a *= v
			b *= v
		case backends.OpTypeAdd:
			b += v
		case backends.OpTypeSub:
			b -= v
		}
	}
	return a, b
}

// normRowsPeriodic is normRows for stages whose coefficients repeat with each row (periodicCoefs).
func normRowsPeriodic[T float32 | float64](out, x []T, d *normNodeData, p, b []float64, lo, hi int) {
	m, run := d.m, d.run
	if run == 1 {
		pt, bt := make([]T, m), make([]T, m)
		for j := range m {
			pt[j], bt[j] = T(p[j]), T(b[j])
		}
		for r := lo; r < hi; r++ {
			row, dst := x[r*m:(r+1)*m], out[r*m:(r+1)*m]
			mean, variance := rowStats(row)
			mu, rs := T(mean), T(1/math.Sqrt(variance+d.eps))
			for j, v := range row {
				dst[j] = (v-mu)*(rs*pt[j]) + bt[j]
			}
		}
		return
	}
	for r := lo; r < hi; r++ {
		row, dst := x[r*m:(r+1)*m], out[r*m:(r+1)*m]
		mean, variance := rowStats(row)
		rstd := 1 / math.Sqrt(variance+d.eps)
		mu := T(mean)
		for q := range p {
			ta, tb := T(rstd*p[q]), T(b[q])
			seg, o := row[q*run:(q+1)*run], dst[q*run:(q+1)*run]
			for j, v := range seg {
				o[j] = (v-mu)*ta + tb
			}
		}
	}
}
