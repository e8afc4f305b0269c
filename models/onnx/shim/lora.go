package shim

import (
	"fmt"
	"regexp"

	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// Where the LoRA adapters go, and how the hypernetwork's f_phi is read off a backbone output.
//
// Adapters: every Conv (one group), Gemm and MatMul whose weight is a stored initializer (a rank-2
// one for MatMul): in an exported diffusion UNet or DiT that is the attention projections
// (to_q/to_k/to_v/to_out), the feed-forward layers, the time-embedding MLP and the convolutions.
// SetLoRALayers narrows them to the nodes whose name (PyTorch's module path, e.g.
// "/unet/mid.1/attn1/to_q/MatMul") matches a regular expression; the output layer always keeps its
// adapter, since its LoRA branch is f_phi.
//
// Output-only mode (nn.LoRA.OutputOnly, the paper's residual head): a requested output y is traced
// back to the layer L that produces it, through ops that are linear in L's output: reshapes and
// transposes, multiplication or division by a constant, negation, and additions or subtractions
// of a term that does not come from L: a bias (an initializer or constant) or a residual (an
// operand none of whose producers is a layer with stored weights, such as the noise in a
// scheduler step x0 = (x_T - sqrt(1-abar) eps_hat) / sqrt(abar)). L is replaced by its LoRA branch
// alone and those added terms are dropped, so y = (the linear path applied to) L's LoRA branch:
// exactly zero at initialization (B = 0), and f_phi is the LoRA branch carried to the backbone
// output's scale. An addition of two terms that both come from layers is refused (no single
// layer's branch is f_phi then).

// pathStep is how an addition or subtraction on the path from the output layer to a requested
// output is built in output-only mode: it returns operand keep alone, negated when it is the
// subtrahend.
type pathStep struct {
	keep   int
	negate bool
}

// SetLoRALayers restricts the LoRA adapters to the nodes whose name matches pattern (a Go regular
// expression, unanchored); "" restores every adaptable layer. It returns how many adaptable layers
// match, and an error for a bad pattern or one that matches none. Call it before building graphs.
func (g *Model) SetLoRALayers(pattern string) (int, error) {
	if pattern == "" {
		g.loraFilter = nil
		return g.countAdaptable(), nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return 0, fmt.Errorf("LoRA layer filter %q: %v", pattern, err)
	}
	count := 0
	for _, n := range g.nodes {
		if g.adaptable(n) && re.MatchString(n.name) {
			count++
		}
	}
	if count == 0 {
		return 0, fmt.Errorf("LoRA layer filter %q matches none of the %d adaptable layers of %s (e.g. %s)", pattern, g.countAdaptable(), g.Path, g.adaptableExample())
	}
	g.loraFilter = re
	return count, nil
}

func (g *Model) countAdaptable() int {
	count := 0
	for _, n := range g.nodes {
		if g.adaptable(n) {
			count++
		}
	}
	return count
}

func (g *Model) adaptableExample() string {
	for _, n := range g.nodes {
		if g.adaptable(n) {
			return fmt.Sprintf("%q", n.name)
		}
	}
	return "none"
}

// AdaptableLayers lists the names of the nodes that get a LoRA adapter (after SetLoRALayers).
func (g *Model) AdaptableLayers() []string {
	var names []string
	for _, n := range g.nodes {
		if g.takesAdapter(n, false) {
			names = append(names, n.name)
		}
	}
	return names
}

// takesAdapter reports whether node n gets a LoRA adapter: an adaptable layer that the layer filter
// (SetLoRALayers) matches, or the output layer of output-only mode, which always keeps its adapter
// (its branch is f).
func (g *Model) takesAdapter(n *node, output bool) bool {
	return g.adaptable(n) && (output || g.loraFilter == nil || g.loraFilter.MatchString(n.name))
}

// isConstName reports whether a tensor is a constant: an initializer or a Constant node's output.
func (g *Model) isConstName(name string) bool {
	if _, ok := g.inits[name]; ok {
		return true
	}
	p := g.producer[name]
	return p != nil && p.op == "Constant"
}

// fromLayer reports whether a tensor depends on a layer with stored weights (memo caches answers).
func (g *Model) fromLayer(name string, memo map[string]bool) bool {
	if v, ok := memo[name]; ok {
		return v
	}
	memo[name] = false // guards cycles (there are none in a sorted graph)
	n := g.producer[name]
	res := false
	if n != nil {
		res = g.adaptable(n)
		for _, in := range n.in {
			if !res && in != "" {
				res = g.fromLayer(in, memo)
			}
		}
	}
	memo[name] = res
	return res
}

// outputPath traces output back to the layer whose LoRA branch becomes it in output-only mode,
// returning the additions and subtractions on the way and which operand each keeps.
func (g *Model) outputPath(output string) (layer *node, steps map[*node]pathStep, err error) {
	steps = map[*node]pathStep{}
	memo := map[string]bool{}
	name := output
	for range 256 {
		n := g.producer[name]
		if n == nil {
			break
		}
		switch {
		case g.adaptable(n):
			return n, steps, nil
		case passThrough[n.op] || n.op == "Neg":
			name = n.in[0]
			continue
		case n.op == "Mul" && len(n.in) == 2 && (g.isConstName(n.in[0]) || g.isConstName(n.in[1])):
			name = n.in[0]
			if g.isConstName(n.in[0]) {
				name = n.in[1]
			}
			continue
		case n.op == "Div" && len(n.in) == 2 && g.isConstName(n.in[1]):
			name = n.in[0]
			continue
		case (n.op == "Add" || n.op == "Sub") && len(n.in) == 2:
			keep := -1
			switch a, b := g.isConstName(n.in[0]) || !g.fromLayer(n.in[0], memo), g.isConstName(n.in[1]) || !g.fromLayer(n.in[1], memo); {
			case b && !a:
				keep = 0
			case a && !b:
				keep = 1
			}
			if keep >= 0 {
				steps[n] = pathStep{keep: keep, negate: n.op == "Sub" && keep == 1}
				name = n.in[keep]
				continue
			}
		}
		return nil, nil, fmt.Errorf("%s: the LoRA hypernetwork needs %q to come from one Conv, Gemm or MatMul layer with stored weights, through reshapes, constant scalings and added biases or residuals (such as the noise), but the path reaches %s; use the MLP modulator for this model", g.Path, output, n)
	}
	return nil, nil, fmt.Errorf("%s: %q is not produced by a Conv, Gemm or MatMul layer with stored weights; the LoRA hypernetwork cannot start at f = 0 on it; use the MLP modulator for this model", g.Path, output)
}

// convertPathStep builds an addition on the output path in output-only mode: the kept operand
// alone (negated for a subtrahend). It reports false when n is not such a step.
func (b *builder) convertPathStep(n *node) bool {
	s, ok := b.pathSteps[n]
	if !ok {
		return false
	}
	if b.pendingOut[n.in[0]] || b.pendingOut[n.in[1]] {
		b.flush()
	}
	v := b.value(n.in[s.keep])
	if s.negate {
		v = Neg(v)
	}
	if o := b.value(n.in[1-s.keep]); o != nil { // the dropped term's broadcasting still shapes the sum
		v, _ = bcast(v, o)
	}
	b.set(n, []*Node{v})
	return true
}
