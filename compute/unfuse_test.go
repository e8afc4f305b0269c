package compute

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// fusedCounts is a snapshot of the fused-node counters.
type fusedCounts struct{ built, unfused, run int64 }

func normCounts() fusedCounts {
	return fusedCounts{statNormFused.Load(), statNormUnfused.Load(), statNormRun.Load()}
}

func softmaxCounts() fusedCounts {
	return fusedCounts{statSoftmaxFused.Load(), statSoftmaxUnfused.Load(), statSoftmaxRun.Load()}
}

func (a fusedCounts) minus(b fusedCounts) fusedCounts {
	return fusedCounts{a.built - b.built, a.unfused - b.unfused, a.run - b.run}
}

// checkUnfused runs, on the patched backend and on SimpleGo, fn's output together with the gradient
// of Σ y·sin(y) with respect to the inputs wrt (all when nil), and checks the values against
// SimpleGo's (relative tol) and the fused-node counters: with wantRead, the chain's intermediates are
// read by the gradient, so every fused op built must be replaced by its plain op and none run;
// otherwise none is replaced and the fused output runs.
func checkUnfused(t *testing.T, name string, fn func(in []*graph.Node) *graph.Node, inputs func() []*tensors.Tensor,
	wrt []int, wantRead bool, counts func() fusedCounts, tol float64) {
	t.Helper()
	g := func(in []*graph.Node) []*graph.Node {
		y := fn(in)
		xs := in
		if wrt != nil {
			xs = nil
			for _, i := range wrt {
				xs = append(xs, in[i])
			}
		}
		return append([]*graph.Node{y}, graph.Gradient(graph.ReduceAllSum(graph.Mul(y, graph.Sin(y))), xs...)...)
	}
	before := counts()
	got := eval(t, testBackend(t), g, inputs()...)
	d := counts().minus(before)
	if d.built == 0 {
		t.Fatalf("%s: no fused node built", name)
	}
	switch {
	case wantRead && (d.unfused != d.built || d.run != 0):
		t.Errorf("%s: the gradient reads the chain, yet of %d fused ops %d were replaced by plain ops and %d fused nodes ran",
			name, d.built, d.unfused, d.run)
	case !wantRead && (d.unfused != 0 || d.run == 0):
		t.Errorf("%s: the gradient does not read the chain, yet %d of %d fused ops were replaced, %d fused nodes ran",
			name, d.unfused, d.built, d.run)
	}
	want := eval(t, stockBackend(t), g, inputs()...)
	for k := range want {
		if e := maxRelDiff(got[k], want[k]); e > tol {
			t.Errorf("%s: output %d differs from SimpleGo's by %.3g (tolerance %g)", name, k, e, tol)
		}
	}
}

// TestUnfuseGradient: in a graph that computes gradients through a normalization or softmax chain
// (whose Div or Mul reads the chain's intermediates), the chain runs once: every fused op is replaced
// by its plain op at compile time and no fused node runs, with SimpleGo's values and gradients (the
// unfused graph's, so to float64 rounding); the forward alone still runs the fused node; a gradient
// with respect to the scale and bias only (x constant) reads no intermediate and keeps the fused ops.
// Central differences of these gradients are TestNormFused's and TestSoftmaxFused's.
func TestUnfuseGradient(t *testing.T) {
	for _, c := range normCases {
		if c.fused == 0 {
			continue
		}
		in := func() []*tensors.Tensor { return normInputs(c.dims, false) }
		checkUnfused(t, c.name, c.fn, in, nil, true, normCounts, 1e-10)
		if len(c.dims) > 1 && c.name != "times-full-size" {
			wrt := []int{}
			for i := 1; i < len(c.dims); i++ {
				wrt = append(wrt, i)
			}
			checkUnfused(t, c.name+"/params-only", c.fn, in, wrt, false, normCounts, 1e-10)
		}
		// The forward alone runs exactly one fused node (the last stage's).
		before := normCounts()
		got := eval(t, testBackend(t), func(x []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(x)} }, in()...)
		if d := normCounts().minus(before); d.unfused != 0 || d.run != 1 {
			t.Errorf("%s forward: %d fused ops replaced, %d fused nodes run; want 0 and 1", c.name, d.unfused, d.run)
		}
		want := eval(t, stockBackend(t), func(x []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(x)} }, in()...)
		if e := maxRelDiff(got[0], want[0]); e > 1e-12 {
			t.Errorf("%s forward: differs from SimpleGo by %.3g", c.name, e)
		}
	}
	for _, c := range softmaxCases {
		if c.fused == 0 {
			continue
		}
		in := func() []*tensors.Tensor { return normInputs(c.dims, false) }
		checkUnfused(t, "softmax "+c.name, c.fn, in, nil, true, softmaxCounts, 1e-10)
		if len(c.dims) > 1 {
			checkUnfused(t, "softmax "+c.name+"/w-only", c.fn, in, []int{1}, false, softmaxCounts, 1e-10)
		}
	}
}
