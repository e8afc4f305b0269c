package shim

import (
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/internal/onnxpb"
	"github.com/x448/float16"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// LoRAFactors are one weight's trained adapter factors in nn.Adapter.Factors' layout: A [k..., C, r]
// for a Conv weight W [O, C, k...], A [K, r] for a Gemm or MatMul weight (K the contracted axis),
// and B [r, out].
type LoRAFactors struct{ A, B *tensors.Tensor }

// LoRAExport says which residual ExportLoRA writes.
type LoRAExport struct {
	Output  string // the noise-shaped backbone tensor f_phi is read at (output-only mode)
	Rank    int
	Alpha   float64                // the adapters add (Alpha/Rank) A B
	Factors map[string]LoRAFactors // by weight initializer name
	// Rename maps graph inputs to the tensor names the copied nodes read them from instead (the
	// caller defines those, e.g. as casts of its own inputs).
	Rename map[string]string
}

// ExportLoRA returns, as ONNX nodes and initializers, the graph of the LoRA hypernetwork's residual
// f_phi, the tensor e.Output as Call builds it in output-only mode: every node e.Output depends on,
// copied as stored, except that
//   - an adapted layer's weight W becomes W + (Alpha/Rank) A B (the adapter folded in: exact, since
//     the adapter is a linear map of the same input with the same strides, pads and dilations);
//   - the output layer's weight becomes (Alpha/Rank) A B alone and its bias is dropped;
//   - each addition or subtraction on the path from the output layer to e.Output keeps only the
//     term that comes from that layer, broadcast to the sum's shape (Expand) and negated for a
//     subtrahend.
//
// It also returns the graph inputs those nodes read (by their names in the graph; the nodes read
// them as e.Rename says). Weights keep their stored element type.
func (g *Model) ExportLoRA(e LoRAExport) (nodes []onnxpb.Node, inits []onnxpb.Tensor, inputs []Value, err error) {
	if e.Rank <= 0 || !(e.Alpha > 0) {
		return nil, nil, nil, fmt.Errorf("LoRA export: rank %d and alpha %g must be positive", e.Rank, e.Alpha)
	}
	layer, steps, err := g.outputPath(e.Output)
	if err != nil {
		return nil, nil, nil, err
	}
	x := &exporter{g: g, e: e, emitted: map[string]bool{}, isInput: map[string]Value{}}
	for _, v := range g.Inputs {
		x.isInput[v.Name] = v
	}
	raw := map[unsafe.Pointer]proto.Message{}
	for _, np := range g.gm.Proto.Graph.Node {
		raw[unsafe.Pointer(np)] = np
	}
	need := g.dependencies([]string{e.Output})
	for _, n := range g.nodes {
		if !need[n] {
			continue
		}
		for _, a := range n.attrs {
			if a.typ == 5 {
				return nil, nil, nil, fmt.Errorf("LoRA export: node %s holds a subgraph (control flow), which export does not copy", n)
			}
		}
		if s, ok := steps[n]; ok {
			if err := x.pathStep(n, s); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		if err := x.copyNode(n, raw[n.proto], n == layer); err != nil {
			return nil, nil, nil, err
		}
	}
	return x.nodes, x.inits, x.inputs, nil
}

// exporter accumulates ExportLoRA's nodes, initializers and graph inputs.
type exporter struct {
	g       *Model
	e       LoRAExport
	nodes   []onnxpb.Node
	inits   []onnxpb.Tensor
	inputs  []Value
	emitted map[string]bool // tensors already defined: initializers written, inputs listed, outputs
	isInput map[string]Value
}

// renamed is in with the graph inputs renamed as e.Rename says.
func (x *exporter) renamed(in []string) []string {
	out := make([]string, len(in))
	for i, name := range in {
		out[i] = name
		if r, ok := x.e.Rename[name]; ok {
			out[i] = r
		}
	}
	return out
}

// read records the tensors a node reads: graph inputs to return, initializers to write (once).
func (x *exporter) read(names ...string) error {
	for _, name := range names {
		if name == "" || x.emitted[name] {
			continue
		}
		x.emitted[name] = true
		if v, ok := x.isInput[name]; ok {
			x.inputs = append(x.inputs, v)
			continue
		}
		if t, ok := x.g.inits[name]; ok {
			et, err := x.g.encodeInit(name, name, t, nil)
			if err != nil {
				return err
			}
			x.inits = append(x.inits, et)
		}
	}
	return nil
}

// pathStep writes an addition on the output path as its kept term broadcast to the sum's shape,
// Expand(kept, Shape(other)), negated for a subtrahend.
func (x *exporter) pathStep(n *node, s pathStep) error {
	if err := x.read(n.in...); err != nil {
		return err
	}
	in := x.renamed(n.in)
	kept, other := in[s.keep], in[1-s.keep]
	shape, out := n.out[0]+"/hn_shape", n.out[0]
	if s.negate {
		out = n.out[0] + "/hn_kept"
	}
	x.nodes = append(x.nodes,
		onnxpb.Node{Op: "Shape", Name: n.name + "/hn_shape", Inputs: []string{other}, Outputs: []string{shape}},
		onnxpb.Node{Op: "Expand", Name: n.name + "/hn_keep", Inputs: []string{kept, shape}, Outputs: []string{out}})
	if s.negate {
		x.nodes = append(x.nodes, onnxpb.Node{Op: "Neg", Name: n.name + "/hn_neg", Inputs: []string{out}, Outputs: []string{n.out[0]}})
	}
	x.emitted[n.out[0]] = true
	return nil
}

// copyNode writes node n as stored (msg), reading an adapted layer's weight from its folded copy
// and, for the output layer, its LoRA term alone without the bias.
func (x *exporter) copyNode(n *node, msg proto.Message, output bool) error {
	if msg == nil {
		return fmt.Errorf("LoRA export: node %s has no stored form", n)
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		return fmt.Errorf("LoRA export: node %s: %v", n, err)
	}
	in := n.in
	if x.g.takesAdapter(n, output) {
		if in, err = x.fold(n, output); err != nil {
			return err
		}
	}
	if err := x.read(in...); err != nil {
		return err
	}
	if r := x.renamed(in); !slices.Equal(r, n.in) {
		b = withInputs(b, r)
	}
	x.nodes = append(x.nodes, onnxpb.Node{Raw: b})
	for _, o := range n.out {
		x.emitted[o] = true
	}
	return nil
}

// fold writes layer n's weight with its adapter folded in, W + (Alpha/Rank) A B, or for the output
// layer the adapter term alone, and returns the layer's inputs reading it (the output layer's bias
// dropped).
func (x *exporter) fold(n *node, output bool) ([]string, error) {
	f, ok := x.e.Factors[n.in[1]]
	if !ok {
		return nil, fmt.Errorf("LoRA export: the hypernetwork has no adapter for layer %s (weight %q)", n, n.in[1])
	}
	w := x.g.inits[n.in[1]]
	delta, err := loraDelta(n, w, f, x.e.Rank, x.e.Alpha/float64(x.e.Rank))
	if err != nil {
		return nil, fmt.Errorf("LoRA export: layer %s: %v", n, err)
	}
	in := n.in
	name := n.in[1] + "/hn_folded"
	if output {
		name = n.in[1] + "/hn_lora_only"
		in = in[:2] // the output layer's bias is dropped with its base weight
	} else {
		base := tensors.MustCopyFlatData[float32](w)
		for i := range delta {
			delta[i] += base[i]
		}
	}
	if !x.emitted[name] {
		x.emitted[name] = true
		et, err := x.g.encodeInit(name, n.in[1], w, delta)
		if err != nil {
			return nil, err
		}
		x.inits = append(x.inits, et)
	}
	return append([]string{in[0], name}, in[2:]...), nil
}

// loraDelta is (scale) A B laid out as the layer's weight w: for a Conv W [O, C, k...],
// delta[o, c, k] = scale Σ_j A[k, c, j] B[j, o]; for a MatMul W [K, N] (and a Gemm's B' of that
// shape, transposed back when transB), delta = scale A B.
func loraDelta(n *node, w *tensors.Tensor, f LoRAFactors, rank int, scale float64) ([]float32, error) {
	if f.A == nil || f.B == nil {
		return nil, fmt.Errorf("missing adapter factor")
	}
	wd, ad, bd := w.Shape().Dimensions, f.A.Shape().Dimensions, f.B.Shape().Dimensions
	A, B := tensors.MustCopyFlatData[float32](f.A), tensors.MustCopyFlatData[float32](f.B)
	if len(bd) != 2 || bd[0] != rank || ad[len(ad)-1] != rank {
		return nil, fmt.Errorf("adapter factors %v and %v do not have rank %d", ad, bd, rank)
	}
	out := make([]float32, w.Size())
	switch n.op {
	case "Conv":
		o, c := wd[0], wd[1]
		k := w.Size() / (o * c)
		if len(ad) != len(wd) || bd[1] != o || f.A.Size() != k*c*rank {
			return nil, fmt.Errorf("adapter factors %v and %v do not fit weight %v", ad, bd, wd)
		}
		for oi := range o {
			for ci := range c {
				for ki := range k {
					var s float64
					for j := range rank {
						s += float64(A[(ki*c+ci)*rank+j]) * float64(B[j*o+oi])
					}
					out[(oi*c+ci)*k+ki] = float32(scale * s)
				}
			}
		}
	case "Gemm", "MatMul":
		if len(wd) != 2 {
			return nil, fmt.Errorf("weight %v is not a matrix", wd)
		}
		kk, nn := wd[0], wd[1]
		trans := n.op == "Gemm" && n.intAttr("transB", 0) != 0
		if trans {
			kk, nn = nn, kk
		}
		if len(ad) != 2 || ad[0] != kk || bd[1] != nn {
			return nil, fmt.Errorf("adapter factors %v and %v do not fit weight %v", ad, bd, wd)
		}
		for ki := range kk {
			for ni := range nn {
				var s float64
				for j := range rank {
					s += float64(A[ki*rank+j]) * float64(B[j*nn+ni])
				}
				if trans {
					out[ni*kk+ki] = float32(scale * s)
				} else {
					out[ki*nn+ni] = float32(scale * s)
				}
			}
		}
	default:
		return nil, fmt.Errorf("%s layers take no adapter", n.op)
	}
	return out, nil
}

// encodeInit is an ONNX tensor named name in the element type initializer stored is stored in: t's
// data, or, when values is not nil, those float values in t's shape (a weight folded from stored).
func (g *Model) encodeInit(name, stored string, t *tensors.Tensor, values []float32) (onnxpb.Tensor, error) {
	dims := onnxpb.Dims(t.Shape().Dimensions)
	code := g.initType[stored]
	if t.DType() == dtypes.Float32 || values != nil {
		if values == nil {
			values = tensors.MustCopyFlatData[float32](t)
		}
		switch code {
		case onnxFloat16, onnxBfloat16:
			raw := make([]byte, 2*len(values))
			for i, v := range values {
				var bits uint16
				if code == onnxFloat16 {
					bits = float16.Fromfloat32(v).Bits()
				} else {
					bits = bfloat16Bits(v)
				}
				raw[2*i], raw[2*i+1] = byte(bits), byte(bits>>8)
			}
			return onnxpb.Tensor{Name: name, Type: code, Dims: dims, Raw: raw}, nil
		}
		return onnxpb.FloatTensor(name, dims, values), nil
	}
	code, ok := onnxCodes[t.DType()]
	if !ok {
		return onnxpb.Tensor{}, fmt.Errorf("initializer %q: element type %s cannot be exported", name, t.DType())
	}
	var raw []byte
	if err := t.ConstBytes(func(b []byte) { raw = append([]byte(nil), b...) }); err != nil {
		return onnxpb.Tensor{}, fmt.Errorf("initializer %q: %v", name, err)
	}
	return onnxpb.Tensor{Name: name, Type: code, Dims: dims, Raw: raw}, nil
}

// bfloat16Bits rounds v to bfloat16 (round to nearest even).
func bfloat16Bits(v float32) uint16 {
	b := math.Float32bits(v)
	if math.IsNaN(float64(v)) {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// onnxCodes maps the dtypes initializers are held in to ONNX element types (floats handled apart).
var onnxCodes = map[dtypes.DType]int{dtypes.Float64: onnxDouble, dtypes.Uint8: onnxUint8,
	dtypes.Int8: onnxInt8, dtypes.Uint16: onnxUint16, dtypes.Int16: onnxInt16, dtypes.Int32: onnxInt32,
	dtypes.Int64: onnxInt64, dtypes.Uint32: onnxUint32, dtypes.Uint64: onnxUint64, dtypes.Bool: onnxBool}

// withInputs returns a serialized NodeProto with its inputs replaced by in.
func withInputs(node []byte, in []string) []byte {
	var out []byte
	for _, s := range in {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendString(out, s)
	}
	_ = eachField(node, func(num protowire.Number, _ protowire.Type, field, _ []byte) error {
		if num != 1 {
			out = append(out, field...)
		}
		return nil
	})
	return out
}

// StoredInputType is the ONNX element type a graph input is declared with (FLOAT16 and BFLOAT16
// inputs are fed float32 by Call; an exported graph must cast to the declared type).
func (g *Model) StoredInputType(name string) (int, bool) {
	for i, n := range g.gm.InputsNames {
		if n != name {
			continue
		}
		switch dt := g.gm.InputsShapes[i].DType; dt {
		case dtypes.Float32:
			return onnxFloat, true
		case dtypes.Float16:
			return onnxFloat16, true
		case dtypes.BFloat16:
			return onnxBfloat16, true
		default:
			code, ok := onnxCodes[dt]
			return code, ok
		}
	}
	return 0, false
}

// Defines reports whether the graph has a tensor (input, initializer or node output) named name.
func (g *Model) Defines(name string) bool { return g.known[name] }

// IRVersion and Opsets are the graph's ONNX IR version and operator set imports (domain "" for
// ai.onnx), which an exported graph that copies its nodes keeps.
func (g *Model) IRVersion() int64 { return g.gm.Proto.IrVersion }

// Opsets: see IRVersion.
func (g *Model) Opsets() map[string]int64 {
	out := map[string]int64{}
	for _, op := range g.gm.Proto.OpsetImport {
		d := op.Domain
		if d == "ai.onnx" {
			d = ""
		}
		out[d] = op.Version
	}
	return out
}
