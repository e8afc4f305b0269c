package hypernet

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// MaxAffineParams bounds an Affine modulator's P·D² matrix entries (P prompts, D noise elements):
// 64M float32, 256 MiB, with as much again for each optimizer moment.
const MaxAffineParams = 1 << 26

// Affine is a per-prompt affine modulator on the flattened noise,
//
//	f(eps, c) = b_c + A_c eps,
//
// with a shift b_c in R^D and a matrix A_c in R^{DxD} for each prompt c, both starting at zero, so
// f = 0 exactly at initialization. It is the noise map that is exact for a reward quadratic in the
// noise, r(eps) = r_c + g_c·eps + ½ eps^T H_c eps: the tilt exp(r/beta) of N(0, I) is then the
// Gaussian reached by eps -> (I - H_c/beta)^{-1/2} eps + (I - H_c/beta)^{-1} g_c/beta, and the
// surrogate ½||f||² - r/beta is minimized by A_c = (I - H_c/beta)^{-1} - I (twice the tilt's
// curvature correction, to first order in H_c/beta) and the same b_c. The MLP modulator's f is in
// practice a per-prompt constant (docs/convergence.md, the `small` fixture): this map with A_c = 0.
// The optimum exists while H_c/beta < I: at a beta below the reward's largest curvature in the
// noise (on the `small` T2I fixture the default beta, 1/D, is, by two orders of magnitude) the
// surrogate's A_c grows without bound: the modulator is for tilts a pool of base samples can
// resample.
// Trained with SGD (the CLI's default for it), the mean-square penalty's sampled gradient
// (A_c eps + b_c) eps^T cancels the reward gradient's H_c eps eps^T part near the optimum (exactly,
// for a quadratic reward), so the step noise vanishes there.
type Affine struct {
	NoiseShape []int
	NumPrompts int // 0 for an unconditional generator (one A and b)
	// ShiftScale s parametrizes the shift as b_c = s·B_c (B_c the stored variable), so that a
	// gradient step moves b_c s² times as fast as A_c under SGD (s times under AdamW): the shift is
	// a mean over a prompt's samples and settles in tens of steps, while A_c, a D x D moment, needs
	// hundreds of samples per prompt (DefaultAffineShiftScale).
	ShiftScale float64
	ScopeName  string
}

// DefaultAffineShiftScale is Affine.ShiftScale's default.
const DefaultAffineShiftScale = 4.0

// NewAffine returns an Affine modulator for noise of the given shape and numPrompts prompts (0 for
// none), under scope "/"+name ("" means "hypernet_affine"). It refuses noise too large for a
// dense D x D matrix per prompt (MaxAffineParams).
func NewAffine(noiseShape []int, numPrompts int, name string) (*Affine, error) {
	if len(noiseShape) == 0 || size(noiseShape) <= 0 {
		return nil, fmt.Errorf("affine modulator: invalid noise shape %v", noiseShape)
	}
	if numPrompts < 0 {
		return nil, fmt.Errorf("affine modulator: negative prompt count %d", numPrompts)
	}
	d, p := int64(size(noiseShape)), int64(max(numPrompts, 1))
	if p*d*d > MaxAffineParams {
		return nil, fmt.Errorf("affine modulator: %d prompts x %d^2 noise elements is %d matrix entries, more than %d; use --modulator mlp", p, d, p*d*d, MaxAffineParams)
	}
	if name == "" {
		name = "hypernet_affine"
	}
	if strings.Contains(name, context.ScopeSeparator) {
		return nil, fmt.Errorf("affine modulator: scope name %q must be a single scope name", name)
	}
	return &Affine{NoiseShape: slices.Clone(noiseShape), NumPrompts: numPrompts, ShiftScale: DefaultAffineShiftScale, ScopeName: name}, nil
}

// Name returns "affine".
func (m *Affine) Name() string { return "affine" }

// Scope returns "/" + ScopeName.
func (m *Affine) Scope() string { return context.ScopeSeparator + m.ScopeName }

// Residual builds f(eps, c) = b_c + A_c flat(eps), reshaped to eps's shape. The table holds the
// A_c^T stacked, W [P·D, D] with W[c·D + j, i] = A_c[i, j], so that A_c eps is one matrix product of
// the noise lifted by the prompt's one-hot, z[b, c·D + j] = [c_b = c]·eps_b[j], with W: no D x D
// matrix is copied per row, and the gradient into W is the product z^T (dL/df).
func (m *Affine) Residual(ctx *context.Context, eps, prompts *Node) *Node {
	mctx := ctx.InAbsPath(m.Scope())
	g := eps.Graph()
	b := eps.Shape().Dim(0)
	d := size(m.NoiseShape)
	p := max(m.NumPrompts, 1)
	zctx := mctx.Checked(false).WithInitializer(initializers.Zero)
	W := zctx.VariableWithShape("matrix_t", shapes.Make(dtypes.Float32, p*d, d)).ValueGraph(g)
	shift := MulScalar(zctx.VariableWithShape("shift", shapes.Make(dtypes.Float32, p, d)).ValueGraph(g), m.ShiftScale)
	x := ConvertDType(Reshape(eps, b, d), dtypes.Float32)
	oh := promptOneHot(g, prompts, m.NumPrompts, b)
	f := Add(Dot(liftByPrompt(x, oh), W), Dot(oh, shift)) // [B, D]
	return Reshape(ConvertDType(f, eps.DType()), eps.Shape().Dimensions...)
}

// promptOneHot is the [B, P] one-hot of each row's prompt, P = max(numPrompts, 1) (every row
// prompt 0 for an unconditional generator, whose prompts may be nil).
func promptOneHot(g *Graph, prompts *Node, numPrompts, b int) *Node {
	if numPrompts == 0 {
		return OneHot(Zeros(g, shapes.Make(dtypes.Int32, b)), 1, dtypes.Float32)
	}
	return OneHot(ConvertDType(prompts, dtypes.Int32), numPrompts, dtypes.Float32)
}

// liftByPrompt is z [B, P·D] with z[b, c·D + j] = [c_b = c]·x[b, j] for x [B, D] and the rows'
// prompt one-hot oh [B, P]: z times a stacked table [P·D, D] applies each row's own prompt's block.
func liftByPrompt(x, oh *Node) *Node {
	b, d, p := x.Shape().Dim(0), x.Shape().Dim(1), oh.Shape().Dim(1)
	return Reshape(Mul(ExpandAxes(oh, -1), ExpandAxes(x, 1)), b, p*d)
}
