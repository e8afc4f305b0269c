// Command momentprobe fits the gaussian modulator's map to the tilt by its moments instead of by
// the reverse KL (issue 19, docs/convergence.md): usage momentprobe TEMPLATE OUT BETA POOL SEED.
// For each prompt c it draws POOL base noises eps_i (the tilt reference's stream, seeded SEED),
// scores g(eps_i, c) with the template's reward, weights them w_i ∝ exp(r_i/BETA), and sets
// T(eps, c) = mu_c + L_c eps with mu_c = Σ w_i eps_i and L_c the Cholesky factor of the weighted
// covariance Σ w_i (eps_i - mu_c)(eps_i - mu_c)^T / (1 - Σ w_i²): the Gaussian that minimizes the
// forward KL(tilt || N(mu_c, L_c L_c^T)) in the noise, where training minimizes the reverse one.
// SHRINK (default 0) mixes the covariance with the base's, (1 - SHRINK)·cov + SHRINK·I, for pools
// whose effective size is below the noise's dimension. It
// writes a hypernetwork folder OUT (BETA in the template's reward units: with --reward-norm, its
// spread's) with TEMPLATE's hypernet.json (a trained gaussian folder of the
// same model, reward and beta) and these weights, for `hypernoise eval` to score like any other.
package main

import (
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/eval/tilt"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/infer"
	_ "github.com/hypernoise/hypernoise/models"
	"gonum.org/v1/gonum/mat"
)

func main() {
	if len(os.Args) != 6 && len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: momentprobe TEMPLATE OUT BETA POOL SEED [SHRINK]")
		os.Exit(2)
	}
	shrink := 0.0
	if len(os.Args) == 7 {
		var err error
		shrink, err = strconv.ParseFloat(os.Args[6], 64)
		must(err)
	}
	beta, err := strconv.ParseFloat(os.Args[3], 64)
	must(err)
	pool, err := strconv.Atoi(os.Args[4])
	must(err)
	seed, err := strconv.ParseUint(os.Args[5], 10, 64)
	must(err)
	tf, err := infer.OpenFolder(os.Args[1])
	must(err)
	cfg := tf.Config
	if cfg.Modulator.Kind != infer.KindGaussian {
		must(fmt.Errorf("template %s is a %s hypernetwork, want gaussian", os.Args[1], cfg.Modulator.Kind))
	}
	backend, err := cli.Backend("")
	must(err)
	m, err := family.Load(cfg.Model, backend)
	must(err)
	rw, err := m.Rewards.Parse(cfg.RewardSpec)
	must(err)
	// A normalized reward (one term of weight 1 here) tilts by exp(r/(s·beta)) in r's own units.
	if len(cfg.RewardScale) > 1 {
		must(fmt.Errorf("template %s normalizes %d reward terms; one is supported", os.Args[1], len(cfg.RewardScale)))
	}
	for _, s := range cfg.RewardScale {
		beta *= s
	}
	rs, err := tilt.NewResampler(backend, m, rw, pool, seed)
	must(err)
	gen := m.Generator
	d := 1
	for _, s := range gen.NoiseShape() {
		d *= s
	}
	np := max(1, len(gen.Prompts()))
	table := make([][]float32, np*d)
	for i := range table {
		table[i] = make([]float32, d)
	}
	logDiag := make([][]float32, np)
	shift := make([][]float32, np)
	for p := range np {
		eps := rs.Noise(p, d)
		w, ess := rs.Weights(p, beta)
		s2 := 1 / ess
		mu := make([]float64, d)
		for i := range pool {
			for j := range d {
				mu[j] += w[i] * float64(eps[i*d+j])
			}
		}
		cov := mat.NewSymDense(d, nil)
		x := make([]float64, d)
		for i := range pool {
			if w[i] == 0 {
				continue
			}
			for j := range d {
				x[j] = float64(eps[i*d+j]) - mu[j]
			}
			cov.SymRankOne(cov, w[i]/(1-s2), mat.NewVecDense(d, x))
		}
		for i := range d { // (1 - SHRINK)·cov + SHRINK·I: the base's covariance as the target
			for j := i; j < d; j++ {
				v := (1 - shrink) * cov.At(i, j)
				if i == j {
					v += shrink
				}
				cov.SetSym(i, j, v)
			}
		}
		var ch mat.Cholesky
		if !ch.Factorize(cov) {
			must(fmt.Errorf("prompt %d: the weighted covariance is not positive definite (ESS %.0f)", p, ess))
		}
		var L mat.TriDense
		ch.LTo(&L)
		shift[p] = make([]float32, d)
		logDiag[p] = make([]float32, d)
		minSV, trace := math.Inf(1), 0.0
		for i := range d {
			shift[p][i] = float32(mu[i] / cfg.Modulator.ShiftScale)
			logDiag[p][i] = float32(math.Log(L.At(i, i)))
			trace += cov.At(i, i)
			minSV = math.Min(minSV, L.At(i, i))
			for j := range i { // W_c[i, j] = L_c[i, j] at row c·D + j, column i
				table[p*d+j][i] = float32(L.At(i, j))
			}
		}
		fmt.Printf("prompt %d: ESS %.0f of %d, |mu| %.3f, mean variance %.3f, smallest L_ii %.3f\n", p, ess, pool, norm(mu), trace/float64(d), minSV)
	}
	ctx := context.New()
	sc := ctx.InAbsPath("/" + infer.SavedScope)
	sc.VariableWithValue("matrix_t", table)
	sc.VariableWithValue("log_diag", logDiag)
	sc.VariableWithValue("shift", shift)
	must(os.MkdirAll(os.Args[2], 0o755))
	must(infer.SaveFolder(ctx, "/"+infer.SavedScope, os.Args[2], cfg, nil))
	fmt.Println("wrote", os.Args[2])
}

func norm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "momentprobe:", err)
		os.Exit(1)
	}
}
