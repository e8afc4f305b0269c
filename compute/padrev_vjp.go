package compute

import (
	"fmt"
	"reflect"

	"github.com/gomlx/gomlx/pkg/core/graph"
)

// Gradients for Pad and Reverse, which GoMLX v0.26 does not define (it panics "no gradient defined").
// They are registered only where GoMLX has none, so a future GoMLX rule takes precedence.
//
// Pad with per-axis (start s, end e, interior d) puts x[i] at output index o(i) = s + i·(1+d) (entries
// with o outside [0, N) are cropped by negative padding) and the fill value everywhere else, so
//
//	dx[i] = v[o(i)] if 0 ≤ o(i) < N, else 0;     dfill = Σ v − Σ_i v[o(i)]
//
// i.e. a strided slice of v, zero-padded back where x was cropped. Reverse is its own adjoint:
// dx = Reverse(v, axes).

func init() {
	if _, found := graph.VJPRegistration[graph.NodeTypePad]; !found {
		graph.VJPRegistration[graph.NodeTypePad] = singleOutput(padVJP)
	}
	if _, found := graph.VJPRegistration[graph.NodeTypeReverse]; !found {
		graph.VJPRegistration[graph.NodeTypeReverse] = singleOutput(reverseVJP)
	}
}

// padConfig reads the axesConfig of a Pad node, one entry per axis of its operand.
func padConfig(node *graph.Node) ([]graph.PadAxis, error) {
	params, ok := nodeParams(node)
	if !ok {
		return nil, fmt.Errorf("compute: cannot read the parameters of Pad node %s", node)
	}
	f := params.FieldByName("axesConfig")
	if !f.IsValid() || f.Kind() != reflect.Slice {
		return nil, fmt.Errorf("compute: cannot read axesConfig of Pad node %s", node)
	}
	rank := node.Inputs()[0].Rank()
	cfg := make([]graph.PadAxis, rank)
	for i := 0; i < f.Len() && i < rank; i++ {
		e := f.Index(i)
		cfg[i] = graph.PadAxis{
			Start:    int(e.FieldByName("Start").Int()),
			End:      int(e.FieldByName("End").Int()),
			Interior: int(e.FieldByName("Interior").Int()),
		}
	}
	return cfg, nil
}

func padVJP(node, v *graph.Node) []*graph.Node {
	cfg, err := padConfig(node)
	if err != nil {
		panic(err)
	}
	x := node.Inputs()[0]
	inDims := x.Shape().Dimensions
	outDims := node.Shape().Dimensions
	specs := make([]graph.SliceAxisSpec, len(inDims))
	back := make([]graph.PadAxis, len(inDims))
	empty, needBack := false, false
	for a, c := range cfg {
		n, step := inDims[a], 1+c.Interior
		// Valid i: 0 ≤ s + i·step < N.
		iLo := 0
		if c.Start < 0 {
			iLo = (-c.Start + step - 1) / step
		}
		iHi := n - 1
		if last := outDims[a] - 1 - c.Start; last < 0 {
			iHi = -1
		} else {
			iHi = min(iHi, last/step)
		}
		if iHi < iLo {
			empty = true
			break
		}
		oLo := c.Start + iLo*step
		oHi := c.Start + iHi*step
		specs[a] = graph.AxisRange(oLo, oHi+1).Stride(step)
		back[a] = graph.PadAxis{Start: iLo, End: n - 1 - iHi}
		needBack = needBack || iLo > 0 || iHi < n-1
	}
	g := v.Graph()
	if empty {
		return []*graph.Node{graph.ZerosLike(x), graph.ReduceAllSum(v)}
	}
	dx := graph.Slice(v, specs...)
	dFill := graph.Sub(graph.ReduceAllSum(v), graph.ReduceAllSum(dx))
	if needBack {
		dx = graph.Pad(dx, graph.ScalarZero(g, dx.DType()), back...)
	}
	return []*graph.Node{dx, dFill}
}

func reverseVJP(node, v *graph.Node) []*graph.Node {
	params, ok := nodeParams(node)
	if !ok {
		panic(fmt.Errorf("compute: cannot read the parameters of Reverse node %s", node))
	}
	axes, ok := intsField(params, "axes")
	if !ok {
		panic(fmt.Errorf("compute: cannot read the axes of Reverse node %s", node))
	}
	return []*graph.Node{graph.Reverse(v, axes...)}
}
