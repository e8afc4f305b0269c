package compute

import (
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// Gradients of elementwise ops that GoMLX v0.26 leaves undefined. Registered only where GoMLX has none.
//
//	y = 1/√x         dx = v·(-½)·y³
//	y = eˣ - 1       dx = v·(y + 1)
//	y = clamp(x, lo, hi) = min(max(x, lo), hi)
//	                 dhi = v·[max(x,lo) > hi],  dlo = v·[x < lo ≤ hi],  dx = v elsewhere
//	                 (each summed to its operand's shape when lo/hi are scalars).
//
// graph.Clip is graph.Clamp, so this also gives Clip a gradient.

func init() {
	for nodeType, rule := range map[graph.NodeType]graph.VJP{
		graph.NodeTypeRsqrt: singleOutput(rsqrtVJP),
		graph.NodeTypeExpm1: singleOutput(expm1VJP),
		graph.NodeTypeClamp: singleOutput(clampVJP),
	} {
		if _, found := graph.VJPRegistration[nodeType]; !found {
			graph.VJPRegistration[nodeType] = rule
		}
	}
}

func rsqrtVJP(node, v *graph.Node) []*graph.Node {
	y := node
	half := graph.Scalar(y.Graph(), y.DType(), -0.5)
	return []*graph.Node{graph.Mul(v, graph.Mul(half, graph.Mul(y, graph.Mul(y, y))))}
}

func expm1VJP(node, v *graph.Node) []*graph.Node {
	return []*graph.Node{graph.Mul(v, graph.AddScalar(node, 1))}
}

func clampVJP(node, v *graph.Node) []*graph.Node {
	in := node.Inputs()
	lo, x, hi := in[0], in[1], in[2]
	zeros := graph.ZerosLike(v)
	// y = min(max(x, lo), hi): hi wins when max(x, lo) > hi (also when lo > hi), then lo when x < lo.
	toHi := graph.GreaterThan(graph.Max(x, lo), hi)
	toLo := graph.LogicalAnd(graph.LogicalNot(toHi), graph.LessThan(x, lo))
	dx := graph.Where(graph.LogicalOr(toHi, toLo), zeros, v)
	sumTo := func(g, target *graph.Node) *graph.Node {
		if target.IsScalar() && !g.IsScalar() {
			return graph.ReduceAllSum(g)
		}
		return g
	}
	dlo := sumTo(graph.Where(toLo, v, zeros), lo)
	dhi := sumTo(graph.Where(toHi, v, zeros), hi)
	return []*graph.Node{dlo, dx, dhi}
}
