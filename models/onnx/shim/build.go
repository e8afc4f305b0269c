package shim

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	gonnx "github.com/gomlx/onnx-gomlx/onnx"
	"github.com/hypernoise/hypernoise/nn"
)

// VarName is the GoMLX variable name of an ONNX initializer (scope separators replaced).
func VarName(initializer string) string {
	return strings.ReplaceAll(initializer, context.ScopeSeparator, "|")
}

// IsWeight reports whether an initializer becomes a context variable (floating-point tensors) rather
// than a graph constant (integer and boolean tensors: shapes, axes, indices).
func isWeight(t *tensors.Tensor) bool { return t.DType().IsFloat() }

// CreateVariables creates, in ctx's current scope, one frozen (non-trainable) variable per
// floating-point initializer, holding its value. Call it once per context before Call.
func (g *Model) CreateVariables(ctx *context.Context) {
	ctx = ctx.Checked(false)
	for name, t := range g.inits {
		if isWeight(t) {
			c, err := t.LocalClone()
			if err != nil {
				panic(err)
			}
			ctx.VariableWithValue(VarName(name), c).SetTrainable(false)
		}
	}
}

// Call builds the graph's tensors named outputs (any tensor of the graph, not only its declared
// outputs) from inputs, a map from graph input names to nodes. The weights are read from ctx's
// current scope (see CreateVariables). Only the nodes the outputs depend on are converted.
//
// Under nn.WithLoRA, every Conv (groups 1), Gemm and MatMul whose weight is an initializer gets a
// low-rank adapter (nn.Adapter), its factors in ctx's scope under the weight's variable name; with
// OutputOnly, the layer that produces each requested output (through reshapes, transposes and a
// bias addition) is replaced by its LoRA branch alone, so those outputs are exactly zero until the
// adapters train. Call panics (GoMLX style) on a graph it cannot build; see Check.
func (g *Model) Call(ctx *context.Context, inputs map[string]*Node, outputs ...string) []*Node {
	if len(inputs) == 0 {
		panic(fmt.Errorf("%s: Call needs at least one input", g.Path))
	}
	var gr *Graph
	for _, n := range inputs {
		gr = n.Graph()
		break
	}
	b := &builder{g: g, ctx: ctx, gr: gr, vals: map[string]*Node{}, adapter: nn.AdapterOf(ctx)}
	for name, n := range inputs {
		v, ok := g.Input(name)
		if !ok {
			panic(fmt.Errorf("%s: %q is not an input of the graph (inputs: %s)", g.Path, name, g.inputNames()))
		}
		if n.DType() != v.DType || n.Rank() != len(v.Dims) {
			panic(fmt.Errorf("%s: input %q must be %s of rank %d, got %s", g.Path, name, v.DType, len(v.Dims), n.Shape()))
		}
		for i, d := range v.Dims {
			if d > 0 && n.Shape().Dim(i) != d {
				panic(fmt.Errorf("%s: input %q has dimensions %v, got %s", g.Path, name, v.Dims, n.Shape()))
			}
		}
		b.vals[name] = n
	}
	for _, o := range outputs {
		if !g.known[o] {
			panic(fmt.Errorf("%s: no tensor named %q in the graph", g.Path, o))
		}
	}
	if b.adapter.Rank > 0 && b.adapter.OutputOnly {
		b.outputOnly = map[*node]bool{}
		b.skipBias = map[*node]bool{}
		for _, o := range outputs {
			layer, biases, err := g.outputLayer(o)
			if err != nil {
				panic(err)
			}
			b.outputOnly[layer] = true
			for _, n := range biases {
				b.skipBias[n] = true
			}
		}
	}
	need := g.dependencies(outputs)
	for _, n := range g.nodes {
		if need[n] {
			b.convert(n)
		}
	}
	res := make([]*Node, len(outputs))
	for i, o := range outputs {
		res[i] = b.value(o)
	}
	return res
}


func (g *Model) inputNames() string {
	var s []string
	for _, v := range g.Inputs {
		s = append(s, v.Name)
	}
	return strings.Join(s, ", ")
}

// dependencies returns the nodes the named tensors depend on.
func (g *Model) dependencies(outputs []string) map[*node]bool {
	need := map[*node]bool{}
	var visit func(name string)
	visit = func(name string) {
		n := g.producer[name]
		if n == nil || need[n] {
			return
		}
		need[n] = true
		for _, in := range n.in {
			if in != "" {
				visit(in)
			}
		}
	}
	for _, o := range outputs {
		visit(o)
	}
	return need
}

// passThrough are ops that only move values around: the output layer is looked for through them.
var passThrough = map[string]bool{"Identity": true, "Reshape": true, "Transpose": true, "Flatten": true,
	"Squeeze": true, "Unsqueeze": true}

// outputLayer finds the Conv, Gemm or MatMul (with an initializer weight) that produces output,
// possibly through pass-through ops and additions of an initializer (a bias, returned in biases).
func (g *Model) outputLayer(output string) (layer *node, biases []*node, err error) {
	name := output
	for range 64 {
		n := g.producer[name]
		if n == nil {
			break
		}
		switch {
		case g.adaptable(n):
			return n, biases, nil
		case passThrough[n.op]:
			name = n.in[0]
			continue
		case n.op == "Add" && len(n.in) == 2:
			if g.isWeightInit(n.in[1]) {
				biases = append(biases, n)
				name = n.in[0]
				continue
			}
			if g.isWeightInit(n.in[0]) {
				biases = append(biases, n)
				name = n.in[1]
				continue
			}
		}
		return nil, nil, fmt.Errorf("%s: the LoRA hypernetwork needs %q to be the output of a Conv, Gemm or MatMul layer with stored weights (through reshapes and a bias), but it comes from %s; use the MLP modulator for this model", g.Path, output, n)
	}
	return nil, nil, fmt.Errorf("%s: %q is not produced by a Conv, Gemm or MatMul layer with stored weights; the LoRA hypernetwork cannot start at f = 0 on it; use the MLP modulator for this model", g.Path, output)
}

// CheckOutputLayer returns an error unless the LoRA output-only mode can be used for output.
func (g *Model) CheckOutputLayer(output string) error {
	_, _, err := g.outputLayer(output)
	return err
}

func (g *Model) isWeightInit(name string) bool {
	t, ok := g.inits[name]
	return ok && isWeight(t)
}

// adaptable reports whether n gets a LoRA adapter: Conv with one group, Gemm, or MatMul whose
// weight (second input) is a floating-point initializer (a rank-2 one for MatMul).
func (g *Model) adaptable(n *node) bool {
	if len(n.in) < 2 || !g.isWeightInit(n.in[1]) {
		return false
	}
	switch n.op {
	case "Conv":
		return n.intAttr("group", 1) == 1
	case "Gemm":
		return true
	case "MatMul":
		return g.inits[n.in[1]].Rank() == 2
	}
	return false
}

// builder converts the nodes of one Call.
type builder struct {
	g          *Model
	ctx        *context.Context
	gr         *Graph
	vals       map[string]*Node
	adapter    nn.Adapter
	outputOnly map[*node]bool
	skipBias   map[*node]bool
}

// value returns the node for a tensor name: a converted value, an initializer (variable or
// constant), or nil for "" (an omitted optional input).
func (b *builder) value(name string) *Node {
	if name == "" {
		return nil
	}
	if v, ok := b.vals[name]; ok {
		return v
	}
	t, ok := b.g.inits[name]
	if !ok {
		panic(fmt.Errorf("%s: tensor %q used before it is computed", b.g.Path, name))
	}
	var v *Node
	if isWeight(t) {
		base := b.adapter.Base
		if base == nil {
			base = b.ctx
		}
		vr := base.GetVariable(VarName(name))
		if vr == nil {
			panic(fmt.Errorf("%s: weight %q is not in context scope %q (call CreateVariables first)", b.g.Path, name, base.Scope()))
		}
		v = vr.ValueGraph(b.gr)
	} else {
		v = Const(b.gr, t)
	}
	b.vals[name] = v
	return v
}

// convert converts node n, folding it to constants when all its inputs are constants.
func (b *builder) convert(n *node) {
	in := make([]*Node, len(n.in))
	allConst := true
	for i, name := range n.in {
		in[i] = b.value(name)
		if in[i] != nil && in[i].Type() != NodeTypeConstant {
			allConst = false
		}
	}
	outs := b.apply(b.gr, n, in)
	if allConst && !b.isConst(outs) {
		outs = b.fold(n, in)
	}
	for i, o := range n.out {
		if o == "" || i >= len(outs) || outs[i] == nil {
			continue
		}
		b.vals[o] = outs[i]
	}
}

func (b *builder) isConst(outs []*Node) bool {
	for _, o := range outs {
		if o != nil && o.Type() != NodeTypeConstant {
			return false
		}
	}
	return true
}

// fold evaluates a node whose inputs are all constants and returns its outputs as constants, so
// that shape computations (Shape, Gather, Concat, ...) reach ops like Reshape as static values.
func (b *builder) fold(n *node, in []*Node) []*Node {
	vals := make([]*tensors.Tensor, len(in))
	for i, x := range in {
		if x != nil {
			vals[i] = x.ConstantValue()
		}
	}
	res := MustExecOnceN(b.gr.Backend(), func(g2 *Graph) []*Node {
		in2 := make([]*Node, len(vals))
		for i, v := range vals {
			if v != nil {
				in2[i] = Const(g2, v)
			}
		}
		var outs []*Node
		for _, o := range b.apply(g2, n, in2) {
			if o != nil {
				outs = append(outs, o)
			}
		}
		return outs
	})
	outs := b.apply(b.gr, n, in) // for the positions of nil outputs
	k := 0
	for i := range outs {
		if outs[i] != nil {
			outs[i] = Const(b.gr, res[k])
			k++
		}
	}
	return outs
}

// apply converts n in graph gr with the given inputs: our own op if we have one, else onnx-gomlx's.
func (b *builder) apply(gr *Graph, n *node, in []*Node) []*Node {
	if o, ok := ours[n.op]; ok {
		return o.fn(b, n, in)
	}
	return b.g.delegate(gr, n, in)
}

// delegate converts one node with onnx-gomlx: the node's inputs are presented to it as the
// graph's inputs, so that it converts exactly this node.
func (g *Model) delegate(gr *Graph, n *node, in []*Node) []*Node {
	g.gmMu.Lock()
	defer g.gmMu.Unlock()
	names0, shapes0 := g.gm.InputsNames, g.gm.InputsShapes
	defer func() { g.gm.InputsNames, g.gm.InputsShapes = names0, shapes0 }()
	inputs := map[string]*Node{}
	var names []string
	var dshapes []gonnx.DynamicShape
	for i, name := range n.in {
		if name == "" || inputs[name] != nil {
			continue
		}
		inputs[name] = in[i]
		names = append(names, name)
		dims := in[i].Shape().Dimensions
		ds := gonnx.DynamicShape{DType: in[i].DType(), Dimensions: append([]int(nil), dims...)}
		for _, d := range dims {
			ds.Names = append(ds.Names, strconv.Itoa(d))
		}
		dshapes = append(dshapes, ds)
	}
	g.gm.InputsNames, g.gm.InputsShapes = names, dshapes
	var outNames []string
	for _, o := range n.out {
		if o != "" {
			outNames = append(outNames, o)
		}
	}
	res := g.gm.CallGraph(g.dummy, gr, inputs, outNames...)
	outs := make([]*Node, len(n.out))
	k := 0
	for i, o := range n.out {
		if o != "" {
			outs[i] = res[k]
			k++
		}
	}
	return outs
}

var _ = dtypes.Float32
