package compute

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestSigmoidGradFused: the gradients of a SiLU x·σ(x) (both operand orders, and plus x·w, whose
// gradient term joins the sum), of a sigmoid, of a sigmoid that is also read elsewhere (its 1-σ too) and of a chain
// that only looks alike (v·(σ·(2-σ)), not a gradient) equal SimpleGo's bit for bit in float64, and in
// float32 within 1e-6 of the output's largest value (the float32 logistic itself is within 3 ulps of SimpleGo's, see
// logistic.go), on sizes below and above the two-goroutine cut; each must build the fused nodes it can
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
					scale := 0.0
					for _, v := range want[k] {
						scale = max(scale, math.Abs(v))
					}
					for i := range want[k] {
						exact := math.Float64bits(got[k][i]) == math.Float64bits(want[k][i])
						if f32 && math.Abs(got[k][i]-want[k][i]) <= 1e-6*scale {
							exact = true
						}
						if !exact {
							t.Errorf("%s n=%d float32 %v: output %d entry %d = %g, SimpleGo gives %g", c.name, n, f32, k, i, got[k][i], want[k][i])
							break
						}
					}
				}
			}
		}
	}
}

// TestUnbroadcast: Add, Sub and Mul with an explicitly broadcast operand (unit axes, a scalar, on
// either side, also read by a ReduceSum) and the gradient of compute.GroupNorm (whose product rule
// broadcasts) equal SimpleGo's bit for bit, and the binary ops are built on the broadcasts' sources.
func TestUnbroadcast(t *testing.T) {
	fast := testBackend(t)
	stock, err := NewBackend(StockName + ":ops_sequential")
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Finalize()
	for _, c := range []struct {
		name string
		fn   func(in []*graph.Node) []*graph.Node
		dims [][]int
	}{
		{"mul/unit-axes", func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.Mul(in[0], graph.BroadcastToDims(in[1], 3, 5, 4, 2))}
		}, [][]int{{3, 5, 4, 2}, {3, 1, 4, 1}}},
		{"sub/broadcast-left", func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.Sub(graph.BroadcastToDims(in[1], 3, 5, 4, 2), in[0])}
		}, [][]int{{3, 5, 4, 2}, {1, 5, 1, 2}}},
		{"add/scalar-and-reduce", func(in []*graph.Node) []*graph.Node {
			b := graph.BroadcastToDims(graph.Reshape(in[1]), 6, 7)
			return []*graph.Node{graph.Add(in[0], b), graph.ReduceSum(b, 0)}
		}, [][]int{{6, 7}, {1}}},
		{"groupnorm-gradient", func(in []*graph.Node) []*graph.Node {
			y := GroupNorm(in[0], 2, 1e-5)
			return graph.Gradient(graph.ReduceAllSum(graph.Mul(y, in[1])), in[0])
		}, [][]int{{2, 3, 5, 4}, {2, 3, 5, 4}}},
	} {
		for _, f32 := range []bool{true, false} {
			in := func() []*tensors.Tensor {
				out := make([]*tensors.Tensor, len(c.dims))
				for i, d := range c.dims {
					out[i] = randTensor(uint64(7+i), d...)
					if f32 {
						out[i] = toFloat32(out[i])
					}
				}
				return out
			}
			before := statUnbroadcast.Load()
			got := eval(t, fast, c.fn, in()...)
			if statUnbroadcast.Load() == before {
				t.Errorf("%s float32 %v: no binary op was built on a broadcast's source", c.name, f32)
			}
			want := eval(t, stock, c.fn, in()...)
			for k := range want {
				for i := range want[k] {
					if math.Float64bits(got[k][i]) != math.Float64bits(want[k][i]) {
						t.Errorf("%s float32 %v: output %d entry %d = %g, SimpleGo gives %g", c.name, f32, k, i, got[k][i], want[k][i])
						break
					}
				}
			}
		}
	}
}

// TestSiluGradVector: siluGrad on float32 (its AVX2 prefix where the CPU has it, then the loop) gives,
// for every operand order its flags can describe, the bits of the flagged scalar expression.
func TestSiluGradVector(t *testing.T) {
	const n = 1037
	v, x, s := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range v {
		v[i] = float32(math.Sin(float64(i)*0.37)) * 3
		x[i] = float32(math.Cos(float64(i)*0.91)) * 5
		s[i] = float32(1 / (1 + math.Exp(-float64(x[i]))))
	}
	for mask := range 16 {
		d := &siluGradNodeData{sigmaLeft: mask&1 != 0, xLeft: mask&2 != 0, vxLeft: mask&4 != 0, secondFirst: mask&8 != 0}
		got := make([]float32, n)
		siluGrad(got, v, x, s, d)
		for i := range got {
			// float32 conversions round each product (no fused multiply-add on any architecture).
			first := float32(v[i] * s[i])
			if d.sigmaLeft {
				first = float32(s[i] * v[i])
			}
			vx := float32(v[i] * x[i])
			if d.xLeft {
				vx = float32(x[i] * v[i])
			}
			dsig := float32(s[i] * (1 - s[i]))
			second := float32(vx * dsig)
			if !d.vxLeft {
				second = float32(dsig * vx)
			}
			want := first + second
			if d.secondFirst {
				want = second + first
			}
			if math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("flags %+v, entry %d: %g, the scalar expression gives %g", *d, i, got[i], want)
			}
		}
	}
	t.Logf("AVX2 prefix: %v", binaryVector)
}
