package compute

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestSigmoidGradFused: the gradients of a SiLU x·σ(x) (both operand orders, and plus x·w, whose
// gradient term joins the sum), of a sigmoid, of a sigmoid that is also read elsewhere (its 1-σ too) and of a chain
// that only looks alike (v·(σ·(2-σ)), not a gradient) equal SimpleGo's bit for bit, in float32 and
// float64, on sizes below and above the two-goroutine cut; each must build the fused nodes it can
// (the SiLU ones the whole SiLU gradient) and the look-alike none.
func TestSigmoidGradFused(t *testing.T) {
	fast := testBackend(t)
	stock, err := NewBackend(StockName + ":ops_sequential") // SimpleGo's parallel executor races (see patched.go)
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Finalize()
	grad := func(f func(x, w *graph.Node) *graph.Node) func(in []*graph.Node) []*graph.Node {
		return func(in []*graph.Node) []*graph.Node {
			loss := graph.ReduceAllSum(graph.Mul(f(in[0], in[1]), in[1]))
			return graph.Gradient(loss, in[0])
		}
	}
	for _, c := range []struct {
		name      string
		fn        func(in []*graph.Node) []*graph.Node
		fused     bool
		siluFused bool
	}{
		{"silu", grad(func(x, _ *graph.Node) *graph.Node { return graph.Mul(x, graph.Sigmoid(x)) }), true, true},
		{"silu-sigma-first", grad(func(x, _ *graph.Node) *graph.Node { return graph.Mul(graph.Sigmoid(x), x) }), true, true},
		{"silu-plus-x", grad(func(x, w *graph.Node) *graph.Node {
			return graph.Add(graph.Mul(x, graph.Sigmoid(x)), graph.Mul(x, w))
		}), true, false}, // x's three gradient terms are not summed as the SiLU's two first
		{"sigmoid", grad(func(x, _ *graph.Node) *graph.Node { return graph.Sigmoid(x) }), true, false},
		{"sigmoid-read-twice", func(in []*graph.Node) []*graph.Node {
			s := graph.Sigmoid(in[0])
			one := graph.ScalarOne(in[0].Graph(), in[0].DType())
			loss := graph.ReduceAllSum(graph.Mul(graph.Mul(s, graph.Sub(one, s)), in[1]))
			return append(graph.Gradient(loss, in[0]), graph.Sub(one, s))
		}, true, false},
		{"look-alike", func(in []*graph.Node) []*graph.Node {
			s := graph.Sigmoid(in[0])
			two := graph.Scalar(in[0].Graph(), in[0].DType(), 2)
			return []*graph.Node{graph.Mul(in[1], graph.Mul(s, graph.Sub(two, s)))}
		}, false, false},
	} {
		for _, n := range []int{37, 2*elemParallelMin + 5} {
			for _, f32 := range []bool{true, false} {
				in := func() []*tensors.Tensor {
					x, w := randTensor(3, n), randTensor(4, n)
					if f32 {
						x, w = toFloat32(x), toFloat32(w)
					}
					return []*tensors.Tensor{x, w}
				}
				before, beforeSilu := statSigmoidGradFused.Load(), statSiluGradFused.Load()
				got := eval(t, fast, c.fn, in()...)
				if fused := statSigmoidGradFused.Load() > before; fused != c.fused {
					t.Errorf("%s n=%d float32 %v: fused node built %v, want %v", c.name, n, f32, fused, c.fused)
				}
				if fused := statSiluGradFused.Load() > beforeSilu; fused != c.siluFused {
					t.Errorf("%s n=%d float32 %v: fused SiLU node built %v, want %v", c.name, n, f32, fused, c.siluFused)
				}
				want := eval(t, stock, c.fn, in()...)
				for k := range want {
					for i := range want[k] {
						if math.Float64bits(got[k][i]) != math.Float64bits(want[k][i]) {
							t.Errorf("%s n=%d float32 %v: output %d entry %d = %g, SimpleGo gives %g", c.name, n, f32, k, i, got[k][i], want[k][i])
							break
						}
					}
				}
			}
		}
	}
}
