package hypernoise_test

import (
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/compute"
)

// nanGen is a generator that emits NaN for samples whose first noise value is positive, as a
// broken imported model would.
type nanGen struct{}

func (nanGen) Name() string      { return "nan-gen" }
func (nanGen) Source() string    { return "gen_nan.onnx, output \"image\"" }
func (nanGen) NoiseShape() []int { return []int{2} }
func (nanGen) Prompts() []string { return nil }
func (nanGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	first := Slice(eps, AxisRange(), AxisElem(0))
	nan := BroadcastToDims(Scalar(eps.Graph(), eps.DType(), math.NaN()), eps.Shape().Dimensions...)
	return Where(BroadcastToDims(GreaterThan(first, ScalarZero(eps.Graph(), eps.DType())), eps.Shape().Dimensions...), nan, eps)
}

// TestGeneratorNaNIsAnError: every registered method's samples are checked; a generator that emits
// NaN makes the base method fail, naming the generator's file and output and how many samples.
func TestGeneratorNaNIsAnError(t *testing.T) {
	be, err := compute.NewBackend("")
	if err != nil {
		t.Skip(err)
	}
	defer be.Finalize()
	m, err := hypernoise.NewMethod("base", hypernoise.MethodEnv{Backend: be, Context: context.New(), Generator: nanGen{}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eps := tensors.FromFlatDataAndDimensions([]float32{-1, 0, 1, 0, -2, 3, 0.5, 1}, 4, 2)
	prompts := tensors.FromFlatDataAndDimensions(make([]int32, 4), 4)
	_, _, err = m.Generate(eps, prompts)
	if err == nil || !strings.Contains(err.Error(), "gen_nan.onnx") || !strings.Contains(err.Error(), "in 2 of 4 samples") {
		t.Fatalf("err = %v, want a non-finite error naming gen_nan.onnx and 2 of 4 samples", err)
	}
	ok := tensors.FromFlatDataAndDimensions([]float32{-1, 0, -1, 0}, 2, 2)
	if _, _, err := m.Generate(ok, tensors.FromFlatDataAndDimensions(make([]int32, 2), 2)); err != nil {
		t.Fatalf("finite samples: %v", err)
	}
}
