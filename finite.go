package hypernoise

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Sourced is implemented by generators and rewards that come from a file (an imported ONNX model):
// Source names the file and output tensor, for messages such as "gen.onnx, output \"image\"".
type Sourced interface{ Source() string }

// Describe names a generator or reward for messages: its Name, with its Source when it has one.
func Describe(v interface{ Name() string }) string {
	if s, ok := v.(Sourced); ok && s.Source() != "" {
		return fmt.Sprintf("%q (%s)", v.Name(), s.Source())
	}
	return fmt.Sprintf("%q", v.Name())
}

// NonFiniteError reports non-finite numbers (NaN or ±Inf) computed by a model: What is the model
// and output (see Describe), Count how many values, Samples in how many of Of samples.
type NonFiniteError struct {
	What            string
	Count           int
	Samples, Of     int
	First           float64 // the first non-finite value (NaN, +Inf or -Inf)
	Context, Remedy string
}

func (e *NonFiniteError) Error() string {
	msg := fmt.Sprintf("%s returned %d non-finite value(s) (first: %g) in %d of %d samples", e.What, e.Count, e.First, e.Samples, e.Of)
	if e.Context != "" {
		msg = e.Context + ": " + msg
	}
	if e.Remedy != "" {
		msg += "; " + e.Remedy
	}
	return msg
}

// CheckFiniteSamples returns a *NonFiniteError if the float tensor x [B, ...] holds a NaN or an
// infinity (nil for integer tensors).
func CheckFiniteSamples(what string, x *tensors.Tensor) error {
	if x == nil || x.Shape().Rank() == 0 {
		return nil
	}
	var vals []float64
	switch x.DType() {
	case dtypes.Float32:
		for _, v := range tensors.MustCopyFlatData[float32](x) {
			vals = append(vals, float64(v))
		}
	case dtypes.Float64:
		vals = tensors.MustCopyFlatData[float64](x)
	default:
		return nil
	}
	return checkFinite(what, vals, x.Shape().Dim(0))
}

// CheckFiniteFlat is CheckFiniteSamples for b samples stored flat in xs.
func CheckFiniteFlat(what string, xs []float32, b int) error {
	vals := make([]float64, len(xs))
	for i, v := range xs {
		vals[i] = float64(v)
	}
	return checkFinite(what, vals, b)
}

func checkFinite(what string, vals []float64, b int) error {
	if b <= 0 || len(vals) == 0 {
		return nil
	}
	per := len(vals) / b
	e := &NonFiniteError{What: what, Of: b}
	for i := range b {
		bad := 0
		for _, v := range vals[i*per : (i+1)*per] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				if e.Count == 0 {
					e.First = v
				}
				bad++
			}
		}
		if bad > 0 {
			e.Count += bad
			e.Samples++
		}
	}
	if e.Count == 0 {
		return nil
	}
	return e
}

// AllFinite reports whether every value of xs is finite (no NaN, no ±Inf).
func AllFinite(xs []float32) bool {
	for _, v := range xs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}
