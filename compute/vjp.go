package compute

import (
	"reflect"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Matrix-product gradients.
//
// GoMLX's stock reverse-mode rules for Dot and DotGeneral build the broadcast product v[i,1,k]*B[1,j,k]
// (an [i,j,k] tensor) and reduce it. XLA fuses that away; the pure-Go backend materialises it, which costs
// O(i·j·k) memory and runs at elementwise speed. The rules below are the textbook ones, each input's
// gradient being one more matrix product:
//
//	C = A·B            ⇒  dA = dC·Bᵀ,  dB = Aᵀ·dC
//
// and, for DotGeneral with batch axes b, lhs cross axes i, rhs cross axes k and contracting axes j,
//
//	C[b,i,k] = Σ_j A[b,i,j] B[b,j,k]
//	dA[b,i,j] = Σ_k dC[b,i,k] B[b,j,k]   (a DotGeneral of dC and B contracting k, batch b)
//	dB[b,j,k] = Σ_i A[b,i,j] dC[b,i,k]   (a DotGeneral of A and dC contracting i, batch b)
//
// followed by a transpose that puts the axes back in each input's own order. They are installed into
// graph.VJPRegistration when this package is imported; the map is global, so the rules also serve XLA
// (where they are equally correct; XLA fuses either form).

var (
	stockDotVJP        = graph.VJPRegistration[graph.NodeTypeDot]
	stockDotGeneralVJP = graph.VJPRegistration[graph.NodeTypeDotGeneral]

	// vjpMu serialises swaps of the registered rules (tests and benchmarks only). Graph building reads the
	// map without a lock, so no graph may be under construction while a swap happens.
	vjpMu sync.Mutex
)

func init() {
	installMatmulVJP()
}

// installMatmulVJP registers the two-matmul rules for Dot and DotGeneral.
func installMatmulVJP() {
	graph.VJPRegistration[graph.NodeTypeDot] = singleOutput(dotVJP)
	graph.VJPRegistration[graph.NodeTypeDotGeneral] = singleOutput(dotGeneralVJP)
}

// useStockMatmulVJP switches Dot/DotGeneral back to GoMLX's own rules (stock=true) or to this package's
// rules (stock=false), and returns a function that restores what was registered before. For tests and
// benchmarks; it must not run while another goroutine builds a graph.
func useStockMatmulVJP(stock bool) (restore func()) {
	vjpMu.Lock()
	defer vjpMu.Unlock()
	prevDot := graph.VJPRegistration[graph.NodeTypeDot]
	prevDG := graph.VJPRegistration[graph.NodeTypeDotGeneral]
	if stock {
		graph.VJPRegistration[graph.NodeTypeDot] = stockDotVJP
		graph.VJPRegistration[graph.NodeTypeDotGeneral] = stockDotGeneralVJP
	} else {
		installMatmulVJP()
	}
	return func() {
		vjpMu.Lock()
		defer vjpMu.Unlock()
		graph.VJPRegistration[graph.NodeTypeDot] = prevDot
		graph.VJPRegistration[graph.NodeTypeDotGeneral] = prevDG
	}
}

func singleOutput(fn func(node, v *graph.Node) []*graph.Node) graph.VJP {
	return func(node *graph.Node, vjpOutputs []*graph.Node, _ shapes.Shape) []*graph.Node {
		return fn(node, vjpOutputs[0])
	}
}

// dotVJP is the rule for graph.Dot, whose operands are vector·vector, matrix·vector or matrix·matrix:
//
//	s = a·b (vectors)        ⇒ da = v·b,          db = v·a
//	y = A·x (matrix, vector) ⇒ dA = v ⊗ x,        dx = Aᵀ·v
//	C = A·B (matrices)       ⇒ dA = v·Bᵀ,         dB = Aᵀ·v
func dotVJP(node, v *graph.Node) []*graph.Node {
	inputs := node.Inputs()
	a, b := inputs[0], inputs[1]
	switch {
	case a.Rank() == 1 && b.Rank() == 1:
		return []*graph.Node{graph.Mul(v, b), graph.Mul(v, a)}
	case a.Rank() == 2 && b.Rank() == 1:
		return []*graph.Node{
			graph.DotGeneral(v, nil, nil, b, nil, nil),           // [m] ⊗ [k] -> [m,k]
			graph.DotGeneral(a, []int{0}, nil, v, []int{0}, nil), // Aᵀ·v -> [k]
		}
	case a.Rank() == 2 && b.Rank() == 2:
		return []*graph.Node{
			graph.DotGeneral(v, []int{1}, nil, b, []int{1}, nil), // v[i,k]·B[j,k] -> [i,j]
			graph.DotGeneral(a, []int{0}, nil, v, []int{0}, nil), // A[i,j]·v[i,k] -> [j,k]
		}
	}
	// Not a combination Dot accepts; let the stock rule report it.
	return stockDotVJP(node, []*graph.Node{v}, shapes.Shape{})
}

// nodeParams returns the struct holding a node's static parameters. GoMLX keeps them in the unexported
// field "inputs" of graph.Node (e.g. *nodeInputsDotGeneral); reflection may read, though not set,
// unexported fields. ok is false if the layout is not the expected one (a different GoMLX version).
func nodeParams(node *graph.Node) (params reflect.Value, ok bool) {
	nv := reflect.ValueOf(node)
	if nv.Kind() != reflect.Pointer || nv.IsNil() {
		return
	}
	in := nv.Elem().FieldByName("inputs")
	if !in.IsValid() || in.Kind() != reflect.Interface || in.IsNil() {
		return
	}
	in = in.Elem()
	if in.Kind() == reflect.Pointer {
		in = in.Elem()
	}
	if in.Kind() != reflect.Struct {
		return
	}
	return in, true
}

// intsField reads an []int field of a node's parameters.
func intsField(params reflect.Value, name string) ([]int, bool) {
	f := params.FieldByName(name)
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Int {
		return nil, false
	}
	out := make([]int, f.Len())
	for i := range out {
		out[i] = int(f.Index(i).Int())
	}
	return out, true
}

// dotGeneralAxes reads the contracting and batch axes of a DotGeneral node.
func dotGeneralAxes(node *graph.Node) (lhsContracting, lhsBatch, rhsContracting, rhsBatch []int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	params, ok := nodeParams(node)
	if !ok {
		return
	}
	var ok1, ok2, ok3, ok4 bool
	lhsContracting, ok1 = intsField(params, "lhsContractingAxes")
	lhsBatch, ok2 = intsField(params, "lhsBatchAxes")
	rhsContracting, ok3 = intsField(params, "rhsContractingAxes")
	rhsBatch, ok4 = intsField(params, "rhsBatchAxes")
	ok = ok1 && ok2 && ok3 && ok4 && len(lhsContracting) == len(rhsContracting) && len(lhsBatch) == len(rhsBatch)
	return
}

// crossAxes lists the axes of a rank-r operand that are neither contracting nor batch, in increasing order.
func crossAxes(rank int, contracting, batch []int) []int {
	out := make([]int, 0, rank)
	for a := range rank {
		if !slices.Contains(contracting, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

// rankIn returns the position of x in the sorted copy of list.
func rankIn(list []int, x int) int {
	r := 0
	for _, y := range list {
		if y < x {
			r++
		}
	}
	return r
}

// transposeTo applies TransposeAllAxes(x, perm) unless perm is the identity.
func transposeTo(x *graph.Node, perm []int) *graph.Node {
	for i, p := range perm {
		if i != p {
			return graph.TransposeAllAxes(x, perm...)
		}
	}
	return x
}

// dotGeneralVJP is the two-matmul rule for DotGeneral (see the package comment above). With lhs axes
// split into batch Lb, contracting Lc and cross Lx (and likewise Rb, Rc, Rx for rhs), the output is laid
// out [b..., lx..., rx...] and
//
//	dLHS = DotGeneral(v, contracting rx, batch b;  rhs, contracting Rx, batch Rb) -> [b, lx, Rc (rhs order)]
//	dRHS = DotGeneral(lhs, contracting Lx, batch Lb;  v, contracting lx, batch b) -> [b, Lc (lhs order), rx]
//
// each then transposed back to its operand's axis order.
func dotGeneralVJP(node, v *graph.Node) []*graph.Node {
	lc, lb, rc, rb, ok := dotGeneralAxes(node)
	if !ok {
		return stockDotGeneralVJP(node, []*graph.Node{v}, shapes.Shape{})
	}
	inputs := node.Inputs()
	lhs, rhs := inputs[0], inputs[1]
	lx := crossAxes(lhs.Rank(), lc, lb)
	rx := crossAxes(rhs.Rank(), rc, rb)
	nb, nlx, nrx, nc := len(lb), len(lx), len(rx), len(lc)

	vBatch := iotaFrom(0, nb)
	vLhsCross := iotaFrom(nb, nlx)
	vRhsCross := iotaFrom(nb+nlx, nrx)

	// Gradient with respect to lhs.
	dLhs := graph.DotGeneral(v, vRhsCross, vBatch, rhs, rx, rb)
	perm := make([]int, lhs.Rank())
	for i, a := range lb {
		perm[a] = i
	}
	for j, a := range lx {
		perm[a] = nb + j
	}
	for m, a := range lc {
		perm[a] = nb + nlx + rankIn(rc, rc[m])
	}
	dLhs = transposeTo(dLhs, perm)

	// Gradient with respect to rhs.
	dRhs := graph.DotGeneral(lhs, lx, lb, v, vLhsCross, vBatch)
	perm = make([]int, rhs.Rank())
	for i, a := range rb {
		perm[a] = i
	}
	for m, a := range rc {
		perm[a] = nb + rankIn(lc, lc[m])
	}
	for k, a := range rx {
		perm[a] = nb + nc + k
	}
	dRhs = transposeTo(dRhs, perm)
	return []*graph.Node{dLhs, dRhs}
}

func iotaFrom(start, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = start + i
	}
	return out
}
