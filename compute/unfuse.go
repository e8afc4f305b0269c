package compute

import (
	"reflect"
	"sync/atomic"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// Fused nodes dropped from gradient graphs.
//
// A fused normalization or softmax node (normfuse.go, softmaxfuse.go) replaces the last op of a chain
// (c / √(var+ε) or c · 1/√(var+ε), then the affine stages; e / sum) and recomputes the chain's
// statistics from x itself. It pays only when the chain's intermediates are then unused: GoMLX's
// gradient of the Div or Mul reads its operands (c and the root; e and the sum), so in a graph that
// also computes gradients the whole chain runs anyway and the fused nodes, two passes each (and a
// stage's predecessor stays live as the next stage's gradient operand), come on top of it.
//
// So each fused op is built beside the plain op it stands for (the Div, Mul, Add or Sub of the same
// operands, which nothing reads at first), and when the graph is compiled the builder checks, per
// chain, whether the ops the gradient would read are reachable from the outputs. If they are, every
// fused op of that chain is replaced by its plain op in the inputs of the nodes the outputs reach (and
// in the outputs), so that the fused nodes are left unused, and SimpleGo skips them. A forward-only
// graph keeps them.

// fusedChain is one normalization or softmax chain that was built as fused nodes.
type fusedChain struct {
	reads []*simplego.Node    // the chain's ops a gradient reads: the Div or Mul's operands
	subs  [][2]*simplego.Node // each fused op returned to the caller, and the plain op with its value
	norm  bool                // a normalization (else a softmax)
	bias  bool                // a convolution's folded bias (see convbias.go)
	att   bool                // a fused attention (see attention.go)
}

// statNormUnfused and statSoftmaxUnfused count fused ops replaced by their plain ops at compile time
// (for tests).
var statNormUnfused, statSoftmaxUnfused atomic.Int64

// nodeInputsType is the type of simplego.Node's inputs field, checked before it is written.
var nodeInputsType = reflect.TypeOf([]*simplego.Node(nil))

// nodeInputs returns a SimpleGo node's inputs (its own slice: writing an entry rewires the node), or
// ok=false if the field is not as expected.
func nodeInputs(n *simplego.Node) (ins []*simplego.Node, ok bool) {
	f := reflect.ValueOf(n).Elem().FieldByName("inputs")
	if !f.IsValid() || f.Type() != nodeInputsType || !f.CanAddr() {
		return nil, false
	}
	return *(*[]*simplego.Node)(unsafe.Pointer(f.UnsafeAddr())), true
}

// newChain records a fused chain whose gradient would read reads.
func (b *patchedBuilder) newChain(norm bool, reads ...backends.Op) *fusedChain {
	c := &fusedChain{norm: norm}
	for _, r := range reads {
		if n, ok := r.(*simplego.Node); ok {
			c.reads = append(c.reads, n)
		}
	}
	b.chains = append(b.chains, c)
	return c
}

// addSub records that the fused op fused has the value of the plain op plain.
func (c *fusedChain) addSub(fused, plain backends.Op) {
	fn, ok1 := fused.(*simplego.Node)
	pn, ok2 := plain.(*simplego.Node)
	if ok1 && ok2 {
		c.subs = append(c.subs, [2]*simplego.Node{fn, pn})
	}
}

// Compile implements backends.Builder: the fused chains whose intermediates the graph reads are
// replaced by their plain ops (see above), then SimpleGo compiles.
func (b *patchedBuilder) Compile(outputs []backends.Op, shardings []*backends.ShardingSpec) (backends.Executable, error) {
	if len(b.chains) > 0 {
		outputs = b.unfuseRead(outputs)
	}
	outputs, err := b.distinctOutputs(outputs)
	if err != nil {
		return nil, err
	}
	return b.Builder.Compile(outputs, shardings)
}

// reachable visits every node the roots reach through their inputs, once each, calling visit first
// (visit may rewrite the node's inputs, which are then followed). It reports false if a node's inputs
// could not be read.
func reachable(roots []*simplego.Node, visit func(n *simplego.Node, ins []*simplego.Node)) bool {
	seen := make(map[*simplego.Node]bool, 1024)
	stack := make([]*simplego.Node, 0, 64)
	for _, r := range roots {
		if !seen[r] {
			seen[r] = true
			stack = append(stack, r)
		}
	}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ins, ok := nodeInputs(n)
		if !ok {
			return false
		}
		visit(n, ins)
		for _, in := range ins {
			if in != nil && !seen[in] {
				seen[in] = true
				stack = append(stack, in)
			}
		}
	}
	return true
}

// unfuseRead returns outputs with the fused ops of every chain whose intermediates the outputs reach
// replaced by their plain ops, and rewires the reached nodes likewise.
func (b *patchedBuilder) unfuseRead(outputs []backends.Op) []backends.Op {
	roots := make([]*simplego.Node, 0, len(outputs))
	for _, o := range outputs {
		n, ok := o.(*simplego.Node)
		if !ok {
			return outputs // SimpleGo's Compile reports it
		}
		roots = append(roots, n)
	}
	live := map[*simplego.Node]bool{}
	if !reachable(roots, func(n *simplego.Node, _ []*simplego.Node) { live[n] = true }) {
		return outputs
	}
	repl := map[*simplego.Node]*simplego.Node{}
	for _, c := range b.chains {
		read := false
		for _, r := range c.reads {
			read = read || live[r]
		}
		if !read {
			if c.bias && len(c.subs) > 0 && live[c.subs[0][0]] {
				statConvBiasFolded.Add(1)
			}
			continue
		}
		for _, s := range c.subs {
			repl[s[0]] = s[1]
			if c.bias {
				statConvBiasUnfused.Add(1)
			} else if c.att {
				statAttnUnfused.Add(1)
			} else if c.norm {
				statNormUnfused.Add(1)
			} else {
				statSoftmaxUnfused.Add(1)
			}
		}
	}
	if len(repl) == 0 {
		return outputs
	}
	out := make([]backends.Op, len(outputs))
	for i, r := range roots {
		if p, ok := repl[r]; ok {
			roots[i] = p
		}
		out[i] = roots[i]
	}
	// A plain op's operands may be fused ops themselves (a stage of a fused predecessor): they are
	// rewired when the plain op is reached.
	reachable(roots, func(_ *simplego.Node, ins []*simplego.Node) {
		for i, in := range ins {
			if p, ok := repl[in]; ok {
				ins[i] = p
			}
		}
	})
	return out
}
