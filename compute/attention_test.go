package compute

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// attnCase is an attention layer O = softmax(c·Q·Kᵀ)·V as the importer builds it: batch axes
// leading, K given as [.., M, d] or as Kᵀ [.., d, M], the scale as a Mul by a constant (or none).
type attnCase struct {
	name           string
	batch          []int
	n, m, d, dv    int
	kT, transposed bool // K stored as Kᵀ; K given as [.., M, d] but multiplied through a Transpose
	scale          float64
	fused          bool // the fused node is expected
}

func (tc attnCase) dims() [][]int {
	with := func(a, b int) []int { return append(append([]int{}, tc.batch...), a, b) }
	kd := with(tc.m, tc.d)
	if tc.kT {
		kd = with(tc.d, tc.m)
	}
	return [][]int{with(tc.n, tc.d), kd, with(tc.m, tc.dv)}
}

func (tc attnCase) fn(in []*graph.Node) *graph.Node {
	k := len(tc.batch)
	batch := iotaFrom(0, k)
	q, key, v := in[0], in[1], in[2]
	var s *graph.Node
	switch {
	case tc.kT:
		s = graph.DotGeneral(q, []int{k + 1}, batch, key, []int{k}, batch)
	case tc.transposed:
		perm := append(append([]int{}, batch...), k+1, k)
		s = graph.DotGeneral(q, []int{k + 1}, batch, graph.TransposeAllDims(key, perm...), []int{k}, batch)
	default:
		s = graph.DotGeneral(q, []int{k + 1}, batch, key, []int{k + 1}, batch)
	}
	if tc.scale != 1 {
		s = graph.MulScalar(s, tc.scale)
	}
	p := graph.Softmax(s, -1)
	return graph.DotGeneral(p, []int{k + 1}, batch, v, []int{k}, batch)
}

func attnCases() []attnCase {
	return []attnCase{
		{name: "self, 70 rows (one partial block)", batch: []int{3}, n: 70, m: 70, d: 8, dv: 8, scale: 0.35, fused: true},
		{name: "300 rows (a whole block and a partial one)", batch: []int{2}, n: 300, m: 40, d: 8, dv: 8, scale: 0.35, fused: true},
		{name: "cross, 77 keys", batch: []int{2}, n: 130, m: 77, d: 16, dv: 12, scale: 0.25, fused: true},
		{name: "stored K^T", batch: []int{2}, n: 65, m: 33, d: 8, dv: 5, kT: true, scale: 0.5, fused: true},
		{name: "K^T by a Transpose", batch: []int{2}, n: 40, m: 50, d: 8, dv: 8, transposed: true, scale: 0.3, fused: true},
		{name: "two batch axes, no scale", batch: []int{2, 3}, n: 20, m: 24, d: 4, dv: 6, scale: 1, fused: true},
		// a negative scale is not folded into the softmax, whose input is then not a product
		{name: "negative scale", batch: []int{2}, n: 20, m: 24, d: 4, dv: 6, scale: -0.5, fused: false},
	}
}

// TestAttentionFused: softmax(c·Q·Kᵀ)·V in a forward graph runs as one fused node (the scores never
// allocated) in every layout the builder recognizes, and gives the op-by-op graph's and SimpleGo's
// values within 1e-5 of the largest output (float32; the GEMMs of a block may add in another order
// than those of the whole); where the pattern does not apply, nothing is fused. Before each case
// the score scratch pool is handed NaN-filled blocks: reused scratch is written before it is read.
func TestAttentionFused(t *testing.T) {
	if !MatmulPath().Fast {
		t.Skip("no GEMM library here: the fused attention runs on it")
	}
	fast, stock := testBackend(t), stockBackend(t)
	for _, tc := range attnCases() {
		fn := func(in []*graph.Node) []*graph.Node { return []*graph.Node{tc.fn(in)} }
		in := func() []*tensors.Tensor { return normInputs(tc.dims(), true) }
		for range 4 {
			poison := make([]float32, attnRows*tc.m)
			for i := range poison {
				poison[i] = float32(math.NaN())
			}
			attnScratch.Put(&poison)
		}
		built, ran := statAttnFused.Load(), statAttnRun.Load()
		got := eval(t, fast, fn, in()...)
		b, r := statAttnFused.Load()-built, statAttnRun.Load()-ran
		if tc.fused && (b != 1 || r != 1) || !tc.fused && (b != 0 || r != 0) {
			t.Errorf("%s: %d fused attention nodes built, %d run; want fused = %v", tc.name, b, r, tc.fused)
		}
		attnFuseOn.Store(false)
		off := eval(t, fast, fn, in()...)
		attnFuseOn.Store(true)
		if e := maxRelDiff(got[0], off[0]); e > 1e-5 {
			t.Errorf("%s: differs from the op-by-op graph by %.3g of the largest entry", tc.name, e)
		}
		want := eval(t, stock, fn, in()...)
		if e := maxRelDiff(got[0], want[0]); e > 1e-5 {
			t.Errorf("%s: differs from SimpleGo by %.3g of the largest entry", tc.name, e)
		}
	}
}

// TestAttentionFusedGradient: in a graph that also computes the gradients with respect to Q, K and
// V, the fused node is replaced by the plain product at compile time (the gradient reads the
// softmax's output), and the gradients are those of the graph built without it.
func TestAttentionFusedGradient(t *testing.T) {
	if !MatmulPath().Fast {
		t.Skip("no GEMM library here: the fused attention runs on it")
	}
	fast := testBackend(t)
	for _, tc := range attnCases()[:3] {
		grad := func(in []*graph.Node) []*graph.Node {
			o := tc.fn(in)
			return append([]*graph.Node{o}, graph.Gradient(graph.ReduceAllSum(graph.Mul(o, graph.Sin(o))), in...)...)
		}
		in := func() []*tensors.Tensor { return normInputs(tc.dims(), true) }
		unfused, ran := statAttnUnfused.Load(), statAttnRun.Load()
		got := eval(t, fast, grad, in()...)
		if statAttnUnfused.Load() == unfused || statAttnRun.Load() != ran {
			t.Errorf("%s: %d fused nodes replaced, %d run; want the fused node replaced and never run",
				tc.name, statAttnUnfused.Load()-unfused, statAttnRun.Load()-ran)
		}
		attnFuseOn.Store(false)
		want := eval(t, fast, grad, in()...)
		attnFuseOn.Store(true)
		for i := range want {
			if e := maxRelDiff(got[i], want[i]); e > 1e-6 {
				t.Errorf("%s: output %d differs from the graph without the fused node by %.3g", tc.name, i, e)
			}
		}
	}
}
