// Package onnxpb writes ONNX models (the onnx.proto ModelProto wire format) from a few plain Go
// structs, with protowire: enough to emit the graphs hypernoise exports (nodes with integer
// attributes, initializers, typed inputs and outputs, metadata), and to pass nodes copied from another model through as their
// serialized NodeProto bytes.
package onnxpb

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX TensorProto.DataType codes used here.
const (
	Float    = 1
	Int32    = 6
	Int64    = 7
	Float16  = 10
	Double   = 11
	BFloat16 = 16
)

// Model is a ModelProto: one graph, its opset imports and string metadata.
type Model struct {
	IRVersion int64
	Opsets    map[string]int64 // domain ("" for ai.onnx) -> version
	Producer  string
	Version   string
	Graph     Graph
	Metadata  [][2]string // key, value
}

// Graph is a GraphProto; Nodes must be in topological order (ONNX's rule).
type Graph struct {
	Name    string
	Nodes   []Node
	Inits   []Tensor
	Inputs  []Value
	Outputs []Value
}

// Node is a NodeProto of the default domain, or, when Raw is set, a serialized NodeProto copied
// from another model (written as it is; the other fields are ignored).
type Node struct {
	Op, Name string
	Inputs   []string
	Outputs  []string
	Attrs    []Attr
	Raw      []byte
}

// Attr is an integer AttributeProto (the only kind the exported graphs use: axis, to).
type Attr struct {
	Name string
	Int  int64
}

// IntAttr builds an integer attribute.
func IntAttr(name string, v int64) Attr { return Attr{Name: name, Int: v} }

// Dims converts Go dimensions to ONNX's int64 ones.
func Dims(d []int) []int64 {
	out := make([]int64, len(d))
	for i, v := range d {
		out[i] = int64(v)
	}
	return out
}

// Tensor is a TensorProto with its data as raw little-endian bytes.
type Tensor struct {
	Name string
	Type int
	Dims []int64
	Raw  []byte
}

// FloatTensor is a FLOAT tensor of the given dims holding v (len(v) must be their product).
func FloatTensor(name string, dims []int64, v []float32) Tensor {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return Tensor{Name: name, Type: Float, Dims: dims, Raw: raw}
}

// Int64Tensor is an INT64 tensor of the given dims holding v.
func Int64Tensor(name string, dims []int64, v []int64) Tensor {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return Tensor{Name: name, Type: Int64, Dims: dims, Raw: raw}
}

// Value is a ValueInfoProto of a tensor: element type and dims, a negative dim being symbolic
// (named by Param, e.g. "N" for the batch).
type Value struct {
	Name  string
	Type  int
	Dims  []int64
	Param string
}

// Marshal returns the ModelProto's wire encoding.
func (m *Model) Marshal() ([]byte, error) {
	if m.Graph.Name == "" {
		return nil, fmt.Errorf("onnx model: the graph has no name")
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType) // ir_version
	b = protowire.AppendVarint(b, uint64(m.IRVersion))
	b = appendString(b, 2, m.Producer)
	b = appendString(b, 3, m.Version)
	b = appendMessage(b, 7, m.Graph.marshal())
	domains := make([]string, 0, len(m.Opsets))
	for d := range m.Opsets {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	for _, d := range domains {
		var op []byte
		if d != "" {
			op = appendString(op, 1, d)
		}
		op = protowire.AppendTag(op, 2, protowire.VarintType)
		op = protowire.AppendVarint(op, uint64(m.Opsets[d]))
		b = appendMessage(b, 8, op)
	}
	for _, kv := range m.Metadata {
		b = appendMessage(b, 14, appendString(appendString(nil, 1, kv[0]), 2, kv[1]))
	}
	return b, nil
}

func (g *Graph) marshal() []byte {
	var b []byte
	for _, n := range g.Nodes {
		if n.Raw != nil {
			b = appendMessage(b, 1, n.Raw)
		} else {
			b = appendMessage(b, 1, n.marshal())
		}
	}
	b = appendString(b, 2, g.Name)
	for _, t := range g.Inits {
		b = appendMessage(b, 5, t.marshal())
	}
	for _, v := range g.Inputs {
		b = appendMessage(b, 11, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, 12, v.marshal())
	}
	return b
}

func (n *Node) marshal() []byte {
	var b []byte
	for _, in := range n.Inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, in)
	}
	for _, out := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, out)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.Op)
	for _, a := range n.Attrs {
		b = appendMessage(b, 5, a.marshal())
	}
	return b
}

// attrInt is AttributeProto.AttributeType INT.
const attrInt = 2

func (a *Attr) marshal() []byte {
	b := appendString(nil, 1, a.Name)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(a.Int))
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	return protowire.AppendVarint(b, attrInt)
}

func (t *Tensor) marshal() []byte {
	var b []byte
	for _, d := range t.Dims {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.Type))
	b = appendString(b, 8, t.Name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, t.Raw)
}

func (v *Value) marshal() []byte {
	var shape []byte
	for _, d := range v.Dims {
		var dim []byte
		if d < 0 {
			dim = appendString(dim, 2, v.Param)
		} else {
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d))
		}
		shape = appendMessage(shape, 1, dim)
	}
	tensor := protowire.AppendTag(nil, 1, protowire.VarintType)
	tensor = protowire.AppendVarint(tensor, uint64(v.Type))
	tensor = appendMessage(tensor, 2, shape)
	return appendMessage(appendString(nil, 1, v.Name), 2, appendMessage(nil, 1, tensor))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}
