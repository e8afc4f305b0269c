package main

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/compute/pjrt"
)

// TestGPUFlagUsageErrors: a bad --dtype, a bad --model bench setting and a cuda backend without a
// plugin are each one line on stderr and exit code 2, before any work starts.
func TestGPUFlagUsageErrors(t *testing.T) {
	t.Setenv(pjrt.EnvPlugin, filepath.Join(t.TempDir(), "none.so"))
	spec := filepath.Join("..", "..", "models", "onnx", "testdata", "spec.json")
	cudaWant := `unknown backend "cuda"` // builds without cgo have no XLA
	if slices.Contains(compute.Available(), compute.CUDAName) {
		cudaWant = pjrt.FixLine
	}
	checkUsageErrors(t, nil, []usageCase{
		{[]string{"train", "--out", t.TempDir(), "--dtype", "fp8"}, `unknown dtype "fp8"`},
		{[]string{"bench", "--dtype", "fp8"}, `unknown dtype "fp8"`},
		{[]string{"bench", "--model", spec, "--batch", "0"}, "--batch must be in [1, 4096]"},
		{[]string{"bench", "--model", spec, "--rank", "0"}, "--rank must be in [1, 1024]"},
		{[]string{"doctor", "--backend", "cuda"}, cudaWant},
	})
}
