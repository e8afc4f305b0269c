package hypernet

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// LogDet configures the stochastic estimate of the volume term of KL(T#N || N) for
// T(eps) = eps + f(eps), at any noise dimension D. With J = J_f(eps) and spectral radius < 1,
//
//	tr J - log det(I + J) = Σ_{k>=2} (-1)^k tr(J^k)/k,
//
// so KL(T#N || N) = E_eps[ 1/2||f||^2 + Σ_{k>=2} (-1)^k tr(J^k)/k ] (the paper's Eq. 8 after
// Stein's lemma). Each tr(J^k) is estimated with Rademacher (Hutchinson) probes v as v·(J^T)^k v,
// computed by k vector-Jacobian products u <- J^T u (reverse passes through f alone).
// The series is cut after Terms terms (k = 2 .. Terms+1); the truncation error is bounded by
// D Σ_{k>Terms+1} L^k/k for Lip(f) <= L < 1, reported with L estimated (see LogDetSeries).
type LogDet struct {
	Probes int `json:"probes"` // Rademacher probes per sample (>= 1)
	Terms  int `json:"terms"`  // series terms after the first (>= 1): k = 2 .. Terms+1
	// Guard: a penalty GuardWeight * max(0, gain - GuardMax)^2 per sample, where gain is the
	// power-iteration estimate of the local operator norm ||J_f(eps)||_2 from the same
	// vector-Jacobian products. It keeps the series in its convergence region; 0 disables it.
	GuardMax    float64 `json:"guard_max"`
	GuardWeight float64 `json:"guard_weight"`
}

// DefaultLogDet is 1 probe, 3 terms (k = 2, 3, 4), guard from gain 0.8 with weight 10.
func DefaultLogDet() LogDet { return LogDet{Probes: 1, Terms: 3, GuardMax: 0.8, GuardWeight: 10} }

// Validate checks the configuration; errors name what is allowed.
func (c LogDet) Validate() error {
	switch {
	case c.Probes < 1:
		return fmt.Errorf("logdet: probes must be >= 1, got %d", c.Probes)
	case c.Terms < 1:
		return fmt.Errorf("logdet: terms must be >= 1, got %d", c.Terms)
	case !(c.GuardMax > 0 && c.GuardMax < 1):
		return fmt.Errorf("logdet: guard threshold must be in (0, 1), got %g", c.GuardMax)
	case !(c.GuardWeight >= 0) || math.IsInf(c.GuardWeight, 0):
		return fmt.Errorf("logdet: guard weight must be a finite number >= 0, got %g", c.GuardWeight)
	}
	return nil
}

// Series is LogDetSeries's result, every field per sample [B].
type Series struct {
	// Value estimates Σ_{k=2}^{Terms+1} (-1)^k tr(J^k)/k (no gradient flows through it).
	Value *Node
	// Loss has Value's value and, as its gradient with respect to f's parameters, the unbiased
	// estimate of the truncated series' gradient, plus the guard penalty. Samples whose series is
	// detected as diverging contribute only the penalty (their estimate is not trained on).
	Loss *Node
	// Gain is ||J^T a|| / ||a|| for the power-iterated probe a: a lower estimate of ||J||_2.
	Gain *Node
	// Rate is the chain's geometric growth (||(J^T)^K v|| / ||J^T v||)^(1/(K-1)) for K = Terms >= 2
	// (equal to Gain for Terms = 1): an estimate of the spectral radius of J.
	Rate    *Node
	Penalty *Node
	// Diverged is 1 where the series is not trusted: Gain or Rate >= 1, or a non-finite estimate.
	Diverged *Node
	// Bound is D Σ_{k>Terms+1} L^k/k with L = max(Gain, Rate) (capped at 0.99): the truncation
	// error bound if L were f's Lipschitz constant; it is an estimate, since L is.
	Bound *Node
}

// LogDetSeries estimates the volume term of KL(T#N || N) for f = f(eps) (built from eps, per
// sample: row b of f depends on row b of eps only) with probes [P, B, D] of ±1 (P >= 1).
//
// For each probe v: u_0 = v, u_j = J^T u_{j-1} (j = 1..K, K = Terms, reverse passes whose results
// are constants to the parameter gradient), a = Σ_{j=1}^{K} (-1)^{j+1} u_j and one more
// differentiable reverse pass z = J^T a. Then z = Σ_{j=1}^{K} (-1)^{j+1} u_{j+1}, so
//
//	value    = Σ_{k=2}^{K+1} (-1)^k (u_k·v)/k   (u_{K+1}·v recovered from z·v),
//	gradient = ∂/∂θ (z·v) with a held fixed  = Σ_{k=2}^{K+1} (-1)^k v^T J^{k-1} (∂J/∂θ) v,
//
// whose mean over v is Σ_k (-1)^k tr(J^{k-1} ∂J/∂θ) = ∂/∂θ Σ_k (-1)^k tr(J^k)/k: the Neumann
// gradient series of residual flows (Chen et al. 2019), needing second derivatives through one
// reverse pass only. Results are averaged over the P probes.
func LogDetSeries(eps, f, probes *Node, cfg LogDet) Series {
	fs := perSample(f)
	b, d := fs.Shape().Dim(0), fs.Shape().Dim(1)
	dt := f.DType()
	if probes.Rank() != 3 || probes.Shape().Dim(1) != b || probes.Shape().Dim(2) != d {
		panic(fmt.Sprintf("LogDetSeries: probes must be [P, %d, %d], got %s", b, d, probes.Shape()))
	}
	probes = ConvertDType(probes, dt)
	k := max(cfg.Terms, 1)
	// vjp(u) = J^T u per sample, u [B, D] treated as independent of eps.
	vjp := func(u *Node) *Node {
		s := ReduceAllSum(Mul(Reshape(StopGradient(u), f.Shape().Dimensions...), f))
		return Reshape(Gradient(s, eps)[0], b, d)
	}
	dot := func(x, y *Node) *Node { return ReduceSum(Mul(x, y), -1) }
	norm := func(x *Node) *Node { return Sqrt(AddScalar(ReduceSum(Square(x), -1), 1e-30)) }
	var values, losses, gains, rates []*Node
	for p := range probes.Shape().Dim(0) {
		v := Reshape(Slice(probes, AxisElem(p)), b, d)
		u := make([]*Node, k+1)
		u[0] = v
		for j := 1; j <= k; j++ {
			u[j] = StopGradient(vjp(u[j-1]))
		}
		var a *Node
		for j := 1; j <= k; j++ {
			if j%2 == 1 {
				a = addOr(a, u[j])
			} else {
				a = addOr(a, Neg(u[j]))
			}
		}
		a = StopGradient(a)
		z := vjp(a)
		zv := dot(z, v)
		// value: terms k = 2..K from the chain, the last (k = K+1) from z·v.
		value := ZerosLike(zv)
		rest := StopGradient(zv) // = Σ_{j=1}^{K} (-1)^{j+1} u_{j+1}·v
		for kk := 2; kk <= k; kk++ {
			t := dot(u[kk], v)
			sgn := 1.0
			if kk%2 == 1 {
				sgn = -1
			}
			value = Add(value, MulScalar(t, sgn/float64(kk)))
			// u_kk·v appears in rest with sign (-1)^{kk}: j = kk-1, (-1)^{j+1} = (-1)^{kk}.
			rest = Sub(rest, MulScalar(t, sgn))
		}
		// rest = (-1)^{K+1} u_{K+1}·v, and the term k = K+1 is (-1)^{K+1} u_{K+1}·v/(K+1).
		value = Add(value, DivScalar(rest, float64(k+1)))
		values = append(values, value)
		losses = append(losses, Add(StopGradient(value), Sub(zv, StopGradient(zv))))
		// The small constants make gain and rate 0, not 0/0, where J = 0 (f = 0 at initialization).
		gain := Div(norm(z), AddScalar(StopGradient(norm(a)), 1e-6))
		gains = append(gains, gain)
		rate := StopGradient(gain)
		if k >= 2 {
			rate = Pow(Div(norm(u[k]), AddScalar(norm(u[1]), 1e-6)), Scalar(eps.Graph(), dt, 1/float64(k-1)))
		}
		rates = append(rates, rate)
	}
	mean := func(xs []*Node) *Node { return DivScalar(sumAll(xs), float64(len(xs))) }
	maxOf := func(xs []*Node) *Node {
		m := xs[0]
		for _, x := range xs[1:] {
			m = Max(m, x)
		}
		return m
	}
	s := Series{Value: mean(values), Gain: StopGradient(mean(gains)), Rate: maxOf(rates)}
	gainMean := mean(gains)
	s.Penalty = MulScalar(Square(MaxScalar(AddScalar(gainMean, -cfg.GuardMax), 0)), cfg.GuardWeight)
	l := Max(StopGradient(maxOf(gains)), s.Rate)
	bad := LogicalOr(GreaterOrEqual(l, OnesLike(l)), LogicalNot(IsFinite(s.Value)))
	s.Diverged = ConvertDType(bad, dt)
	zero := ZerosLike(s.Value)
	series := Where(bad, zero, mean(losses))
	if cfg.GuardWeight > 0 {
		s.Loss = Add(series, s.Penalty)
	} else {
		s.Loss = series
	}
	s.Value = StopGradient(s.Value)
	// D (-log(1-L) - Σ_{k=1}^{K+1} L^k/k), L capped at 0.99.
	lc := StopGradient(MinScalar(Where(IsFinite(l), l, OnesLike(l)), 0.99))
	bound := Neg(Log(OneMinus(lc)))
	pw := OnesLike(lc)
	for kk := 1; kk <= k+1; kk++ {
		pw = Mul(pw, lc)
		bound = Sub(bound, DivScalar(pw, float64(kk)))
	}
	s.Bound = MulScalar(MaxScalar(bound, 0), float64(d))
	return s
}

func addOr(a, b *Node) *Node {
	if a == nil {
		return b
	}
	return Add(a, b)
}

func sumAll(xs []*Node) *Node {
	s := xs[0]
	for _, x := range xs[1:] {
		s = Add(s, x)
	}
	return s
}

// Rademacher returns probes [P, B, D] of independent ±1 drawn from rngState; see stepRNG.
func Rademacher(rngState *Node, p, b, d int, dt dtypes.DType) (newState, probes *Node) {
	newState, u := RandomUniform(rngState, shapes.Make(dt, p, b, d))
	one := OnesLike(u)
	return newState, Where(LessThan(u, MulScalar(one, 0.5)), Neg(one), one)
}

// stepRNG returns an RNG state that depends only on stream and the count of applied optimizer
// steps of the problem with trainable scope `scope` (the counter the trainer keeps with the
// optimizer state, so a resumed run draws the same probes as an uninterrupted one).
func stepRNG(ctx *context.Context, g *Graph, scope string, stream uint64) *Node {
	count := ctx.InAbsPath(optimRoot+scope).Checked(false).WithInitializer(initializers.Zero).
		VariableWithShape("#applied", shapes.Make(dtypes.Int64)).SetTrainable(false)
	c := ConvertDType(count.ValueGraph(g), dtypes.Uint64)
	key := Const(g, []uint64{0x9e3779b97f4a7c15 ^ stream, 0, 0xd1b54a32d192ed03})
	mask := Const(g, []uint64{0, 1, 0})
	return Add(key, Mul(mask, BroadcastToDims(c, 3)))
}
