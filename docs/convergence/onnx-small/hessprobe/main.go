// Command hessprobe asks whether a noise map that follows the reward's curvature could pass the
// per-prompt constant shift's ceiling on the small T2I fixture (issue 19, docs/convergence.md): usage
// hessprobe SPEC N [M]. For each prompt c it takes N noises eps_i (seed 77) and the pathwise gradients
// g_i = dr/deps (the raw CLIP reward), and models the reward as quadratic in the noise,
// r(eps) ≈ r_c + g_c·eps + ½ eps^T H_c eps. g_c is the gradients' mean. H_c is estimated, by
// Stein's identity E[(g - g_c) eps^T] = E[∇²r], inside the span V_k of the k leading principal
// directions of the deviations g_i - g_c: H_k = sym(V_k^T (1/N) Σ (g_i - g_c) eps_i^T V_k).
// Under N(0, I) the tilt exp(r/beta) of such a reward is Gaussian with precision P = I - H/beta
// and mean P^{-1} g_c/beta, reached from eps by the affine map
//
//	eps -> eps + V_k (P_k^{-1/2} - I) V_k^T eps + V_k P_k^{-1} V_k^T g_c/beta + (I - V_k V_k^T) g_c/beta.
//
// It prints the mean reward over fresh noises (seed 99, M per prompt, default N) at eps, at the constant shift
// g_c/beta (k = 0), and at that map for several k: if the quadratic model and the sampled H_k hold,
// the map's gain is the tilt's, and what it adds to k = 0 is what a curvature-following modulator
// could add. beta is the study's (0.1 in units of the reward's spread 5.239, 1/1.908 in its own).
package main

import (
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	_ "github.com/hypernoise/hypernoise/models"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// chunk is the batch of every call.
const chunk = 4

// invBeta is 1/beta in the reward's units for `--reward-norm std --beta 0.1` (0.1 x 5.239).
const invBeta = 1.908

// maxCurv caps each eigenvalue of H_k/beta below 1, where the quadratic tilt would be improper.
const maxCurv = 0.9

func main() {
	if len(os.Args) != 3 && len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: hessprobe SPEC N [M] (N, M positive multiples of 4)")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < chunk || n%chunk != 0 {
		fmt.Fprintln(os.Stderr, "hessprobe: N must be a positive multiple of 4, got", os.Args[2])
		os.Exit(2)
	}
	nEval := n
	if len(os.Args) == 4 {
		nEval, err = strconv.Atoi(os.Args[3])
		if err != nil || nEval < chunk || nEval%chunk != 0 {
			fmt.Fprintln(os.Stderr, "hessprobe: M must be a positive multiple of 4, got", os.Args[3])
			os.Exit(2)
		}
	}
	backend, err := cli.Backend("")
	must(err)
	m, err := family.Load(os.Args[1], backend)
	must(err)
	rw, err := m.Rewards.Parse("clip=1")
	must(err)
	gen := m.Generator
	shape := gen.NoiseShape()
	d := 1
	for _, s := range shape {
		d *= s
	}
	gradExec, err := context.NewExec(backend, m.Context, func(ctx *context.Context, eps, prompts *graph.Node) []*graph.Node {
		r := rw.Score(ctx, gen.Generate(ctx, eps, prompts), prompts)
		return []*graph.Node{r, graph.Gradient(graph.ReduceAllSum(r), eps)[0]}
	})
	must(err)
	rExec, err := context.NewExec(backend, m.Context, func(ctx *context.Context, eps, prompts *graph.Node) *graph.Node {
		return rw.Score(ctx, gen.Generate(ctx, eps, prompts), prompts)
	})
	must(err)
	prompts := func(c int) *tensors.Tensor {
		pr := make([]int32, chunk)
		for i := range pr {
			pr[i] = int32(c)
		}
		return tensors.FromFlatDataAndDimensions(pr, chunk)
	}
	ks := []int{0}
	for k := 2; k < n; k *= 4 {
		ks = append(ks, k)
	}
	ks = append(ks, n-1)
	totals := make([]float64, len(ks)+1) // base, then each k
	np := len(gen.Prompts())
	for c := range np {
		// Gradients at N noises of seed 77.
		epsS := make([][]float64, 0, n)
		grads := make([][]float64, 0, n)
		for k := 0; k < n; k += chunk {
			eps := hypernet.Normal(77, uint64(1000*c+k), chunk*d)
			outs, err := gradExec.Exec(tensors.FromFlatDataAndDimensions(eps, append([]int{chunk}, shape...)...), prompts(c))
			must(err)
			g := tensors.MustCopyFlatData[float32](outs[1])
			for i := range chunk {
				e, v := make([]float64, d), make([]float64, d)
				for j := range d {
					e[j], v[j] = float64(eps[i*d+j]), float64(g[i*d+j])
				}
				epsS, grads = append(epsS, e), append(grads, v)
			}
		}
		mean := make([]float64, d)
		for _, g := range grads {
			floats.AddScaled(mean, 1/float64(n), g)
		}
		dev := mat.NewDense(n, d, nil)
		for i, g := range grads {
			row := dev.RawRowView(i)
			floats.SubTo(row, g, mean)
		}
		// Principal directions of the deviations, from the n x n Gram matrix.
		var gram mat.SymDense
		gram.SymOuterK(1, dev)
		var eig mat.EigenSym
		if !eig.Factorize(&gram, true) {
			must(fmt.Errorf("eigen decomposition failed"))
		}
		vals := eig.Values(nil)
		var u mat.Dense
		eig.VectorsTo(&u)
		order := make([]int, n) // descending
		for i := range order {
			order[i] = n - 1 - i
		}
		fmt.Printf("prompt %d: deviation variance per direction (top 8):", c)
		for _, i := range order[:8] {
			fmt.Printf(" %.4f", vals[i]/float64(n))
		}
		fmt.Printf(" | total %.4f\n", floats.Sum(vals)/float64(n))
		for ki, k := range ks {
			// V_k: d x k, orthonormal, V = dev^T u / sqrt(val).
			var V *mat.Dense
			var shiftIn, mapM *mat.Dense
			shift := make([]float64, d)
			floats.AddScaled(shift, invBeta, mean)
			if k > 0 {
				V = mat.NewDense(d, k, nil)
				for j := range k {
					col := order[j]
					s := math.Sqrt(vals[col])
					for r := range d {
						var acc float64
						for i := range n {
							acc += dev.At(i, r) * u.At(i, col)
						}
						V.Set(r, j, acc/s)
					}
				}
				// H_k = sym(V^T (1/n) Σ dev_i eps_i^T V).
				A := mat.NewDense(k, n, nil) // V^T dev_i
				B := mat.NewDense(k, n, nil) // V^T eps_i
				for i := range n {
					for j := range k {
						var a, b float64
						for r := range d {
							a += V.At(r, j) * dev.At(i, r)
							b += V.At(r, j) * epsS[i][r]
						}
						A.Set(j, i, a)
						B.Set(j, i, b)
					}
				}
				var H mat.Dense
				H.Mul(A, B.T())
				H.Scale(1/float64(n), &H)
				hs := mat.NewSymDense(k, nil)
				for a := range k {
					for b := range k {
						hs.SetSym(a, b, (H.At(a, b)+H.At(b, a))/2)
					}
				}
				var he mat.EigenSym
				if !he.Factorize(hs, true) {
					must(fmt.Errorf("eigen decomposition of H_k failed"))
				}
				hv := he.Values(nil)
				var W mat.Dense
				he.VectorsTo(&W)
				// P^{-1/2} - I and P^{-1} in the eigenbasis W: p = 1 - min(h/beta, maxCurv).
				dm := mat.NewDiagDense(k, nil)
				di := mat.NewDiagDense(k, nil)
				fmt.Printf("  k=%d H_k/beta eigenvalues: min %.3f max %.3f, sum %.3f\n", k, hv[0]*invBeta, hv[k-1]*invBeta, floats.Sum(hv)*invBeta)
				for j, h := range hv {
					q := math.Min(h*invBeta, maxCurv)
					dm.SetDiag(j, 1/math.Sqrt(1-q)-1)
					di.SetDiag(j, 1/(1-q))
				}
				var t1, t2 mat.Dense
				t1.Mul(&W, dm)
				mapM = mat.NewDense(k, k, nil)
				mapM.Mul(&t1, W.T()) // P^{-1/2} - I in V coordinates
				t2.Mul(&W, di)
				var pinv mat.Dense
				pinv.Mul(&t2, W.T())
				// The shift: V (P^{-1} - I) V^T g/beta added to g/beta.
				gv := mat.NewVecDense(k, nil)
				gv.MulVec(V.T(), mat.NewVecDense(d, shift))
				pv := mat.NewVecDense(k, nil)
				pv.MulVec(&pinv, gv)
				pv.SubVec(pv, gv)
				add := mat.NewVecDense(d, nil)
				add.MulVec(V, pv)
				floats.Add(shift, add.RawVector().Data)
				shiftIn = V
			}
			// Mean reward over n fresh noises (seed 99) under the map.
			for k2 := 0; k2 < nEval; k2 += chunk {
				eps := hypernet.Normal(99, uint64(1000*c+k2), chunk*d)
				out := make([]float32, len(eps))
				for i := range chunk {
					e := make([]float64, d)
					for j := range d {
						e[j] = float64(eps[i*d+j])
					}
					y := make([]float64, d)
					copy(y, e)
					floats.Add(y, shift)
					if k > 0 {
						z := mat.NewVecDense(k, nil)
						z.MulVec(shiftIn.T(), mat.NewVecDense(d, e))
						w := mat.NewVecDense(k, nil)
						w.MulVec(mapM, z)
						add := mat.NewVecDense(d, nil)
						add.MulVec(shiftIn, w)
						floats.Add(y, add.RawVector().Data)
					}
					for j := range d {
						out[i*d+j] = float32(y[j])
					}
				}
				if ki == 0 {
					base, err := rExec.Exec(tensors.FromFlatDataAndDimensions(eps, append([]int{chunk}, shape...)...), prompts(c))
					must(err)
					for _, v := range tensors.MustCopyFlatData[float32](base[0]) {
						totals[0] += float64(v) / float64(nEval*np)
					}
				}
				r, err := rExec.Exec(tensors.FromFlatDataAndDimensions(out, append([]int{chunk}, shape...)...), prompts(c))
				must(err)
				for _, v := range tensors.MustCopyFlatData[float32](r[0]) {
					totals[ki+1] += float64(v) / float64(nEval*np)
				}
			}
		}
	}
	fmt.Printf("mean reward over prompts, fresh noises: base %.4f\n", totals[0])
	for ki, k := range ks {
		fmt.Printf("  k=%2d: %.4f (gain %.4f)\n", k, totals[ki+1], totals[ki+1]-totals[0])
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
