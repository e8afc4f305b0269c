// Package randtensor makes tensors of reproducible N(0, 1) entries for benchmarks and tests.
package randtensor

import (
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Normal returns a tensor of the given dimensions whose entries, in row-major order, are
// successive NormFloat64 draws of the PCG stream (seed, stream), converted to T.
func Normal[T float32 | float64](seed, stream uint64, dims ...int) *tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, stream))
	n := 1
	for _, d := range dims {
		n *= d
	}
	flat := make([]T, n)
	for i := range flat {
		flat[i] = T(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(flat, dims...)
}
