package compute

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// selfTestCase is one DotGeneral layout the start-up self-test runs.
type selfTestCase struct {
	name                   string
	lhsDims, rhsDims       []int
	lhsC, lhsB, rhsC, rhsB []int
}

// selfTestCases cover both direct orders of each operand, a batch axis, an order that needs a copy, and
// a vector.
var selfTestCases = []selfTestCase{
	{"matrix·matrix", []int{3, 4}, []int{4, 5}, []int{1}, nil, []int{0}, nil},
	{"Aᵀ·Bᵀ", []int{4, 3}, []int{5, 4}, []int{0}, nil, []int{1}, nil},
	{"batched", []int{2, 3, 4}, []int{2, 4, 5}, []int{2}, []int{0}, []int{1}, []int{0}},
	{"permuted", []int{4, 2, 3}, []int{5, 2, 4}, []int{0}, []int{1}, []int{2}, []int{1}},
	{"matrix·vector", []int{3, 4}, []int{4}, []int{1}, nil, []int{0}, nil},
}

// selfTestFastDot runs selfTestCases, in float32 and float64, on a SimpleGo backend routed through the
// hook and on one that is not, and returns an error unless every result matches to rounding and every
// product went through the GEMM.
func selfTestFastDot() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	fastB, err := simplego.New("ops_sequential")
	if err != nil {
		return err
	}
	defer fastB.Finalize()
	stockB, err := simplego.New("ops_sequential")
	if err != nil {
		return err
	}
	defer stockB.Finalize()
	fastSB := fastB.(*simplego.Backend)
	fastBackends.Store(fastSB, true)
	defer fastBackends.Delete(fastSB)

	for _, f64 := range []bool{false, true} {
		for ci, tc := range selfTestCases {
			fn := func(a, b *graph.Node) *graph.Node {
				return graph.DotGeneral(a, tc.lhsC, tc.lhsB, b, tc.rhsC, tc.rhsB)
			}
			before := statFast.Load()
			// Fresh tensors per backend: a tensor stays attached to the backend it ran on.
			got, err := runOnce(fastSB, fn, selfTestTensor(tc.lhsDims, ci, f64), selfTestTensor(tc.rhsDims, ci+7, f64))
			if err != nil {
				return fmt.Errorf("%s: %w", tc.name, err)
			}
			if statFast.Load() == before {
				return fmt.Errorf("%s: the product did not run through the hook", tc.name)
			}
			want, err := runOnce(stockB.(*simplego.Backend), fn, selfTestTensor(tc.lhsDims, ci, f64),
				selfTestTensor(tc.rhsDims, ci+7, f64))
			if err != nil {
				return fmt.Errorf("%s (stock): %w", tc.name, err)
			}
			if len(got) != len(want) {
				return fmt.Errorf("%s: %d values, SimpleGo gives %d", tc.name, len(got), len(want))
			}
			for i := range got {
				if d := math.Abs(got[i] - want[i]); !(d <= 1e-4*(1+math.Abs(want[i]))) {
					return fmt.Errorf("%s: value %d is %g, SimpleGo gives %g", tc.name, i, got[i], want[i])
				}
			}
		}
	}
	return nil
}

// selfTestTensor fills a tensor with small distinct values.
func selfTestTensor(dims []int, seed int, f64 bool) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v64 := make([]float64, n)
	for i := range v64 {
		v64[i] = float64((i*7+seed*13)%11) - 5 + 0.25*float64(seed%3)
	}
	if f64 {
		return tensors.FromFlatDataAndDimensions(v64, dims...)
	}
	v32 := make([]float32, n)
	for i, v := range v64 {
		v32[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(v32, dims...)
}

// runOnce runs fn(a, b) on backend and returns the result as float64 values.
func runOnce(backend *simplego.Backend, fn func(a, b *graph.Node) *graph.Node, a, b *tensors.Tensor) ([]float64, error) {
	exec, err := graph.NewExec(backend, fn)
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	outs, err := exec.Exec(a, b)
	if err != nil {
		return nil, err
	}
	defer outs[0].FinalizeAll()
	return flatFloat64(outs[0])
}

// flatFloat64 copies a float32 or float64 tensor's values into float64s.
func flatFloat64(t *tensors.Tensor) (out []float64, err error) {
	err = t.ConstFlatData(func(flat any) {
		switch flat := flat.(type) {
		case []float32:
			out = make([]float64, len(flat))
			for i, v := range flat {
				out[i] = float64(v)
			}
		case []float64:
			out = append([]float64(nil), flat...)
		default:
			err = fmt.Errorf("unexpected dtype %T", flat)
		}
	})
	return out, err
}
