package compute

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Attention as one node, in forward graphs.
//
// An exported attention layer is O = softmax(c·Q·Kᵀ)·V over batch axes (batch·heads in the bmm and
// baddbmm exports): Q [B, N, d], K [B, M, d] (or Kᵀ [B, d, M] stored as such), V [B, M, dv], the
// scores S = Q·Kᵀ and P = softmax(c·S) both [B, N, M]. Built op by op, S and P are written to memory
// whole: at SD-Turbo's 64x64 latent, N = M = 4096 and each is 64 MiB per head, written and read
// again by the softmax and the second product. When the patched builder meets the second product
// DotGeneral(P, V) with P a fused softmax node (softmaxfuse.go) over the rows of a product
// DotGeneral(Q, K) in these layouts (float32, on the GEMM library), it builds one node that, per
// batch entry and block of attnRows query rows, computes the block's scores with one GEMM into a
// scratch of attnRows·M values, applies the fused softmax's row pass to it (softmaxRows32: the same
// scale folding and the same bits per row), and multiplies it by V into the output rows with a
// second GEMM. A block's scores (4 MiB at M = 4096) stay in the cache between the three passes;
// nothing [B, N, M] is allocated.
//
// The values are those of the three ops up to the GEMM's order of addition within a product (the
// blocks are GEMMs of attnRows rows rather than of N). As for the other fused nodes, the plain
// product is built beside it, and in a graph that reads P (a gradient of the product reads it) the
// fused node is replaced by the plain product at compile time (unfuse.go), so gradients see the ops
// as they were built.

// attnRows is the number of query rows a block of the fused attention computes at a time. On the
// sd-turbo fixture's [5, 4096, 4096] self-attention, 256 rows took 169-177 ms a call against
// 177-188 ms with 64 (three alternations, 2 cores): the score GEMM, whose inner dimension is only
// the head's 64, runs better on taller blocks.
const attnRows = 256

// attnNodeData is the data of a fused attention node with inputs Q [B, N, d], K ([B, M, d], or
// [B, d, M] when kT) and V [B, M, dv], all flattened to three axes; scale is the softmax's c.
type attnNodeData struct {
	b, n, m, d, dv int
	kT             bool
	scale          float32
}

// dotRec is a DotGeneral the builder made: its operands and axes (after transpose folding).
type dotRec struct {
	lhs, rhs       *simplego.Node
	lc, lb, rc, rb []int
}

var (
	// attnFuseOn switches the fused attention on (tests compare it with the plain ops).
	attnFuseOn atomic.Bool
	// statAttnFused, statAttnRun and statAttnUnfused count fused attention nodes built, run, and
	// replaced by their plain product at compile time (for tests).
	statAttnFused, statAttnRun, statAttnUnfused atomic.Int64
)

func init() { attnFuseOn.Store(true) }

// rememberDot records that out = DotGeneral(lhs, rhs) with the given axes.
func (b *patchedBuilder) rememberDot(out, lhs, rhs backends.Op, lc, lb, rc, rb []int) {
	on, ok1 := out.(*simplego.Node)
	ln, ok2 := lhs.(*simplego.Node)
	rn, ok3 := rhs.(*simplego.Node)
	if !ok1 || !ok2 || !ok3 {
		return
	}
	if b.dots == nil {
		b.dots = map[*simplego.Node]dotRec{}
	}
	b.dots[on] = dotRec{lhs: ln, rhs: rn, lc: lc, lb: lb, rc: rc, rb: rb}
}

// attentionNode builds DotGeneral(p, v) (axes lc, lb, rc, rb) as a fused attention node when p is a
// fused softmax over a product of queries and keys in the layouts above; ok=false otherwise.
func (b *patchedBuilder) attentionNode(p, v backends.Op, lc, lb, rc, rb []int) (backends.Op, bool, error) {
	if !attnFuseOn.Load() || !b.fastGemm || !b.normOn() {
		return nil, false, nil
	}
	pn, ok := p.(*simplego.Node)
	if !ok {
		return nil, false, nil
	}
	sm, ok := getNodeData(pn).(*softmaxNodeData) // p is a fused softmax node: its one input is the scores
	if !ok {
		return nil, false, nil
	}
	ins, ok := nodeInputs(pn)
	if !ok || len(ins) != 1 {
		return nil, false, nil
	}
	s, ok := b.dots[ins[0]]
	if !ok {
		return nil, false, nil
	}
	ps, err1 := b.OpShape(p)
	vs, err2 := b.OpShape(v)
	qs, err3 := b.OpShape(s.lhs)
	ks, err4 := b.OpShape(s.rhs)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return nil, false, nil
	}
	k := len(lb) // batch axes, leading on every operand
	r := k + 2
	if ps.Rank() != r || vs.Rank() != r || qs.Rank() != r || ks.Rank() != r {
		return nil, false, nil
	}
	for _, sh := range []shapes.Shape{ps, vs, qs, ks} {
		if sh.DType != dtypes.Float32 {
			return nil, false, nil
		}
	}
	batch := iotaFrom(0, k)
	if !slices.Equal(lb, batch) || !slices.Equal(rb, batch) || !slices.Equal(s.lb, batch) || !slices.Equal(s.rb, batch) ||
		len(lc) != 1 || lc[0] != k+1 || len(rc) != 1 || rc[0] != k ||
		len(s.lc) != 1 || s.lc[0] != k+1 || len(s.rc) != 1 || (s.rc[0] != k && s.rc[0] != k+1) {
		return nil, false, nil
	}
	kT := s.rc[0] == k // K stored as [B, d, M]
	bsz := 1
	for i := range k {
		if qs.Dimensions[i] != ps.Dimensions[i] || ks.Dimensions[i] != ps.Dimensions[i] || vs.Dimensions[i] != ps.Dimensions[i] {
			return nil, false, nil
		}
		bsz *= ps.Dimensions[i]
	}
	n, m, d, dv := ps.Dimensions[k], ps.Dimensions[k+1], qs.Dimensions[k+1], vs.Dimensions[k+1]
	km, kd := ks.Dimensions[k], ks.Dimensions[k+1]
	if kT {
		km, kd = kd, km
	}
	if qs.Dimensions[k] != n || km != m || kd != d || vs.Dimensions[k] != m || n*m == 0 || sm.m != m {
		return nil, false, nil
	}
	outDims := append(ps.Clone().Dimensions[:k+1:k+1], dv)
	node := simplegoNewNode(b.Builder, backends.OpTypePad, shapes.Make(dtypes.Float32, outDims...), s.lhs, s.rhs, v.(*simplego.Node))
	if !setNodeData(node, &attnNodeData{b: bsz, n: n, m: m, d: d, dv: dv, kT: kT, scale: float32(sm.scale)}) {
		return nil, false, nil
	}
	plain, err := b.Builder.DotGeneral(p, lc, lb, v, rc, rb)
	if err != nil {
		return nil, false, err
	}
	statAttnFused.Add(1)
	chain := b.newChain(false, p)
	chain.att = true
	chain.addSub(node, plain)
	return node, true, nil
}

// execAttention runs a fused attention node.
func execAttention(backend *simplego.Backend, data *attnNodeData, inputs []*simplego.Buffer) (*simplego.Buffer, error) {
	flats := make([][]float32, 3)
	for i := range flats {
		f, err := backend.BufferData(inputs[i])
		if err != nil {
			return nil, err
		}
		var ok bool
		if flats[i], ok = f.([]float32); !ok {
			return nil, fmt.Errorf("compute: fused attention of dtype %T", f)
		}
	}
	outBuf, outFlat, err := backend.NewSharedBuffer(0, shapes.Make(dtypes.Float32, data.b, data.n, data.dv))
	if err != nil {
		return nil, err
	}
	attention32(outFlat.([]float32), flats[0], flats[1], flats[2], data)
	statFastOps.Add(1)
	statAttnRun.Add(1)
	return outBuf.(*simplego.Buffer), nil
}

// attnScratch holds the score blocks of attention32 between calls (4 MiB a core at M = 4096:
// allocated afresh, the sd-turbo fixture's forward left about 256 MiB of them to the collector).
var attnScratch sync.Pool

// attention32 writes o = softmax(c·q·kᵀ)·v per batch entry (the layouts of attnNodeData), in blocks
// of attnRows query rows over the cores.
func attention32(o, q, k, v []float32, a *attnNodeData) {
	blocks := (a.n + attnRows - 1) / attnRows
	ldk := a.d
	if a.kT {
		ldk = a.m
	}
	parallelAxis(a.b*blocks, a.b*a.n*a.m, func(lo, hi int) {
		need := min(attnRows, a.n) * a.m
		sp := poolSlice[float32](&attnScratch, need)
		defer attnScratch.Put(sp)
		scores := (*sp)[:need]
		for u := lo; u < hi; u++ {
			e, r0 := u/blocks, (u%blocks)*attnRows
			rows := min(attnRows, a.n-r0)
			qb := q[(e*a.n+r0)*a.d : (e*a.n+r0+rows)*a.d]
			kb := k[e*a.m*a.d : (e+1)*a.m*a.d]
			vb := v[e*a.m*a.dv : (e+1)*a.m*a.dv]
			s := scores[:rows*a.m]
			// s = qb·kᵀ: k is [M, d] (transposed in the product) or kᵀ [d, M] as stored.
			gemmCall(false, !a.kT, rows, a.m, a.d, qb, a.d, kb, ldk, s, a.m)
			softmaxRows32(s, s, a.m, a.scale)
			gemmCall(false, false, rows, a.dv, a.m, s, a.m, vb, a.dv, o[(e*a.n+r0)*a.dv:(e*a.n+r0+rows)*a.dv], a.dv)
		}
	})
}
