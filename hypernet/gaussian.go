package hypernet

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// Gaussian is the per-prompt affine noise map in Cholesky form, with an exact log-determinant:
//
//	T(eps, c) = b_c + L_c eps,   L_c = strict_lower(W_c) + diag(exp(s_c)),
//
// so f = T - eps = b_c + strict_lower(W_c) eps + (exp(s_c) - 1) ⊙ eps and log|det dT/deps| = Σ_i s_c,i.
// T#N(0, I) is N(b_c, L_c L_c^T), and every non-degenerate Gaussian has exactly one such factor:
// the map reaches the same distributions as Affine's b_c + (I + A_c) eps. What differs is the
// objective it makes exact: with its log-determinant, RegExactKL is the exact KL(T#N || N), so
// minimizing E[½||T||² - ½||eps||² - log det L_c - r/beta] over (b_c, L_c) is the exact reverse KL
// to the tilt exp(r/beta) N within the Gaussians, per prompt, where the surrogate ½||f||² drops the
// volume term (which penalizes contraction) and the series of RegLogDet bounds ||A_c||₂ below 1.
// The surrogate's value depends on the map, not only on T#N, so it is not the same objective on
// Gaussian and Affine; the exact KL is. W_c, s_c and b_c start at zero (T is the identity).
type Gaussian struct {
	Affine
}

// NewGaussian returns a Gaussian modulator for noise of the given shape and numPrompts prompts (0
// for none), under scope "/"+name ("" means "hypernet_gaussian"), with Affine's size bound.
func NewGaussian(noiseShape []int, numPrompts int, name string) (*Gaussian, error) {
	if name == "" {
		name = "hypernet_gaussian"
	}
	a, err := NewAffine(noiseShape, numPrompts, name)
	if err != nil {
		return nil, fmt.Errorf("gaussian %w", err)
	}
	return &Gaussian{Affine: *a}, nil
}

// Name returns "gaussian".
func (m *Gaussian) Name() string { return "gaussian" }

// Residual builds f(eps, c) = T(eps, c) - eps (see ResidualLogDet).
func (m *Gaussian) Residual(ctx *context.Context, eps, prompts *Node) *Node {
	f, _ := m.ResidualLogDet(ctx, eps, prompts)
	return f
}

// ResidualLogDet builds f = b_c + strict_lower(W_c) eps + (exp(s_c) - 1) ⊙ eps and log det L_c =
// Σ_i s_c,i per row. The strictly lower part is Affine's lifted product with the stored table of
// the W_c^T (variable "matrix_t" [P·D, D]) masked to its strictly upper entries, W_c[i, j] for i > j;
// s_c is the variable "log_diag" [P, D].
func (m *Gaussian) ResidualLogDet(ctx *context.Context, eps, prompts *Node) (*Node, *Node) {
	g := eps.Graph()
	b := eps.Shape().Dim(0)
	d := size(m.NoiseShape)
	W, logDiag, shift := m.params(ctx, g)
	x := ConvertDType(Reshape(eps, b, d), dtypes.Float32)
	oh := promptOneHot(g, prompts, m.NumPrompts, b)
	scale := Dot(oh, Sub(Exp(logDiag), OnesLike(logDiag))) // [B, D]: exp(s_c) - 1 per row
	f := Add(Add(Dot(liftByPrompt(x, oh), W), Mul(scale, x)), Dot(oh, shift))
	logDet := Dot(oh, ReduceSum(logDiag, -1)) // [B]
	return Reshape(ConvertDType(f, eps.DType()), eps.Shape().Dimensions...), ConvertDType(logDet, eps.DType())
}

// KL builds, per row of eps [B, NoiseShape...] and prompts [B], the closed form of KL(N(b_c, L_c L_c^T) || N(0, I)) for the
// row's prompt c:
//
//	½(||b_c||² + ||L_c||²_F - D) - Σ_i s_c,i,   ||L_c||²_F = ||strict_lower(W_c)||²_F + Σ_i exp(2 s_c,i),
//
// the exact KL(T#N || N) without sampling it. The sampled form ½||T(eps)||² - ½||eps||² - log det L_c
// has the same mean, but at the tilt of a quadratic reward its gradient in L_c is
// L_c^{-T}(eps eps^T - I) per sample, noise of order one that does not vanish; with this form the
// only noise left is the reward's, (H_c/beta) L_c (eps eps^T - I).
func (m *Gaussian) KL(ctx *context.Context, eps, prompts *Node) *Node {
	g := eps.Graph()
	d, p := size(m.NoiseShape), max(m.NumPrompts, 1)
	W, logDiag, shift := m.params(ctx, g)
	sq := Add(Add(ReduceSum(Reshape(Square(W), p, d*d), -1), ReduceSum(Square(shift), -1)), ReduceSum(Exp(MulScalar(logDiag, 2)), -1))
	kl := Sub(MulScalar(AddScalar(sq, -float64(d)), 0.5), ReduceSum(logDiag, -1)) // [P]
	return ConvertDType(Dot(promptOneHot(g, prompts, m.NumPrompts, eps.Shape().Dim(0)), kl), eps.DType())
}

// params returns the strictly-upper-masked table of the W_c^T [P·D, D], s [P, D] and b [P, D].
func (m *Gaussian) params(ctx *context.Context, g *Graph) (W, logDiag, shift *Node) {
	zctx := ctx.InAbsPath(m.Scope()).Checked(false).WithInitializer(initializers.Zero)
	d, p := size(m.NoiseShape), max(m.NumPrompts, 1)
	W = zctx.VariableWithShape("matrix_t", shapes.Make(dtypes.Float32, p*d, d)).ValueGraph(g)
	logDiag = zctx.VariableWithShape("log_diag", shapes.Make(dtypes.Float32, p, d)).ValueGraph(g)
	shift = MulScalar(zctx.VariableWithShape("shift", shapes.Make(dtypes.Float32, p, d)).ValueGraph(g), m.ShiftScale)
	// W^T's block c holds W_c[i, j] at row j, column i: keep i > j.
	rows := Iota(g, shapes.Make(dtypes.Int32, d, d), 0)
	cols := Iota(g, shapes.Make(dtypes.Int32, d, d), 1)
	mask := ConvertDType(GreaterThan(cols, rows), dtypes.Float32)
	W = Reshape(Mul(Reshape(W, p, d, d), ExpandAxes(mask, 0)), p*d, d)
	return W, logDiag, shift
}
