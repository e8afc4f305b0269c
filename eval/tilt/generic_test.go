package tilt

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/rewards"
)

// identityGen is the unconditional generator g(eps) = eps for eps of shape [2].
type identityGen struct{}

func (identityGen) Name() string      { return "identity" }
func (identityGen) NoiseShape() []int { return []int{2} }
func (identityGen) Prompts() []string { return nil }
func (identityGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return eps
}

// gaussianSlope is a in the linear reward r(x) = a.x of the Gaussian-tilt tests.
var gaussianSlope = []float32{1, -0.5}

// gaussianPool is a Resampler with a 4000-sample pool (drawn from seed) of g(eps) = eps under
// r(x) = gaussianSlope.x.
func gaussianPool(t *testing.T, seed uint64) *Resampler {
	t.Helper()
	backend := testutil.Backend(t)
	a := gaussianSlope
	reward := rewards.Func{RewardName: "linear", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		return ReduceSum(Mul(x, ExpandAxes(Const(x.Graph(), a), 0)), -1)
	}}
	rs, err := New(backend, context.New(), identityGen{}, reward, 4000, seed)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestNewSamplesTheGaussianTilt: for g(eps) = eps and r(x) = a.x the tilt of N(0, I) at beta is
// N(a/beta, I); the resampled reference of a 4000-sample pool has that mean (within sampling
// error, the ESS setting the scale) for any prompt id, and samples of the noise's shape.
func TestNewSamplesTheGaussianTilt(t *testing.T) {
	a := gaussianSlope
	rs := gaussianPool(t, 5)
	if got := rs.SampleShape(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("sample shape %v, want [2]", got)
	}
	const beta = 2.0
	m, err := rs.Method("ref", beta)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4000
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i % 3) // an unconditional pool serves every prompt id
	}
	x, _, err := m.Generate(nil, tensors.FromValue(ids))
	if err != nil {
		t.Fatal(err)
	}
	flat := tensors.MustCopyFlatData[float32](x)
	ess := rs.ESS(beta)[0]
	for j := range 2 {
		var mean float64
		for i := range n {
			mean += float64(flat[2*i+j]) / n
		}
		want := float64(a[j]) / beta
		if tol := 4/math.Sqrt(ess) + 4/math.Sqrt(n); math.Abs(mean-want) > tol {
			t.Errorf("coordinate %d: resampled mean %.3f, want %.3f ± %.3f", j, mean, want, tol)
		}
	}
}

// TestReferenceSetAndShare: the reference set's rewards are those of its samples, ReferenceNoise
// draws the same samples' noises, and Share reads
// 1 for the reference itself and NaN for a reference without gain.
func TestReferenceSetAndShare(t *testing.T) {
	rs := gaussianPool(t, 9)
	const beta = 2.0
	imgs, rws, err := rs.ReferenceSet(beta, 50)
	if err != nil || len(imgs) != 100 || len(rws) != 50 {
		t.Fatalf("reference set: %d values, %d rewards, %v; want 100 and 50", len(imgs), len(rws), err)
	}
	for i, r := range rws {
		if d := math.Abs(float64(imgs[2*i])*1 - float64(imgs[2*i+1])*0.5 - r); d > 1e-5 {
			t.Fatalf("reference sample %d: reward %g is not its sample's", i, r)
		}
	}
	// g is the identity, so the same draws' noises are the images themselves.
	noise, err := rs.ReferenceNoise(beta, 50, 2)
	if err != nil || !slices.Equal(noise, imgs) {
		t.Errorf("ReferenceNoise (%v) differs from ReferenceSet's images under g(eps) = eps", err)
	}
	if g := rs.Mean(beta); Share(g, 0, g) != 1 || !math.IsNaN(Share(1, 2, 2)) {
		t.Errorf("Share of the reference itself %g; of a reference without gain %g", Share(g, 0, g), Share(1, 2, 2))
	}
	if _, _, err := rs.ReferenceSet(0, 5); err == nil {
		t.Error("beta 0 accepted")
	}
}

// TestMean: on the Gaussian tilt the pool's weighted mean reward is the tilt's, a.(a/beta) =
// |a|^2/beta (within sampling error); scored with another reward (here 2r - 3, the weights still
// from r), the mean is in that reward's units: exactly 2 x the first - 3.
func TestMean(t *testing.T) {
	rs := gaussianPool(t, 9)
	const beta = 2.0
	want := 1.25 / beta
	m := rs.Mean(beta)
	if tol := 4 * math.Sqrt(1.25/rs.ESS(beta)[0]); math.Abs(m-want) > tol {
		t.Errorf("tilt mean %g, want %g ± %g", m, want, tol)
	}
	a := gaussianSlope
	linear := func(ctx *context.Context, x, prompts *Node) *Node {
		return ReduceSum(Mul(x, ExpandAxes(Const(x.Graph(), a), 0)), -1)
	}
	reward := rewards.Func{RewardName: "linear", Fn: linear}
	score := rewards.Func{RewardName: "scaled", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		return AddScalar(MulScalar(linear(ctx, x, prompts), 2), -3)
	}}
	scored, err := NewScored(testutil.Backend(t), context.New(), identityGen{}, reward, score, 4000, 9, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m2 := scored.Mean(beta); math.Abs(m2-(2*m-3)) > 1e-4 {
		t.Errorf("mean under the score 2r-3: %g, want 2 x %g - 3", m2, m)
	}
}

// TestPairedMean: on a synthetic population (base reward b ~ N(-1, 1), a partial tilt
// m = 0.4 b + noise, population mean -0.4) an evaluation subset drawn from the lower half of b
// (a "hard" set) reads mean(m) far below -0.4, while PairedMean with the population's base mean
// recovers -0.4 within sampling error; the base itself maps to baseMean exactly and a method at a
// noise-independent ceiling keeps its mean.
func TestPairedMean(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var m, b, ceil []float64
	for len(b) < 4000 {
		bi := r.NormFloat64() - 1
		if bi > -1 && r.Float64() < 0.7 { // keep only 30% of the upper half: a biased set
			continue
		}
		b = append(b, bi)
		m = append(m, 0.4*bi+0.1*r.NormFloat64())
		ceil = append(ceil, 0.01*r.NormFloat64())
	}
	plain := 0.0
	for _, v := range m {
		plain += v / float64(len(m))
	}
	got := PairedMean(m, b, -1)
	if math.Abs(got-(-0.4)) > 0.02 || math.Abs(plain-(-0.4)) < 0.1 {
		t.Errorf("paired mean %g, plain mean %g; want the paired one near -0.4 and the plain one off by > 0.1", got, plain)
	}
	if g := PairedMean(b, b, -1); math.Abs(g-(-1)) > 1e-12 {
		t.Errorf("the base's paired mean %g, want the base mean -1", g)
	}
	if g := PairedMean(ceil, b, -1); math.Abs(g) > 0.01 {
		t.Errorf("a noise-independent method's paired mean %g, want about 0", g)
	}
	if !math.IsNaN(PairedMean(m[:3], b[:2], 0)) || !math.IsNaN(PairedMean(m[:1], b[:1], 0)) {
		t.Error("mismatched or single-sample input gave a number")
	}
}

// TestPoolChunks: the pool (its samples and rewards) is the same, bit for bit, whatever the chunk
// its samples are drawn in, and no compiled call runs more rows than the chunk.
func TestPoolChunks(t *testing.T) {
	backend := testutil.Backend(t)
	maxRows := 0
	reward := rewards.Func{RewardName: "linear", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		maxRows = max(maxRows, x.Shape().Dim(0))
		return ReduceSum(Mul(x, ExpandAxes(Const(x.Graph(), gaussianSlope), 0)), -1)
	}}
	whole, err := NewScored(backend, context.New(), identityGen{}, reward, nil, 600, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if maxRows != PoolChunk {
		t.Errorf("default chunk: calls of up to %d rows, want %d", maxRows, PoolChunk)
	}
	maxRows = 0
	chunked, err := NewScored(backend, context.New(), identityGen{}, reward, nil, 600, 3, 7)
	if err != nil {
		t.Fatal(err)
	}
	if maxRows > 7 {
		t.Errorf("chunk 7: a call of %d rows", maxRows)
	}
	if !slices.Equal(whole.rewards[0], chunked.rewards[0]) || !slices.Equal(whole.images[0], chunked.images[0]) {
		t.Error("the pool drawn in chunks of 7 differs from the one drawn in chunks of 256")
	}
}

// TestNoiseAndWeights: for g(eps) = eps the pool's samples are its noise, so Noise returns them,
// and Weights are exp(r_i/beta) normalized, with ESS 1/Σ w_i² (between 1 and the pool).
func TestNoiseAndWeights(t *testing.T) {
	rs := gaussianPool(t, 9)
	eps := rs.Noise(0, 2)
	if len(eps) != len(rs.images[0]) {
		t.Fatalf("Noise: %d values, the pool holds %d", len(eps), len(rs.images[0]))
	}
	for i := range eps {
		if eps[i] != rs.images[0][i] {
			t.Fatalf("Noise[%d] = %g, the pool's sample %g", i, eps[i], rs.images[0][i])
		}
	}
	const beta = 2.0
	w, ess := rs.Weights(0, beta)
	r := rs.Rewards(0)
	sum, sum2 := 0.0, 0.0
	for i := range r {
		sum += math.Exp(r[i] / beta)
	}
	for i := range r {
		want := math.Exp(r[i]/beta) / sum
		if math.Abs(w[i]-want) > 1e-9*math.Max(want, 1e-12)+1e-15 {
			t.Fatalf("Weights[%d] = %g, want %g", i, w[i], want)
		}
		sum2 += want * want
	}
	if math.Abs(ess-1/sum2) > 1e-6*ess || ess < 1 || ess > float64(rs.Pool) {
		t.Errorf("ESS %g, want %g in [1, %d]", ess, 1/sum2, rs.Pool)
	}
}
