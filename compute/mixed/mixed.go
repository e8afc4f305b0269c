// Package mixed runs GoMLX graphs in mixed precision: every matrix product and convolution whose
// operands are float32 takes them rounded to a narrower float type (bfloat16) and returns its
// result converted back to float32; every other operation, every stored variable (weights, the
// optimizer's state) and the loss stay float32. This is PyTorch's autocast recipe applied at the
// backend: the frozen generator's and the rewards' products and convolutions run in bfloat16 (on
// XLA CUDA, on the GPU's bfloat16 units), the hypernetwork's weights and AdamW's moments are
// kept and updated in float32. The gradient graph is built from the same operations, so the
// backward products run in bfloat16 too.
package mixed

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// Parse maps a --dtype value to the narrow type: "f32"/"float32" (nil: no wrapping) or
// "bf16"/"bfloat16".
func Parse(s string) (narrow dtypes.DType, ok bool, err error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "f32", "float32":
		return dtypes.Float32, false, nil
	case "bf16", "bfloat16":
		return dtypes.BFloat16, true, nil
	}
	return dtypes.InvalidDType, false, fmt.Errorf("unknown dtype %q; allowed: f32, bf16", s)
}

// Wrap returns backend with float32 products and convolutions computed in narrow.
func Wrap(backend backends.Backend, narrow dtypes.DType) backends.Backend {
	return &wrapped{Backend: backend, narrow: narrow}
}

// Unwrap returns the backend Wrap wrapped (backend itself if it was not wrapped) and the narrow type
// (InvalidDType if none).
func Unwrap(backend backends.Backend) (backends.Backend, dtypes.DType) {
	if w, ok := backend.(*wrapped); ok {
		return w.Backend, w.narrow
	}
	return backend, dtypes.InvalidDType
}

type wrapped struct {
	backends.Backend
	narrow dtypes.DType
}

func (w *wrapped) Name() string {
	return fmt.Sprintf("%s, %s products", w.Backend.Name(), w.narrow)
}

func (w *wrapped) String() string { return w.Backend.String() }

func (w *wrapped) Description() string {
	return fmt.Sprintf("%s; float32 matrix products and convolutions computed in %s", w.Backend.Description(), w.narrow)
}

// Builder wraps the inner backend's builder: every op it returns is an op of the inner builder.
func (w *wrapped) Builder(name string) backends.Builder {
	return &builder{Builder: w.Backend.Builder(name), narrow: w.narrow}
}

type builder struct {
	backends.Builder
	narrow dtypes.DType
}

// narrowed converts float32 operands to the narrow type. ok is false (and the operands are returned
// unchanged) unless every operand is float32.
func (b *builder) narrowed(ops ...backends.Op) (out []backends.Op, ok bool, err error) {
	for _, op := range ops {
		s, err := b.OpShape(op)
		if err != nil {
			return nil, false, err
		}
		if s.DType != dtypes.Float32 {
			return ops, false, nil
		}
	}
	out = make([]backends.Op, len(ops))
	for i, op := range ops {
		if out[i], err = b.Builder.ConvertDType(op, b.narrow); err != nil {
			return nil, false, err
		}
	}
	return out, true, nil
}

// widened converts a narrow result back to float32.
func (b *builder) widened(op backends.Op, err error) (backends.Op, error) {
	if err != nil {
		return nil, err
	}
	return b.Builder.ConvertDType(op, dtypes.Float32)
}

// Dot computes lhs·rhs from operands rounded to the narrow type (float32 operands only).
func (b *builder) Dot(lhs, rhs backends.Op) (backends.Op, error) {
	ops, ok, err := b.narrowed(lhs, rhs)
	if err != nil {
		return nil, err
	}
	if !ok {
		return b.Builder.Dot(lhs, rhs)
	}
	return b.widened(b.Builder.Dot(ops[0], ops[1]))
}

// DotGeneral is the general product from operands rounded to the narrow type (float32 operands only).
func (b *builder) DotGeneral(lhs backends.Op, lhsContracting, lhsBatch []int, rhs backends.Op, rhsContracting, rhsBatch []int) (backends.Op, error) {
	ops, ok, err := b.narrowed(lhs, rhs)
	if err != nil {
		return nil, err
	}
	if !ok {
		return b.Builder.DotGeneral(lhs, lhsContracting, lhsBatch, rhs, rhsContracting, rhsBatch)
	}
	return b.widened(b.Builder.DotGeneral(ops[0], lhsContracting, lhsBatch, ops[1], rhsContracting, rhsBatch))
}

// ConvGeneral is the convolution of input and kernel rounded to the narrow type (float32 operands only).
func (b *builder) ConvGeneral(input, kernel backends.Op, axes backends.ConvolveAxesConfig, strides []int, paddings [][2]int,
	inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (backends.Op, error) {
	ops, ok, err := b.narrowed(input, kernel)
	if err != nil {
		return nil, err
	}
	if !ok {
		return b.Builder.ConvGeneral(input, kernel, axes, strides, paddings, inputDilations, kernelDilations, channelGroupCount, batchGroupCount)
	}
	return b.widened(b.Builder.ConvGeneral(ops[0], ops[1], axes, strides, paddings, inputDilations, kernelDilations, channelGroupCount, batchGroupCount))
}
