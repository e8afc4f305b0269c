package hypernet

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/rewards"
	"gonum.org/v1/gonum/mat"
)

// TestGaussianLearnsTheTilt: under g = identity on 6-D noise and a quadratic reward
// r(x) = g·x + ½ x^T H x, the tilt exp(r/beta) N(0, I) is the Gaussian N(Σ g/beta, Σ) with
// Σ = (I - H/beta)^{-1}. The gaussian modulator trained on the exact KL with its own log-determinant
// lands on it: T#N = N(b, L L^T) with b and L L^T within 0.04 of the tilt's mean and covariance
// (the identity map is 0.33 off the covariance and 0.4 off the mean).
// (The affine modulator on the surrogate lands on (I - H/beta)^{-1} - I instead: twice the
// tilt's curvature correction, TestAffineLearnsTheQuadraticOptimum.)
func TestGaussianLearnsTheTilt(t *testing.T) {
	b := testutil.Backend(t)
	const d, beta = 6, 1.0
	gv := []float64{0.5, -0.3, 0.2, 0, 0.1, -0.4}
	H := mat.NewSymDense(d, nil)
	for i, h := range []float64{-0.5, 0.3, 0, -0.2, 0.4, 0} {
		H.SetSym(i, i, h)
	}
	H.SetSym(0, 1, 0.25)
	reward := rewards.Func{RewardName: "quad", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		hx := Einsum("ij,bj->bi", Const(x.Graph(), denseRows(H)), x)
		lin := ReduceSum(Mul(x, ExpandAxes(Const(x.Graph(), toF32(gv)), 0)), -1)
		return Add(lin, MulScalar(ReduceSum(Mul(x, hx), -1), 0.5))
	}}
	var prec, sigma mat.Dense
	prec.Scale(-1/beta, H)
	for i := range d {
		prec.Set(i, i, prec.At(i, i)+1)
	}
	if err := sigma.Inverse(&prec); err != nil {
		t.Fatal(err)
	}
	var mean mat.VecDense
	mean.MulVec(&sigma, mat.NewVecDense(d, gv))
	mean.ScaleVec(1/beta, &mean)

	gm, err := NewGaussian([]int{d}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProblem(eyeGen{}, gm, Objective{Reward: reward, Reg: RegExactKL, Beta: beta})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	cfg := DefaultSGD()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps, cfg.WeightDecay = 2000, 64, 0.05, 10, 0
	cfg.Schedule = ScheduleCosine
	if _, err := Train(b, ctx, p, cfg, nil); err != nil {
		t.Fatal(err)
	}
	// T(0) = b; T(e_j) - T(0) = L e_j, column j of L.
	eps := make([]float32, (d+1)*d)
	for j := range d {
		eps[(j+1)*d+j] = 1
	}
	T := transport(t, b, ctx, gm, eps, d+1, d)
	L := mat.NewDense(d, d, nil)
	for j := range d {
		for i := range d {
			L.Set(i, j, float64(T[(j+1)*d+i]-T[i]))
		}
	}
	var cov mat.Dense
	cov.Mul(L, L.T())
	worst := 0.0
	for i := range d {
		worst = math.Max(worst, math.Abs(float64(T[i])-mean.AtVec(i)))
		for j := range d {
			worst = math.Max(worst, math.Abs(cov.At(i, j)-sigma.At(i, j)))
			if j > i && L.At(i, j) != 0 {
				t.Fatalf("L[%d, %d] = %g: the map is not lower-triangular", i, j, L.At(i, j))
			}
		}
	}
	t.Logf("largest error %.4f", worst)
	if worst > 0.04 {
		t.Errorf("largest error in the mean and covariance %.4f, want <= 0.04 (mean %v, want %v)", worst, T[:d], mean.RawVector().Data)
	}
}

// TestGaussianResidualAndLogDet: with 3 prompts, each row's f is its own prompt's
// b_c + strict_lower(W_c) eps + (exp(s_c) - 1) eps, its log-determinant Σ_i s_c,i and its KL
// ½(||b_c||² + ||L_c||²_F - D) - Σ_i s_c,i, computed here by hand from random tables whose upper triangles (which the map ignores) are filled too.
func TestGaussianResidualAndLogDet(t *testing.T) {
	b := testutil.Backend(t)
	const p, d, n = 3, 4, 5
	m, err := NewGaussian([]int{2, 2}, p, "")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	W, B, S, eps := normalTable(rng, p*d, d), normalTable(rng, p, d), normalTable(rng, p, d), normalTable(rng, n, d)
	prompts := []int32{2, 0, 1, 2, 0}
	ctx := context.New()
	sc := ctx.InAbsPath(m.Scope())
	sc.VariableWithValue("matrix_t", W)
	sc.VariableWithValue("shift", B)
	sc.VariableWithValue("log_diag", S)
	flat := make([]float32, 0, n*d)
	for _, row := range eps {
		flat = append(flat, row...)
	}
	outs, err := context.ExecOnceN(b, ctx, func(ctx *context.Context, e, pr *Node) []*Node {
		f, ld := m.ResidualLogDet(ctx, e, pr)
		return []*Node{f, ld, m.KL(ctx, e, pr)}
	}, tensors.FromFlatDataAndDimensions(flat, n, 2, 2), tensors.FromFlatDataAndDimensions(prompts, n))
	if err != nil {
		t.Fatal(err)
	}
	got, logDet, kl := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1]), tensors.MustCopyFlatData[float32](outs[2])
	for r, c := range prompts {
		wantLD, sq := 0.0, 0.0 // sq: ||b_c||² + ||L_c||²_F
		for i := range d {
			wantLD += float64(S[c][i])
			sq += math.Pow(m.ShiftScale*float64(B[c][i]), 2) + math.Exp(2*float64(S[c][i]))
			want := m.ShiftScale*float64(B[c][i]) + (math.Exp(float64(S[c][i]))-1)*float64(eps[r][i])
			for j := range i { // L_c[i, j] = W_c[i, j] = W[c·D + j][i] for j < i
				want += float64(W[int(c)*d+j][i]) * float64(eps[r][j])
				sq += math.Pow(float64(W[int(c)*d+j][i]), 2)
			}
			if diff := math.Abs(float64(got[r*d+i]) - want); diff > 1e-5 {
				t.Fatalf("row %d (prompt %d), f[%d] = %g, want %g", r, c, i, got[r*d+i], want)
			}
		}
		if diff := math.Abs(float64(logDet[r]) - wantLD); diff > 1e-5 {
			t.Errorf("row %d (prompt %d): log det %g, want %g", r, c, logDet[r], wantLD)
		}
		if want := 0.5*(sq-d) - wantLD; math.Abs(float64(kl[r])-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("row %d (prompt %d): KL %g, want %g", r, c, kl[r], want)
		}
	}
	if _, err := NewGaussian([]int{4, 64, 64}, 1, ""); err == nil || !strings.Contains(err.Error(), "use --modulator mlp") {
		t.Errorf("NewGaussian past MaxAffineParams: %v, want a refusal naming --modulator mlp", err)
	}
}
