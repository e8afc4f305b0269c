package compute

import (
	"math"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/internal/randtensor"
)

var (
	testBackendOnce sync.Once
	testBackendVal  backends.Backend
	testBackendErr  error
)

// testBackend is the patched pure-Go backend shared by the tests.
func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	testBackendOnce.Do(func() { testBackendVal, testBackendErr = NewBackend(PatchedName) })
	if testBackendErr != nil {
		t.Fatalf("NewBackend: %v", testBackendErr)
	}
	return testBackendVal
}

// stockBackend is unpatched SimpleGo (the reference the patched kernels are compared with),
// finalized when the test ends.
func stockBackend(t testing.TB) backends.Backend {
	t.Helper()
	stock, err := NewBackend(StockName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stock.Finalize)
	return stock
}

// randTensor is a float64 tensor of N(0,1) entries, reproducible from seed.
func randTensor(seed uint64, dims ...int) *tensors.Tensor {
	return randtensor.Normal[float64](seed, 17, dims...)
}

// eval runs fn once on the inputs and returns its outputs as float64 slices.
func eval(t testing.TB, backend backends.Backend, fn func(inputs []*graph.Node) []*graph.Node, inputs ...*tensors.Tensor) [][]float64 {
	t.Helper()
	exec, err := graph.NewExec(backend, fn)
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in
	}
	outs, err := exec.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float64, len(outs))
	for i, o := range outs {
		var err error
		res[i], err = flatFloat64(o)
		if err != nil {
			t.Fatal(err)
		}
	}
	return res
}

// maxAbsDiff is max_i |a_i - b_i|, or +Inf if the lengths differ.
func maxAbsDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return 1e300
	}
	m := 0.0
	for i := range a {
		d := a[i] - b[i]
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

// scaledDiff returns max_i |got_i - want_i| for the tensor got and max_i |want_i| (the scale the
// tests' relative tolerances multiply).
func scaledDiff(t testing.TB, got *tensors.Tensor, want []float64) (d, scale float64) {
	t.Helper()
	g, err := flatFloat64(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range want {
		scale = max(scale, math.Abs(v))
	}
	return maxAbsDiff(g, want), scale
}
