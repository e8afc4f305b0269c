package hypernet

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// EnergyMatch computes each sample's share of the energy distance between the batch's law and a
// reference set, per prompt: for sample z_b [B, ...] of prompt c_b,
//
//	E_b = 2 mean_m ||z_b - y_{c_b,m}|| - mean_{b' != b, c_b' = c_b} ||z_b - z_b'||
//
// with y_{c,m} the reference samples ref [NP, M, Dz] of prompt c (z's per-sample size Dz) and
// refSq [NP, M] their squared norms ||y_{c,m}||² (nil: computed here, every call; a caller with a
// constant reference passes them computed once). The batch mean of E_b is the energy distance
// 2E||Z-Y|| - E||Z-Z'|| - E||Y-Y'|| less its constant last term; it is zero at Z ~ Y and positive
// otherwise, and, unlike the reverse KL, it pays for every region of the reference the batch
// leaves empty. A sample with no other sample of its prompt in the batch has no second term (train
// with prompts_per_step > 0 so every row has partners). Distances are sqrt(d² + 1e-6), smooth at 0.
func EnergyMatch(z, prompts, ref, refSq *Node) *Node {
	zf := perSample(z)
	dt := zf.DType()
	if ref.DType() != dt {
		ref = ConvertDType(ref, dt)
	}
	b, d := zf.Shape().Dim(0), zf.Shape().Dim(1)
	np := ref.Shape().Dim(0)
	if ref.Shape().Dim(2) != d {
		panic(fmt.Sprintf("EnergyMatch: reference samples have %d values, the batch's %d", ref.Shape().Dim(2), d))
	}
	if refSq == nil {
		refSq = ReduceSum(Square(ref), -1)
	} else if refSq.DType() != dt {
		refSq = ConvertDType(refSq, dt)
	}
	dist := func(sqA, sqB, cross *Node) *Node {
		d2 := Sub(Add(sqA, sqB), MulScalar(cross, 2))
		return Sqrt(AddScalar(MaxScalar(d2, 0), 1e-6))
	}
	zsq := ReduceSum(Square(zf), -1) // [B]
	pid := ConvertDType(prompts, dtypes.Int32)
	onehot := OneHot(pid, np, dt)
	// Each row is compared with its own prompt's reference only, gathered [B, M, D]: B·M·D work,
	// not B·NP·M·D.
	rows := ExpandAxes(pid, -1)
	yb := StopGradient(Gather(ref, rows))                                         // [B, M, D], a constant
	cross := Einsum("bd,bmd->bm", zf, yb)                                         // [B, M]
	toRef := ReduceMean(dist(ExpandAxes(zsq, 1), Gather(refSq, rows), cross), -1) // [B]

	zz := dist(ExpandAxes(zsq, 1), ExpandAxes(zsq, 0), Einsum("bd,kd->bk", zf, zf)) // [B, B]
	same := Einsum("bn,kn->bk", onehot, onehot)
	eye := make([]float32, b*b)
	for i := range b {
		eye[i*b+i] = 1
	}
	mask := Sub(same, ConvertDType(Reshape(Const(z.Graph(), eye), b, b), dt))
	count := ReduceSum(mask, -1)
	within := Div(ReduceSum(Mul(zz, mask), -1), MaxScalar(count, 1))
	return Sub(MulScalar(toRef, 2), within)
}

// MatchSpec configures the tilt-matching term of training (Objective.Match): a reference set of
// Size samples per prompt is drawn by importance resampling from Pool base samples per prompt
// (noise seeded by Seed, weights exp(r/beta) at the beta trained for), once before training, and
// Weight times the energy distance between each step's batch and that set (EnergyMatch), in the
// generator's output (Space "image") or in the modulated noise ("noise"), is added to the loss.
// The reverse KL the objective otherwise minimizes seeks the tilt's modes; the energy distance
// pays for every region of the tilt the sampler leaves empty.
type MatchSpec struct {
	Weight float64 `json:"weight"`
	Space  string  `json:"space"`
	Pool   int     `json:"pool"`
	Size   int     `json:"size"`
	Seed   int64   `json:"seed"`
	// Auto: the term was turned on by default (AutoMatch), not asked for. pipeline.Train then
	// drops it, and the run trains without it, where the scored pool cannot resample the tilt (an
	// effective sample size under Size/4); whether the pool is worth drawing at all is the caller's
	// choice (`train` leaves the default off where the pool would generate more samples than the
	// training).
	Auto bool `json:"auto,omitempty"`
}

// Match spaces and limits.
const (
	MatchImage     = "image"
	MatchNoise     = "noise"
	MaxMatchWeight = 1e4
	MaxMatchPool   = 1 << 20
)

// DefaultMatch is the setting measured on the embedded model at beta 0.05 (docs/convergence.md,
// eighth round), at weight w.
func DefaultMatch(w float64) MatchSpec {
	return MatchSpec{Weight: w, Space: MatchImage, Pool: 4096, Size: 512}
}

// AutoMatchBeta is the beta at which AutoMatch's weight is 1; AutoMatchMin the smallest weight it
// turns on (so the term is off by default above beta = AutoMatchBeta/sqrt(AutoMatchMin) = 0.5).
const (
	AutoMatchBeta = 0.05
	AutoMatchMin  = 0.01
)

// AutoMatchWeight is the default tilt-matching weight of a run trained for the tilt at beta,
// w = min(1, (AutoMatchBeta/beta)²), and 0 (off) where that is under AutoMatchMin. On the
// embedded model weight 1 brings the beta-0.05 tilt's FD gap from +3.7 to +1.3 at 0.93 of its
// gain (docs/convergence.md, ninth round, 3 seeds), while at beta 0.2 and 1, where the reverse KL
// alone already lands on the tilt, weight 1 holds the sampler back (0.90 and 0.63 of the gain,
// eighth round, one seed): the term is needed where the tilt is sharp, so its default falls off
// fast with beta. Only betas 0.05, 0.2 and 1 were measured.
func AutoMatchWeight(beta float64) float64 {
	if !(beta > 0) {
		return 0
	}
	w := math.Min(1, (AutoMatchBeta/beta)*(AutoMatchBeta/beta))
	if w < AutoMatchMin {
		return 0
	}
	return w
}

// AutoMatch is the default tilt-matching setting for beta: DefaultMatch(AutoMatchWeight(beta))
// marked Auto, or nil where the weight is 0.
func AutoMatch(beta float64) *MatchSpec {
	w := AutoMatchWeight(beta)
	if w == 0 {
		return nil
	}
	s := DefaultMatch(w)
	s.Auto = true
	return &s
}

// Validate checks the ranges: weight in (0, MaxMatchWeight], a known space, a pool of at least 2
// and at most MaxMatchPool samples per prompt, a reference of 2 to Pool samples per prompt.
func (s MatchSpec) Validate() error {
	if err := CheckRange("tilt-match weight", s.Weight, 0, MaxMatchWeight); err != nil {
		return err
	}
	if s.Weight == 0 {
		return fmt.Errorf("tilt-match weight must be positive, got 0")
	}
	if s.Space != MatchImage && s.Space != MatchNoise {
		return fmt.Errorf("tilt-match space must be %s or %s, got %q", MatchImage, MatchNoise, s.Space)
	}
	if err := CheckIntRange("tilt-match pool", s.Pool, 2, MaxMatchPool); err != nil {
		return err
	}
	if err := CheckIntRange("tilt-match size", s.Size, 2, s.Pool); err != nil {
		return err
	}
	return nil
}
