package shim

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"google.golang.org/protobuf/encoding/protowire"
)

// Protobuf field numbers read by splitWeights.
const (
	modelGraph       = 7 // ModelProto.graph
	graphInitializer = 5 // GraphProto.initializer
	tensorFloatData  = 4 // TensorProto.float_data
	tensorRawData    = 9 // TensorProto.raw_data
	tensorDoubleData = 10
)

// initializer is one decoded graph initializer.
type initializer struct {
	name string
	t    *tensors.Tensor
	code int // the ONNX element type as stored (FLOAT16 and BFLOAT16 are held widened in t)
}

// splitWeights decodes every initializer of a serialized ModelProto straight from its bytes (no
// intermediate message, external data read tensor by tensor) and returns the model re-encoded
// without the data of its floating-point initializers (their names, types and dimensions kept),
// for onnx-gomlx's parser. So a model is held once, as our tensors: the parser neither copies the
// weights into its protobuf messages nor keeps them alive. Integer initializers keep their data
// (onnx-gomlx may read them as constants).
func splitWeights(data []byte, dir string) (stripped []byte, inits []initializer, err error) {
	stripped = make([]byte, 0, 1<<16)
	err = eachField(data, func(num protowire.Number, typ protowire.Type, field, val []byte) error {
		if num != modelGraph || typ != protowire.BytesType {
			stripped = append(stripped, field...)
			return nil
		}
		graph := make([]byte, 0, 1<<16)
		err := eachField(val, func(num protowire.Number, typ protowire.Type, field, val []byte) error {
			if num != graphInitializer || typ != protowire.BytesType {
				graph = append(graph, field...)
				return nil
			}
			t, name, err := decodeTensor(val, dir)
			if err != nil {
				return fmt.Errorf("initializer: %w", err)
			}
			inits = append(inits, initializer{name, t, storedType(val)})
			if isWeight(t) {
				val = withoutData(val)
			}
			graph = protowire.AppendTag(graph, graphInitializer, protowire.BytesType)
			graph = protowire.AppendBytes(graph, val)
			return nil
		})
		if err != nil {
			return err
		}
		stripped = protowire.AppendTag(stripped, modelGraph, protowire.BytesType)
		stripped = protowire.AppendBytes(stripped, graph)
		return nil
	})
	return stripped, inits, err
}

// storedType is a serialized TensorProto's data_type field (0 if absent).
func storedType(tensor []byte) int {
	code := 0
	_ = eachField(tensor, func(num protowire.Number, typ protowire.Type, field, _ []byte) error {
		if num == 2 && typ == protowire.VarintType {
			_, _, n := protowire.ConsumeTag(field)
			v, _ := protowire.ConsumeVarint(field[n:])
			code = int(v)
		}
		return nil
	})
	return code
}

// withoutData returns a serialized TensorProto without its inline floating-point data fields.
func withoutData(tensor []byte) []byte {
	out := make([]byte, 0, 128)
	_ = eachField(tensor, func(num protowire.Number, _ protowire.Type, field, _ []byte) error {
		if num != tensorFloatData && num != tensorRawData && num != tensorDoubleData {
			out = append(out, field...)
		}
		return nil
	})
	return out
}

// eachField calls fn for each top-level field of a protobuf message with the field's whole
// encoding (tag included) and, for a length-delimited field, its contents.
func eachField(data []byte, fn func(num protowire.Number, typ protowire.Type, field, val []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("malformed protobuf: %w", protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, data[n:])
		if m < 0 {
			return fmt.Errorf("malformed protobuf: %w", protowire.ParseError(m))
		}
		var val []byte
		if typ == protowire.BytesType {
			val, _ = protowire.ConsumeBytes(data[n:])
		}
		if err := fn(num, typ, data[:n+m], val); err != nil {
			return err
		}
		data = data[n+m:]
	}
	return nil
}

// WeightBytes is the memory of the model's floating-point initializers (its weights, held once).
func (g *Model) WeightBytes() int64 {
	var sum int64
	for _, t := range g.inits {
		if isWeight(t) {
			sum += int64(t.Memory())
		}
	}
	return sum
}

// LoRAParams is the number of parameters rank-r adapters add to the model: r·(fan-in + fan-out)
// for each Conv, Gemm and MatMul that takes one (see Call).
func (g *Model) LoRAParams(rank int) int64 {
	var sum int64
	for _, n := range g.nodes {
		if !g.adaptable(n) {
			continue
		}
		d := g.inits[n.in[1]].Shape().Dimensions
		fanIn, fanOut := 1, d[0]
		switch n.op {
		case "Conv":
			for _, k := range d[1:] {
				fanIn *= k
			}
		default:
			fanIn, fanOut = d[0], d[len(d)-1]
		}
		sum += int64(rank) * int64(fanIn+fanOut)
	}
	return sum
}
