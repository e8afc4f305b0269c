package shim

import (
	"unsafe"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	gonnx "github.com/gomlx/onnx-gomlx/onnx"
)

// convertNode is onnx-gomlx v0.3.4's (*Model).convertNode: it converts one ONNX node (a
// *protos.NodeProto, a type internal to onnx-gomlx, hence the unsafe.Pointer) in g, reading its
// inputs from converted and writing its outputs there. The context is unused by the ops we delegate.
//
// Why reach past the exported API: onnx-gomlx's only exported conversion, CallGraph, ends every
// call with three forced garbage collections (to release on-device temporaries it does not make
// for these ops). An imported UNet interleaves our ops with delegated ones, so a graph build made
// hundreds of CallGraph calls, and collection (marking the whole heap each time) took two thirds
// of the load time of a 25M-parameter model. The signature is checked by every test that builds a
// graph with a delegated op (ops_test.go, conformance_test.go, parity_test.go); an onnx-gomlx
// upgrade must recheck it (go.mod pins v0.3.4).
//
//go:linkname convertNode github.com/gomlx/onnx-gomlx/onnx.(*Model).convertNode
func convertNode(m *gonnx.Model, ctx *context.Context, g *Graph, node unsafe.Pointer, converted map[string]*Node)
