package compute

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// biasCounts is a snapshot of the conv-bias fold counters: built, kept at compile time, replaced.
type biasCounts struct{ built, folded, unfused int64 }

func convBiasCounts() biasCounts {
	return biasCounts{statConvBiasBuilt.Load(), statConvBiasFolded.Load(), statConvBiasUnfused.Load()}
}

func (a biasCounts) minus(b biasCounts) biasCounts {
	return biasCounts{a.built - b.built, a.folded - b.folded, a.unfused - b.unfused}
}

// TestConvBiasFold: a channels-first convolution on oneDNN followed by a per-channel bias Add
// (ONNX's Conv with a bias) is built as one biased fused node. Forward only, the biased node is kept
// (counted as folded) and gives SimpleGo's values within 1e-5 relative, on oneDNN and on the im2col
// path (oneDNN switched off after compilation); with the un-biased output also an output of the
// graph the plain Add replaces it (none folded) with the same values; a graph with the gradients of
// Σ y·sin(y) with respect to x, the kernel and the bias gives the unfolded graph's values and
// gradients (the gradient reads no un-biased output, so the fold is kept there too).
func TestConvBiasFold(t *testing.T) {
	if !MatmulPath().Fast || convDNNLLib() == nil {
		t.Skip("oneDNN is not in use here: no convolution bias is folded")
	}
	fast, stock := testBackend(t), stockBackend(t)
	defer convDNNLOn.Store(true)
	for _, c := range []convVariant{
		{"3x3/pad1", []int{3, 6, 9, 8}, []int{5, 6, 3, 3}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, true},
		{"2x3/s2/dil(1,2)", []int{2, 4, 11, 10}, []int{7, 4, 2, 3}, []int{2, 2}, [][2]int{{1, 0}, {2, 1}}, []int{1, 2}, 1, true},
		{"1d/k3", []int{2, 5, 13}, []int{4, 5, 3}, []int{1}, [][2]int{{1, 1}}, nil, 1, true},
	} {
		if c.dil == nil {
			c.dil = ones(len(c.x) - 2)
		}
		cout := c.k[0]
		biased := func(in []*graph.Node) (conv, y *graph.Node) {
			conv = c.fn(in[:2])
			dims := ones(len(c.x))
			dims[1] = cout
			return conv, graph.Add(conv, graph.Reshape(in[2], dims...))
		}
		inputs := func() []*tensors.Tensor {
			return []*tensors.Tensor{randFloat32(3, c.x...), randFloat32(4, c.k...), randFloat32(5, cout)}
		}
		check := func(what string, fn func(in []*graph.Node) []*graph.Node, want biasCounts, runs int) {
			t.Helper()
			exec, err := graph.NewExec(fast, fn)
			if err != nil {
				t.Fatal(err)
			}
			defer exec.Finalize()
			in := inputs()
			before := convBiasCounts()
			var got [][]*tensors.Tensor
			for i := range runs { // the second run on the im2col path
				convDNNLOn.Store(i == 0)
				out, err := exec.Exec(in[0], in[1], in[2])
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, out)
			}
			convDNNLOn.Store(true)
			if d := convBiasCounts().minus(before); d != want {
				t.Errorf("%s %s: built, folded, unfused %v, want %v", c.name, what, d, want)
			}
			ref := stock
			if what == "gradient" { // SimpleGo has no Reverse (the kernel gradient): the unfolded graph
				ref = fast
				convBiasOn.Store(false)
				defer convBiasOn.Store(true)
			}
			wantV := eval(t, ref, fn, inputs()...)
			for r, out := range got {
				for k := range wantV {
					if d, scale := scaledDiff(t, out[k], wantV[k]); d > 1e-5*scale || math.IsNaN(d) {
						t.Errorf("%s %s (run %d): output %d differs from SimpleGo's by %g (scale %g)", c.name, what, r, k, d, scale)
					}
				}
			}
		}
		check("forward", func(in []*graph.Node) []*graph.Node {
			_, y := biased(in)
			return []*graph.Node{y}
		}, biasCounts{1, 1, 0}, 2)
		check("un-biased output read", func(in []*graph.Node) []*graph.Node {
			conv, y := biased(in)
			return []*graph.Node{y, conv}
		}, biasCounts{1, 0, 1}, 1)
		check("gradient", func(in []*graph.Node) []*graph.Node {
			_, y := biased(in)
			return append([]*graph.Node{y}, graph.Gradient(graph.ReduceAllSum(graph.Mul(y, graph.Sin(y))), in...)...)
		}, biasCounts{1, 1, 0}, 1)
	}
}
