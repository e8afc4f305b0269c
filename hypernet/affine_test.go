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

// TestAffineLearnsTheQuadraticOptimum: under g = identity on 6-D noise and a quadratic reward
// r(x) = g·x + ½ x^T H x, the mean-square objective W·mean(f^2) - r over f = A eps + b is
// minimized by (cI - H) f = g + H eps with c = 2W/D, i.e. A = (cI - H)^{-1} H, b = (cI - H)^{-1} g.
// The affine modulator, trained with SGD, lands on both within 0.03.
func TestAffineLearnsTheQuadraticOptimum(t *testing.T) {
	b := testutil.Backend(t)
	const d, weight = 6, 3.0 // c = 2*3/6 = 1
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
	// The optimum: M = (cI - H)^{-1}, A = M H, b = M g.
	var M, cI, wantA mat.Dense
	cI.Scale(-1, H)
	for i := range d {
		cI.Set(i, i, cI.At(i, i)+1)
	}
	if err := M.Inverse(&cI); err != nil {
		t.Fatal(err)
	}
	wantA.Mul(&M, H)
	var wantB mat.VecDense
	wantB.MulVec(&M, mat.NewVecDense(d, gv))

	aff, err := NewAffine([]int{d}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProblem(eyeGen{}, aff, Objective{Reward: reward, Reg: RegMeanSquare, Weight: weight})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	cfg := DefaultSGD()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps, cfg.WeightDecay = 1000, 64, 0.05, 10, 0
	if _, err := Train(b, ctx, p, cfg, nil); err != nil {
		t.Fatal(err)
	}
	// f at eps = 0 is b; at eps = e_j it is b + A e_j.
	eps := make([]float32, (d+1)*d)
	for j := range d {
		eps[(j+1)*d+j] = 1
	}
	out, err := context.ExecOnce(b, ctx, func(ctx *context.Context, e, pr *Node) *Node {
		return aff.Residual(ctx, e, pr)
	}, tensors.FromFlatDataAndDimensions(eps, d+1, d), tensors.FromFlatDataAndDimensions(make([]int32, d+1), d+1))
	if err != nil {
		t.Fatal(err)
	}
	f := tensors.MustCopyFlatData[float32](out)
	worst := 0.0
	for i := range d {
		worst = math.Max(worst, math.Abs(float64(f[i])-wantB.AtVec(i)))
		for j := range d {
			worst = math.Max(worst, math.Abs(float64(f[(j+1)*d+i]-f[i])-wantA.At(i, j)))
		}
	}
	if worst > 0.03 {
		t.Errorf("largest error in A, b %.4f, want <= 0.03 (b %v, want %v)", worst, f[:d], wantB.RawVector().Data)
	}
}

// TestAffineValidation: the affine modulator refuses a bad shape, a negative prompt count and a
// matrix table past MaxAffineParams, naming the way out.
func TestAffineValidation(t *testing.T) {
	for _, bad := range []struct {
		shape   []int
		prompts int
		want    string
	}{
		{nil, 0, "invalid noise shape"},
		{[]int{4}, -1, "negative prompt count"},
		{[]int{4, 64, 64}, 1, "use --modulator mlp"},
	} {
		if _, err := NewAffine(bad.shape, bad.prompts, ""); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("NewAffine(%v, %d): %v, want %q", bad.shape, bad.prompts, err, bad.want)
		}
	}
}

func denseRows(m mat.Matrix) [][]float32 {
	r, c := m.Dims()
	out := make([][]float32, r)
	for i := range out {
		out[i] = make([]float32, c)
		for j := range c {
			out[i][j] = float32(m.At(i, j))
		}
	}
	return out
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// TestAffineResidualPerPrompt: with 3 prompts, each row's f is its own prompt's b_c + A_c eps, with
// A_c[i, j] = W[c·D + j, i] and b_c = ShiftScale·B_c, computed here by hand from random tables.
func TestAffineResidualPerPrompt(t *testing.T) {
	b := testutil.Backend(t)
	const p, d, n = 3, 4, 5
	m, err := NewAffine([]int{2, 2}, p, "")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	W, B, eps := normalTable(rng, p*d, d), normalTable(rng, p, d), normalTable(rng, n, d)
	prompts := []int32{2, 0, 1, 2, 0}
	ctx := context.New()
	sc := ctx.InAbsPath(m.Scope())
	sc.VariableWithValue("matrix_t", W)
	sc.VariableWithValue("shift", B)
	flat := make([]float32, 0, n*d)
	for _, row := range eps {
		flat = append(flat, row...)
	}
	out, err := context.ExecOnce(b, ctx, func(ctx *context.Context, e, pr *Node) *Node {
		return m.Residual(ctx, e, pr)
	}, tensors.FromFlatDataAndDimensions(flat, n, 2, 2), tensors.FromFlatDataAndDimensions(prompts, n))
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out)
	for r, c := range prompts {
		for i := range d {
			want := m.ShiftScale * float64(B[c][i])
			for j := range d {
				want += float64(W[int(c)*d+j][i]) * float64(eps[r][j])
			}
			if diff := math.Abs(float64(got[r*d+i]) - want); diff > 1e-5 {
				t.Fatalf("row %d (prompt %d), f[%d] = %g, want %g", r, c, i, got[r*d+i], want)
			}
		}
	}
}

// normalTable is a rows x cols table of standard normal draws from rng.
func normalTable(rng *rand.Rand, rows, cols int) [][]float32 {
	v := make([][]float32, rows)
	for i := range v {
		v[i] = make([]float32, cols)
		for j := range v[i] {
			v[i][j] = float32(rng.NormFloat64())
		}
	}
	return v
}
