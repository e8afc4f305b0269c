// Package shim imports ONNX graphs into GoMLX: it is our op shim over onnx-gomlx v0.3.4's exported
// API, not a fork of it.
//
// Load decodes every initializer itself, straight from the file's bytes (raw or typed data,
// external data read tensor by tensor from files relative to the model, FLOAT16 and BFLOAT16
// widened to float32), then parses the graph with onnx-gomlx (onnx.Parse) from the model re-encoded
// without its float weights' data, and reads it into its own node list: the weights are held once,
// as the tensors the context variables share (weights.go). Every node is checked at load time against the ops
// converted here and those delegated to onnx-gomlx, with per-op configuration checks (Resize modes,
// Conv auto_pad, Pad modes, ...): everything unsupported is named in one *UnsupportedError, so a
// model never fails at its first call.
//
// Model.Call converts the nodes an output needs, in topological order:
//
//   - our own ops (ours in ops.go, ops2.go, ops3.go, resize.go): those onnx-gomlx lacks (Sigmoid,
//     InstanceNormalization, GroupNormalization, ConvTranspose, Resize (nearest, linear, cubic),
//     ReduceSum/Max/Min/L2, ArgMax/Min, Reciprocal, Softplus, LeakyRelu, Gelu, Einsum), those it gets wrong (Gather with
//     negative indices, Gemm's beta, Pow of mixed types, Clip with an omitted bound, Shape's
//     start/end, Slice out of range or with negative steps, Reshape allowzero, GlobalAveragePool's
//     axes, LayerNormalization's extra outputs, MaxPool's and AveragePool's default strides), and Conv, Gemm and
//     MatMul, whose stored weights take LoRA adapters (nn.AdapterOf) so that the paper's LoRA
//     hypernetwork runs on an imported generator;
//   - every other supported op is converted by onnx-gomlx, node by node, through its per-node
//     conversion (delegate.go says why not through CallGraph);
//   - tensors that are one repeated value (a large ConstantOfShape, as the classic attention
//     export's torch.empty, and its product by a constant) are held as that value and its shape,
//     and an addition of zeros is dropped (splat.go);
//   - nodes whose inputs are all constants are evaluated at build time (constant folding), so shape
//     arithmetic (Shape, Gather, Concat, ...) reaches Reshape, Resize and the reductions as static
//     values, as GoMLX requires.
//
// Floating-point initializers become frozen context variables (CreateVariables), so the weights
// are stored once, shared by every graph, and visible to LoRA; integer initializers are constants.
//
// Why a shim and not a vendored fork: the project copies no code from other projects; the shim is
// small (the ops above), keeps onnx-gomlx's parser and its ~50 other op conversions, and picks up
// upstream fixes by a version bump. What a fork would have made easier (an op registration hook)
// is replaced by the per-node dispatch above, and every op we claim, ours or delegated, is checked
// by the ONNX node conformance tests (Debian's libonnx-testdata, conformance_test.go) and the
// fixtures' parity with PyTorch (parity_test.go). The cost: one linkname to onnx-gomlx's
// unexported per-node conversion (delegate.go), pinned to v0.3.4 and exercised by those tests.
//
// Limits: static shapes only (the batch size is fixed when a graph is built, as everywhere in
// GoMLX); no control flow (If, Loop), no LSTM/GRU, no quantized ops; Resize without antialiasing;
// Einsum without repeated indices in one operand (diagonals); MaxPool without its Indices output;
// ConvTranspose with one group.
package shim
