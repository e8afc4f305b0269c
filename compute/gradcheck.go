package compute

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// GradCheckOptions tunes CheckGradient. The zero value (or nil) gives the defaults.
type GradCheckOptions struct {
	// Step is the relative finite-difference step: coordinate x is moved by ±Step·max(1,|x|).
	// Default 1e-5 (about the cube root of float64's epsilon, which balances truncation and rounding).
	Step float64

	// MaxCoords is the most coordinates checked per input; larger inputs are checked on a seeded random
	// subset of that many coordinates. Default 256. Each coordinate costs two evaluations of f.
	MaxCoords int

	// Seed for the random output weights and the coordinate subset. Default 1.
	Seed uint64
}

// CheckGradient compares GoMLX's reverse-mode gradient of f with central finite differences, in float64.
//
// The inputs are converted to float64 and fed to f as graph parameters; f must build its graph in the
// dtype of its inputs. If f's output y is not a scalar it is reduced to L = Σ w⊙y with fixed random
// weights w ~ U[-1,1) (so every output entry's cotangent is exercised); otherwise L = y. For each checked
// coordinate x_i
//
//	a_i = ∂L/∂x_i (autodiff),   n_i = (L(x+h e_i) - L(x-h e_i)) / 2h,   h = Step·max(1,|x_i|)
//	err_i = |a_i - n_i| / max(|a_i|, |n_i|, 1e-3·G, 1e-12)
//
// with G the largest |a_j|, |n_j| over all checked coordinates (so gradients that are tiny compared with
// the rest are judged in absolute terms). It returns max_i err_i: around 1e-8 for a correct rule in
// float64, order 1 for a wrong one; 1e-5 is a safe threshold.
func CheckGradient(backend backends.Backend, f func(inputs []*graph.Node) *graph.Node,
	inputs []*tensors.Tensor, opts *GradCheckOptions) (maxRelErr float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compute.CheckGradient: %v", r)
		}
	}()
	o := GradCheckOptions{Step: 1e-5, MaxCoords: 256, Seed: 1}
	if opts != nil {
		if opts.Step > 0 {
			o.Step = opts.Step
		}
		if opts.MaxCoords > 0 {
			o.MaxCoords = opts.MaxCoords
		}
		if opts.Seed != 0 {
			o.Seed = opts.Seed
		}
	}
	if len(inputs) == 0 {
		return 0, fmt.Errorf("compute.CheckGradient: no inputs")
	}

	flats, dims, err := float64Inputs(inputs)
	if err != nil {
		return 0, err
	}
	args := func() []any {
		a := make([]any, len(flats))
		for i := range flats {
			a[i] = tensors.FromFlatDataAndDimensions(flats[i], dims[i]...)
		}
		return a
	}

	// L = Σ w⊙f(x), w fixed by the seed and the output shape.
	lossOf := func(params []*graph.Node) *graph.Node {
		y := f(params)
		if y.IsScalar() {
			return y
		}
		rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
		w := make([]float64, y.Shape().Size())
		for i := range w {
			w[i] = 2*rng.Float64() - 1
		}
		wt := tensors.FromFlatDataAndDimensions(w, y.Shape().Dimensions...)
		wn := graph.ConvertDType(graph.Const(y.Graph(), wt), y.DType())
		return graph.ReduceAllSum(graph.Mul(y, wn))
	}
	lossExec, err := graph.NewExec(backend, func(params []*graph.Node) *graph.Node { return lossOf(params) })
	if err != nil {
		return 0, err
	}
	defer lossExec.Finalize()
	gradExec, err := graph.NewExec(backend, func(params []*graph.Node) []*graph.Node {
		return graph.Gradient(lossOf(params), params...)
	})
	if err != nil {
		return 0, err
	}
	defer gradExec.Finalize()

	gradTensors, err := gradExec.Exec(args()...)
	if err != nil {
		return 0, err
	}
	grads := make([][]float64, len(gradTensors))
	for i, g := range gradTensors {
		if !g.Shape().Equal(shapes.Make(dtypes.Float64, dims[i]...)) {
			return 0, fmt.Errorf("compute.CheckGradient: gradient #%d has shape %s, want float64%v", i, g.Shape(), dims[i])
		}
		grads[i] = tensors.MustCopyFlatData[float64](g)
	}
	eval := func() (float64, error) {
		out, err := lossExec.Exec(args()...)
		if err != nil {
			return 0, err
		}
		return tensors.MustCopyFlatData[float64](out[0])[0], nil
	}

	return compareCentral(flats, grads, o, eval)
}

// float64Inputs copies float inputs to float64 slices, with their dims.
func float64Inputs(inputs []*tensors.Tensor) (flats [][]float64, dims [][]int, err error) {
	flats = make([][]float64, len(inputs))
	dims = make([][]int, len(inputs))
	for i, t := range inputs {
		dims[i] = t.Shape().Dimensions
		switch t.DType() {
		case dtypes.Float64:
			flats[i] = tensors.MustCopyFlatData[float64](t)
		case dtypes.Float32:
			f32 := tensors.MustCopyFlatData[float32](t)
			flats[i] = make([]float64, len(f32))
			for j, v := range f32 {
				flats[i][j] = float64(v)
			}
		default:
			return nil, nil, fmt.Errorf("compute.CheckGradient: input #%d has dtype %s, want a float", i, t.DType())
		}
	}
	return flats, dims, nil
}

// compareCentral compares the analytic gradients grads with central differences
// (L(x + h e_j) - L(x - h e_j)) / 2h, h = Step max(1, |x_j|), at up to MaxCoords random coordinates
// of each input (eval computes L at the current flats), and returns the largest relative error,
// |a - n| / max(|a|, |n|, 1e-3 of the largest magnitude seen); +Inf if any is NaN.
func compareCentral(flats, grads [][]float64, o GradCheckOptions, eval func() (float64, error)) (float64, error) {
	rng := rand.New(rand.NewPCG(o.Seed, 0xc00d))
	type pair struct{ a, n float64 }
	var pairs []pair
	scale := 0.0
	for i := range flats {
		coords := rng.Perm(len(flats[i]))
		if len(coords) > o.MaxCoords {
			coords = coords[:o.MaxCoords]
		}
		for _, j := range coords {
			x0 := flats[i][j]
			h := o.Step * max(1, math.Abs(x0))
			flats[i][j] = x0 + h
			lp, err := eval()
			if err != nil {
				return 0, err
			}
			flats[i][j] = x0 - h
			lm, err := eval()
			flats[i][j] = x0
			if err != nil {
				return 0, err
			}
			p := pair{a: grads[i][j], n: (lp - lm) / (2 * h)}
			pairs = append(pairs, p)
			scale = max(scale, math.Abs(p.a), math.Abs(p.n))
		}
	}
	maxRelErr := 0.0
	for _, p := range pairs {
		den := max(math.Abs(p.a), math.Abs(p.n), 1e-3*scale, 1e-12)
		e := math.Abs(p.a-p.n) / den
		if math.IsNaN(e) {
			return math.Inf(1), nil
		}
		maxRelErr = max(maxRelErr, e)
	}
	return maxRelErr, nil
}
