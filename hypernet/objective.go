package hypernet

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
)

// Regularizer names the noise-space term of the HyperNoise objective.
type Regularizer string

const (
	// RegKL is the paper's tractable surrogate of KL(T#N || N): R = 1/2 ||f(eps)||^2, with the
	// per-sample loss R - r(x)/Beta.
	RegKL Regularizer = "kl"
	// RegExactKL is an unbiased per-sample estimate of the exact KL(T#N || N) for T(eps) = eps + f(eps):
	// R = 1/2 ||eps + f||^2 - 1/2 ||eps||^2 - log|det(I + J_f(eps))|, loss R - r(x)/Beta.
	// With a modulator that computes its own exact log-determinant (a LogDetModulator, e.g. Flow;
	// Objective.ExactLogDet) at any noise dimension; otherwise only for noise of 1 or 2 elements
	// (the Jacobian is built row by row).
	RegExactKL Regularizer = "exact-kl"
	// RegLogDet is the exact KL(T#N || N) at any noise dimension, estimated stochastically:
	// R = 1/2 ||f||^2 + Σ_{k=2}^{Terms+1} (-1)^k tr(J_f^k)/k with Hutchinson probes and
	// vector-Jacobian products (see LogDet and LogDetSeries), loss R - r(x)/Beta, plus a guard
	// penalty that keeps the series convergent; samples whose series diverges are not trained on.
	RegLogDet Regularizer = "logdet"
	// RegMeanSquare is the reference code's regularizer: per-sample loss -r(x) + Weight*mean(f^2),
	// the mean over the D noise elements (and, in the trainer, over the batch). It is the paper's
	// objective multiplied by Beta for Beta = 2*Weight/D: Beta*(1/2||f||^2 - r/Beta) =
	// (Weight/D)||f||^2 - r. The reference's reg_weight 0.5 thus means Beta = 1/D.
	RegMeanSquare Regularizer = "mean-sq"
	// RegChi is ReNO's chi-norm prior on the modulated noise eps' = eps + f: per-sample loss
	// -r(x) + Weight*(1/2||eps'||^2 - (D-1) log||eps'||), the negative log-density (up to a constant)
	// of ||eps'|| under the chi distribution with D degrees of freedom.
	RegChi Regularizer = "chi"
	// RegNone adds no regularizer: per-sample loss -r(x) (the fine-tune baseline's objective).
	RegNone Regularizer = "none"
)

// Regularizers lists the valid regularizers.
func Regularizers() []Regularizer {
	return []Regularizer{RegKL, RegExactKL, RegLogDet, RegMeanSquare, RegChi, RegNone}
}

// ParseRegularizer parses a regularizer name.
func ParseRegularizer(s string) (Regularizer, error) {
	var names []string
	for _, r := range Regularizers() {
		if string(r) == s {
			return r, nil
		}
		names = append(names, string(r))
	}
	return "", fmt.Errorf("unknown regularizer %q; allowed: %s", s, strings.Join(names, ", "))
}

// Objective is the HyperNoise training objective for a reward r:
//
//	RegKL, RegExactKL, RegLogDet: E[ R(eps, f) - r(g(eps + f(eps, c)), c)/Beta ]
//	RegMeanSquare, RegChi:    E[ Weight*R(eps, f) - r(g(eps + f(eps, c)), c) ]
//	RegNone:                  E[ -r(g(eps + f), c) ]
//
// Minimizing the first form with the exact KL gives, over all maps T = I + f, the law
// T#N = p0*(eps) ∝ N(eps; 0, I) exp(r(g(eps))/Beta), whose push-forward through g is the tilted
// distribution p*(x) ∝ p_base(x) exp(r(x)/Beta).
type Objective struct {
	Reward hypernoise.Reward
	Reg    Regularizer
	Beta   float64 // tilt temperature, for RegKL, RegExactKL and RegLogDet (> 0)
	Weight float64 // regularizer weight, for RegMeanSquare and RegChi (>= 0)
	LogDet LogDet  // the estimator's settings, for RegLogDet
	// ExactLogDet: the modulator supplies log|det dT/deps| exactly (a LogDetModulator), so
	// RegExactKL is valid at any noise dimension. NewProblem sets it from the modulator.
	ExactLogDet bool
	// Match, if set, adds Match.Weight times the energy distance to a reference set of the tilt
	// (EnergyMatch) to every sample's loss.
	Match *Match
}

// Match is a reference set of the tilt's samples the training matches in energy distance, drawn
// as its MatchSpec says: Ref [NP, M, Dz] holds M = Size samples per prompt, of the modulated noise
// (Space MatchNoise) or of the generator's output (MatchImage). Ref must be set before the
// training graph is built.
type Match struct {
	MatchSpec
	Ref *tensors.Tensor
}

// refSq returns the squared norms ||y_{c,m}||² [NP, M] of the reference Ref [NP, M, D], computed
// on the host when the graph is built: a constant the training graph would otherwise recompute
// every step.
func (m *Match) refSq() *tensors.Tensor {
	dims := m.Ref.Shape().Dimensions
	y := tensors.MustCopyFlatData[float32](m.Ref)
	d := len(y) / (dims[0] * dims[1])
	sq := make([]float32, dims[0]*dims[1])
	for i := range sq {
		s := 0.0
		for _, v := range y[i*d : (i+1)*d] {
			s += float64(v) * float64(v)
		}
		sq[i] = float32(s)
	}
	return tensors.FromFlatDataAndDimensions(sq, dims[0], dims[1])
}

// Tempered reports whether the regularizer is a KL divided against r/Beta (kl, exact-kl, logdet),
// the form a tilt dial (a modulator conditioned on Beta) can be trained with.
func (r Regularizer) Tempered() bool { return r == RegKL || r == RegExactKL || r == RegLogDet }

// Validate checks the objective against a noise shape.
func (o Objective) Validate(noiseShape []int) error {
	if o.Reward == nil {
		return fmt.Errorf("objective: no reward")
	}
	switch o.Reg {
	case RegKL, RegExactKL, RegLogDet:
		if err := CheckRange("objective: beta", o.Beta, MinBeta, MaxBeta); err != nil {
			return err
		}
		if o.Reg == RegLogDet {
			if err := o.LogDet.Validate(); err != nil {
				return err
			}
		}
		if o.Reg == RegExactKL && !o.ExactLogDet {
			if d := size(noiseShape); d < 1 || d > 2 {
				return fmt.Errorf("objective: the exact KL regularizer needs noise of 1 or 2 elements, got shape %v (%d elements); use %q or a modulator with an exact log-determinant (flow)", noiseShape, d, RegKL)
			}
		}
	case RegMeanSquare, RegChi:
		if err := CheckRange("objective: regularizer weight", o.Weight, 0, MaxRegWeight); err != nil {
			return err
		}
	case RegNone:
	default:
		_, err := ParseRegularizer(string(o.Reg))
		return fmt.Errorf("objective: %w", err)
	}
	return nil
}

// perSample reshapes x [B, ...] to [B, D].
func perSample(x *Node) *Node {
	if x.Rank() == 2 {
		return x
	}
	return Reshape(x, x.Shape().Dim(0), -1)
}

// KLSurrogate computes the paper's surrogate 1/2 ||f||^2 per sample: f [B, ...] -> [B].
func KLSurrogate(f *Node) *Node {
	return MulScalar(ReduceSum(Square(perSample(f)), -1), 0.5)
}

// MeanSquare computes mean(f^2) over each sample's D elements: f [B, ...] -> [B].
func MeanSquare(f *Node) *Node {
	return ReduceMean(Square(perSample(f)), -1)
}

// ChiPrior computes ReNO's chi-norm prior 1/2 ||e||^2 - (D-1) log ||e|| per sample, e [B, ...] ->
// [B], in float32 whatever e's dtype (the result is converted back). It is, up to a constant, the
// negative log-density of ||e|| when e ~ N(0, I_D), minimal at ||e|| = sqrt(D-1).
func ChiPrior(e *Node) *Node {
	dt := e.DType()
	x := perSample(e)
	if dt != dtypes.Float32 {
		x = ConvertDType(x, dtypes.Float32)
	}
	d := float64(x.Shape().Dim(1))
	sq := ReduceSum(Square(x), -1)
	// log||e|| = 1/2 log||e||^2; a tiny floor keeps it finite at e = 0.
	logNorm := MulScalar(Log(MaxScalar(sq, 1e-30)), 0.5)
	out := Sub(MulScalar(sq, 0.5), MulScalar(logNorm, d-1))
	if dt != dtypes.Float32 {
		out = ConvertDType(out, dt)
	}
	return out
}

// JacobianRows builds the per-sample Jacobian of f with respect to eps, [B, D, D] with
// J[b, i, j] = ∂f[b, i]/∂eps[b, j], by one reverse pass per output element (so only for small D).
// It assumes each row of f depends only on the same row of eps (no coupling across the batch),
// which holds for every per-sample network.
func JacobianRows(eps, f *Node) *Node {
	fs := perSample(f)
	b, d := fs.Shape().Dim(0), fs.Shape().Dim(1)
	g := f.Graph()
	rows := make([]*Node, d)
	for i := range d {
		onehot := make([]float32, d)
		onehot[i] = 1
		e := ConvertDType(Const(g, onehot), f.DType())
		fi := ReduceAllSum(Mul(fs, ExpandAxes(e, 0)))
		grad := Gradient(fi, eps)[0]
		rows[i] = ExpandAxes(Reshape(grad, b, d), 1) // [B, 1, D]
	}
	return Concatenate(rows, 1)
}

// LogDetJacobian computes log|det(I + J_f(eps))| per sample, [B], for noise with D = 1 or 2
// elements (closed-form determinant). It panics for larger D. See JacobianRows for the
// per-sample assumption.
func LogDetJacobian(eps, f *Node) *Node {
	j := JacobianRows(eps, f)
	d := j.Shape().Dim(1)
	entry := func(r, c int) *Node {
		// j[:, r, c] via a one-hot contraction (keeps every op twice differentiable).
		mask := make([]float32, d*d)
		mask[r*d+c] = 1
		m := ConvertDType(Const(f.Graph(), mask), j.DType())
		return ReduceSum(Mul(Reshape(j, -1, d*d), ExpandAxes(m, 0)), -1)
	}
	var det *Node
	switch d {
	case 1:
		det = OnePlus(entry(0, 0))
	case 2:
		det = Sub(Mul(OnePlus(entry(0, 0)), OnePlus(entry(1, 1))), Mul(entry(0, 1), entry(1, 0)))
	default:
		panic(fmt.Sprintf("LogDetJacobian: only for noise of 1 or 2 elements, got %d", d))
	}
	return Log(Abs(det))
}

// ExactKL computes the per-sample estimate of KL(T#N || N) for T(eps) = eps + f(eps):
//
//	1/2 ||eps + f||^2 - 1/2 ||eps||^2 - log|det(I + J_f(eps))|
//
// whose mean over eps ~ N(0, I) is exactly the KL (change of variables: the density of T#N at
// T(eps) is N(eps) / |det J_T(eps)|). By Stein's identity its mean also equals
// E[1/2||f||^2 + tr J_f - log det(I + J_f)], so the paper's surrogate 1/2||f||^2 drops the volume term.
func ExactKL(eps, f *Node) *Node {
	e := perSample(eps)
	ep := perSample(Add(eps, f))
	quad := MulScalar(Sub(ReduceSum(Square(ep), -1), ReduceSum(Square(e), -1)), 0.5)
	return Sub(quad, LogDetJacobian(eps, f))
}

// FlowKL is ExactKL with the log-determinant given: 1/2 ||eps + f||^2 - 1/2 ||eps||^2 - logDet
// per sample, for a map T(eps) = eps + f whose log|det dT/deps| [B] is logDet (see LogDetModulator).
func FlowKL(eps, f, logDet *Node) *Node {
	quad := MulScalar(Sub(ReduceSum(Square(perSample(Add(eps, f))), -1), ReduceSum(Square(perSample(eps)), -1)), 0.5)
	if logDet.DType() != quad.DType() {
		logDet = ConvertDType(logDet, quad.DType())
	}
	return Sub(quad, logDet)
}

// Terms builds the objective's per-sample loss [B] for noise eps, residual f = f(eps, c) (built from
// eps, so that the exact KL can differentiate it) and sample x = g(eps + f, c), and returns it with
// the per-sample reward r(x, c) and regularizer R. For RegLogDet the probes are drawn from ctx's
// random number generator.
func (o Objective) Terms(ctx *context.Context, eps, f, x, prompts *Node) (loss, reward, reg *Node) {
	var probes *Node
	if o.Reg == RegLogDet {
		b, d := eps.Shape().Dim(0), size(eps.Shape().Dimensions[1:])
		u := ctx.RandomUniform(eps.Graph(), shapes.Make(eps.DType(), max(o.LogDet.Probes, 1), b, d))
		one := OnesLike(u)
		probes = Where(LessThan(u, MulScalar(one, 0.5)), Neg(one), one)
	}
	loss, reward, reg, _ = o.terms(ctx, eps, f, x, prompts, nil, probes, nil)
	return loss, reward, reg
}

// terms is Terms with an optional per-sample temperature beta [B] (nil: o.Beta) for the tempered
// regularizers, the Rademacher probes [P, B, D] RegLogDet needs, and a per-sample estimate of
// KL(T#N || N) [B] built from the modulator's exact log-determinant (nil if it has none;
// RegExactKL then builds the Jacobian); it also returns the estimator's diagnostics as metrics.
func (o Objective) terms(ctx *context.Context, eps, f, x, prompts, beta, probes, kl *Node) (loss, reward, reg *Node, extra []Metric) {
	reward = o.Reward.Score(ctx, x, prompts)
	if reward.DType() != eps.DType() {
		reward = ConvertDType(reward, eps.DType())
	}
	tempered := func(r *Node) *Node {
		if beta != nil {
			return Div(r, ConvertDType(beta, r.DType()))
		}
		return DivScalar(r, o.Beta)
	}
	switch o.Reg {
	case RegKL:
		reg = KLSurrogate(f)
		loss = Sub(reg, tempered(reward))
	case RegExactKL:
		if kl != nil {
			reg = kl
		} else {
			reg = ExactKL(eps, f)
		}
		loss = Sub(reg, tempered(reward))
	case RegLogDet:
		s := LogDetSeries(eps, f, probes, o.LogDet)
		half := KLSurrogate(f)
		reg = Add(half, s.Value)
		loss = Sub(Add(half, s.Loss), tempered(reward))
		extra = []Metric{{"logdet_series", s.Value}, {"logdet_gain", s.Gain}, {"logdet_rate", s.Rate},
			{"logdet_penalty", s.Penalty}, {"logdet_diverged", s.Diverged}, {"logdet_bound", s.Bound}}
	case RegMeanSquare:
		reg = MeanSquare(f)
		loss = Sub(MulScalar(reg, o.Weight), reward)
	case RegChi:
		reg = ChiPrior(Add(eps, f))
		loss = Sub(MulScalar(reg, o.Weight), reward)
	default:
		reg = ZerosLike(reward)
		loss = Neg(reward)
	}
	return loss, reward, reg, extra
}
