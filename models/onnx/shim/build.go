package shim

import (
	"fmt"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/nn"
)

// VarName is the GoMLX variable name of an ONNX initializer (scope separators replaced).
func VarName(initializer string) string {
	return strings.ReplaceAll(initializer, context.ScopeSeparator, "|")
}

// isWeight reports whether an initializer becomes a context variable (floating-point tensors) rather
// than a graph constant (integer and boolean tensors: shapes, axes, indices).
func isWeight(t *tensors.Tensor) bool { return t.DType().IsFloat() }

// CreateVariables creates, in ctx's current scope, one frozen (non-trainable) variable per
// floating-point initializer, holding its value: the model's own tensor, not a copy, so a model
// whose variables live in several contexts holds its weights once. Call it once per context
// before Call.
func (g *Model) CreateVariables(ctx *context.Context) {
	ctx = ctx.Checked(false)
	for name, t := range g.inits {
		if isWeight(t) {
			ctx.VariableWithValue(VarName(name), t).SetTrainable(false) // shared, never copied: frozen
		}
	}
}

// Call builds, in gr, the graph's tensors named outputs (any tensor of the graph, not only its
// declared outputs) from inputs, a map from graph input names to nodes. The weights are read from ctx's
// current scope (see CreateVariables). Only the nodes the outputs depend on are converted.
//
// Under nn.WithLoRA, every Conv (groups 1), Gemm and MatMul whose weight is an initializer gets a
// low-rank adapter (nn.Adapter), its factors in ctx's scope under the weight's variable name; with
// OutputOnly, the layer that produces each requested output (through reshapes, transposes and a
// bias addition) is replaced by its LoRA branch alone, so those outputs are exactly zero until the
// adapters train. Call panics (GoMLX style) on a graph it cannot build (models/onnx.Load builds
// each graph once to turn such failures into errors).
func (g *Model) Call(ctx *context.Context, gr *Graph, inputs map[string]*Node, outputs ...string) []*Node {
	res, _ := g.CallStats(ctx, gr, inputs, outputs...)
	return res
}

// Activations are the bytes of the tensors a converted graph computes (constants and weights
// excluded). Total is all of them: what a training step keeps for its backward pass. Peak is the
// most alive at once when the nodes run in order and each tensor is freed after its last reader
// (the requested outputs are kept to the end): what a forward pass holds, up to the temporaries
// inside one node.
type Activations struct {
	Total, Peak int64
}

// CallStats is Call, also returning the sizes of the tensors the converted ONNX nodes compute.
func (g *Model) CallStats(ctx *context.Context, gr *Graph, inputs map[string]*Node, outputs ...string) ([]*Node, Activations) {
	b := &builder{g: g, ctx: ctx, gr: gr, vals: map[string]*Node{}, consts: map[*Node]*tensors.Tensor{}, pendingOut: map[string]bool{}, splats: map[string]splat{}, adapter: nn.AdapterOf(ctx)}
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
		b.pathSteps = map[*node]pathStep{}
		for _, o := range outputs {
			layer, steps, err := g.outputPath(o)
			if err != nil {
				panic(err)
			}
			b.outputOnly[layer] = true
			for n, st := range steps {
				b.pathSteps[n] = st
			}
		}
	}
	need := g.dependencies(outputs)
	for _, n := range g.nodes {
		if need[n] {
			b.convert(n)
		}
	}
	b.flush()
	res := make([]*Node, len(outputs))
	for i, o := range outputs {
		res[i] = b.value(o)
	}
	return res, Activations{Total: b.activationBytes(), Peak: b.peakBytes(need, outputs)}
}

// peakBytes is Activations.Peak: the converted nodes run in topological order, each output counted
// from its node on and freed after its last reader (or at once if nothing reads it and it is not
// requested).
func (b *builder) peakBytes(need map[*node]bool, outputs []string) int64 {
	size := func(name string) int64 {
		v, ok := b.vals[name]
		if !ok || v == nil || b.g.producer[name] == nil || b.constTensor(v) != nil {
			return 0
		}
		return int64(v.Shape().Memory())
	}
	var order []*node
	for _, n := range b.g.nodes {
		if need[n] {
			order = append(order, n)
		}
	}
	last := map[string]int{}
	for i, n := range order {
		for _, in := range n.in {
			last[in] = i
		}
	}
	for _, o := range outputs {
		last[o] = len(order)
	}
	var live, peak int64
	alive := map[string]int64{}
	for i, n := range order {
		for _, o := range n.out {
			if _, dup := alive[o]; o != "" && !dup {
				alive[o] = size(o)
				live += alive[o]
			}
		}
		peak = max(peak, live)
		for _, names := range [][]string{n.in, n.out} {
			for _, name := range names {
				sz, ok := alive[name]
				if !ok || sz < 0 {
					continue
				}
				if end, read := last[name]; !read || end <= i {
					live -= sz
					alive[name] = -1 // freed
				}
			}
		}
	}
	return peak
}

// activationBytes sums the sizes of the non-constant values the converted nodes produced.
func (b *builder) activationBytes() int64 {
	var sum int64
	for name, v := range b.vals {
		if b.g.producer[name] != nil && b.constTensor(v) == nil {
			sum += int64(v.Shape().Memory())
		}
	}
	return sum
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

// CheckOutputLayer returns an error unless the LoRA output-only mode can be used for output (see
// outputPath).
func (g *Model) CheckOutputLayer(output string) error {
	_, _, err := g.outputPath(output)
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
	gr         *Graph // the graph being built
	cur        *Graph // the graph the current op is built in (gr, or a constant-folding graph)
	vals       map[string]*Node
	adapter    nn.Adapter
	outputOnly map[*node]bool
	pathSteps  map[*node]pathStep        // output-only mode: additions on the output path (lora.go)
	consts     map[*Node]*tensors.Tensor // values of the constants we made (GoMLX keeps only small ones)
	pending    []*node                   // delegated nodes not converted yet (see flush)
	pendingOut map[string]bool           // their outputs
	splats     map[string]splat          // tensors held as one repeated value (splat.go)
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
	if s, ok := b.splats[name]; ok {
		v := materializeSplat(b.gr, s)
		b.vals[name] = v
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
		v = b.mkConst(b.gr, t)
	}
	b.vals[name] = v
	return v
}

// convert converts node n. Ops delegated to onnx-gomlx are queued and converted in batches (one
// onnx-gomlx call per batch, see flush); our own ops are converted at once, folded to constants
// when all their inputs are constants.
func (b *builder) convert(n *node) {
	if b.bySplat(n) || b.convertPathStep(n) {
		return
	}
	_, isOurs := ours[n.op]
	if !isOurs {
		b.pending = append(b.pending, n)
		for _, o := range n.out {
			if o != "" {
				b.pendingOut[o] = true
			}
		}
		return
	}
	for _, name := range n.in {
		if b.pendingOut[name] {
			b.flush()
			break
		}
	}
	in := make([]*Node, len(n.in))
	allConst := true
	for i, name := range n.in {
		in[i] = b.value(name)
		if in[i] != nil && b.constTensor(in[i]) == nil {
			allConst = false
		}
	}
	var outs []*Node
	if allConst && len(n.in) > 0 && !randomOps[n.op] {
		outs = b.fold(n, in)
	} else {
		outs = b.apply(b.gr, n, in)
	}
	b.set(n, outs)
}

func (b *builder) set(n *node, outs []*Node) {
	for i, o := range n.out {
		if o == "" || i >= len(outs) || outs[i] == nil {
			continue
		}
		b.vals[o] = outs[i]
	}
}

// flush converts the queued delegated nodes: first those computable from constants alone, in a
// throwaway graph whose results become constants here (so shape computations stay static), then
// the others in the graph being built.
func (b *builder) flush() {
	if len(b.pending) == 0 {
		return
	}
	pending := b.pending
	b.pending, b.pendingOut = nil, map[string]bool{}
	constOut := map[string]bool{}
	var consts, rest []*node
	for _, n := range pending {
		isConst := !randomOps[n.op]
		for _, name := range n.in {
			if name == "" || constOut[name] {
				continue
			}
			if v := b.peek(name); v == nil || b.constTensor(v) == nil {
				isConst = false
			}
		}
		if isConst {
			consts = append(consts, n)
			for _, o := range n.out {
				constOut[o] = true
			}
		} else {
			rest = append(rest, n)
		}
	}
	if len(consts) > 0 {
		ext := b.externalInputs(consts)
		vals := make(map[string]*tensors.Tensor, len(ext))
		for _, name := range ext {
			vals[name] = b.constTensor(b.value(name))
		}
		outNames := outputsOf(consts)
		res := MustExecOnceN(b.gr.Backend(), func(g2 *Graph) []*Node {
			in := map[string]*Node{}
			for name, t := range vals {
				in[name] = Const(g2, t)
			}
			return b.g.delegate(g2, in, consts)
		})
		for i, o := range outNames {
			b.vals[o] = b.mkConst(b.gr, local(res[i]))
		}
	}
	if len(rest) > 0 {
		in := map[string]*Node{}
		for _, name := range b.externalInputs(rest) {
			in[name] = b.value(name)
		}
		outNames := outputsOf(rest)
		for i, v := range b.g.delegate(b.gr, in, rest) {
			b.vals[outNames[i]] = v
		}
	}
}

// peek returns the value of a tensor if it is already available (converted or an initializer).
func (b *builder) peek(name string) *Node {
	if v, ok := b.vals[name]; ok {
		return v
	}
	if _, ok := b.g.inits[name]; ok {
		return b.value(name)
	}
	if _, ok := b.splats[name]; ok {
		return b.value(name)
	}
	return nil
}

// externalInputs lists the tensors the nodes read that none of them produces.
func (b *builder) externalInputs(nodes []*node) []string {
	produced := map[string]bool{}
	for _, n := range nodes {
		for _, o := range n.out {
			produced[o] = true
		}
	}
	seen := map[string]bool{}
	var ext []string
	for _, n := range nodes {
		for _, name := range n.in {
			if name == "" || produced[name] || seen[name] {
				continue
			}
			seen[name] = true
			ext = append(ext, name)
		}
	}
	return ext
}

func outputsOf(nodes []*node) []string {
	var out []string
	for _, n := range nodes {
		for _, o := range n.out {
			if o != "" {
				out = append(out, o)
			}
		}
	}
	return out
}

// randomOps are never folded to constants.
var randomOps = map[string]bool{"RandomNormal": true, "RandomNormalLike": true, "RandomUniform": true,
	"RandomUniformLike": true, "Multinomial": true, "Bernoulli": true, "Dropout": true}

// fold evaluates a node whose inputs are all constants (in a throwaway graph) and returns its
// outputs as constants, so that shape computations (Shape, Gather, Concat, ...) reach ops like
// Reshape as static values.
func (b *builder) fold(n *node, in []*Node) []*Node {
	vals := make([]*tensors.Tensor, len(in))
	for i, x := range in {
		if x != nil {
			vals[i] = b.constTensor(x)
		}
	}
	var present []bool
	res := MustExecOnceN(b.gr.Backend(), func(g2 *Graph) []*Node {
		in2 := make([]*Node, len(vals))
		for i, v := range vals {
			if v != nil {
				in2[i] = b.mkConst(g2, v)
			}
		}
		var outs []*Node
		for _, o := range b.apply(g2, n, in2) {
			present = append(present, o != nil)
			if o != nil {
				outs = append(outs, o)
			}
		}
		return outs
	})
	outs := make([]*Node, len(present))
	k := 0
	for i, p := range present {
		if p {
			outs[i] = b.mkConst(b.gr, local(res[k]))
			k++
		}
	}
	return outs
}

// apply converts one of our own ops in graph gr with the given inputs.
func (b *builder) apply(gr *Graph, n *node, in []*Node) []*Node {
	saved := b.cur
	b.cur = gr
	defer func() { b.cur = saved }()
	return ours[n.op].fn(b, n, in)
}

// delegate converts, with onnx-gomlx, the nodes (in topological order) from inputs (tensor name ->
// node in gr, every tensor the nodes read and none of them produces), and returns the nodes'
// outputs in outputsOf order. Each node goes through onnx-gomlx's per-node conversion (see
// convertNode in delegate.go), not CallGraph, which runs the garbage collector three times per call.
func (g *Model) delegate(gr *Graph, inputs map[string]*Node, nodes []*node) []*Node {
	g.gmMu.Lock()
	defer g.gmMu.Unlock()
	converted := make(map[string]*Node, len(inputs)+len(nodes))
	for name, x := range inputs {
		converted[name] = x
	}
	for _, n := range nodes {
		convertNode(g.gm, nil, gr, n.proto, converted)
	}
	names := outputsOf(nodes)
	out := make([]*Node, len(names))
	for i, name := range names {
		if out[i] = converted[name]; out[i] == nil {
			panic(fmt.Errorf("%s: onnx-gomlx did not produce %q converting %s", g.Path, name, g.producer[name]))
		}
	}
	return out
}

// local returns a host copy of a computed tensor, to be embedded as a constant in another graph
// (the pure-Go backend's boolean results cannot be embedded directly).
func local(t *tensors.Tensor) *tensors.Tensor {
	c, err := t.LocalClone()
	if err != nil {
		panic(err)
	}
	return c
}

// mkConst makes a constant node in gr and remembers its value (GoMLX's Node.ConstantValue is nil
// for all but small constants).
func (b *builder) mkConst(gr *Graph, t *tensors.Tensor) *Node {
	n := Const(gr, t)
	b.consts[n] = t
	return n
}

// constTensor returns the value of a constant node, or nil if n is not a constant we know.
func (b *builder) constTensor(n *Node) *tensors.Tensor {
	if t, ok := b.consts[n]; ok {
		return t
	}
	if n.Type() == NodeTypeConstant {
		return n.ConstantValue()
	}
	return nil
}
