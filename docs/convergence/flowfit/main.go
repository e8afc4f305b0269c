// Command flowfit trains a flow modulator on the forward KL to the tilt instead of the reverse one
// (issue 19, docs/convergence.md): usage flowfit TEMPLATE OUT BETA POOL SEED STEPS. For each prompt c
// it draws POOL base noises eps_i (the tilt reference's stream, seeded SEED), scores g(eps_i, c)
// with the template's reward, and resamples POOL of them with weights w_i ∝ exp(r_i/BETA): a
// sample of the tilt in the noise. The flow T (TEMPLATE's architecture, a trained flow folder of the
// same model and reward) is then fitted by maximum likelihood to those samples, minimizing
// E_tilt[-log q(z)] = E[½||T^{-1}(z)||² + log|det dT/deps|(T^{-1}(z))] + const for q = T#N(0, I): the
// forward KL(tilt || q) up to the tilt's entropy, without a reward gradient. Batch 64, AdamW at lr
// 1e-3 with a cosine decay; it writes the folder OUT (TEMPLATE's hypernet.json, these weights).
package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/eval/tilt"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	_ "github.com/hypernoise/hypernoise/models"
)

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: flowfit TEMPLATE OUT BETA POOL SEED STEPS")
		os.Exit(2)
	}
	beta, err := strconv.ParseFloat(os.Args[3], 64)
	must(err)
	pool, err := strconv.Atoi(os.Args[4])
	must(err)
	seed, err := strconv.ParseUint(os.Args[5], 10, 64)
	must(err)
	steps, err := strconv.Atoi(os.Args[6])
	must(err)
	tf, err := infer.OpenFolder(os.Args[1])
	must(err)
	cfg := tf.Config
	backend, err := cli.Backend("")
	must(err)
	m, err := family.Load(cfg.Model, backend)
	must(err)
	rw, err := m.Rewards.Parse(cfg.RewardSpec)
	must(err)
	for _, s := range cfg.RewardScale {
		beta *= s
	}
	rs, err := tilt.NewResampler(backend, m, rw, pool, seed)
	must(err)
	gen := m.Generator
	shape := gen.NoiseShape()
	d := 1
	for _, s := range shape {
		d *= s
	}
	np := max(1, len(gen.Prompts()))
	table := make([]float32, 0, np*pool*d)
	rng := rand.New(rand.NewPCG(seed, 7))
	for p := range np {
		eps := rs.Noise(p, d)
		w, ess := rs.Weights(p, beta)
		cum := make([]float64, pool)
		s := 0.0
		for i := range w {
			s += w[i]
			cum[i] = s
		}
		distinct := map[int]bool{}
		for range pool { // multinomial resampling
			u := rng.Float64() * s
			lo, hi := 0, pool-1
			for lo < hi {
				mid := (lo + hi) / 2
				if cum[mid] < u {
					lo = mid + 1
				} else {
					hi = mid
				}
			}
			distinct[lo] = true
			table = append(table, eps[lo*d:(lo+1)*d]...)
		}
		fmt.Printf("prompt %d: ESS %.0f, %d distinct of %d resampled\n", p, ess, len(distinct), pool)
	}
	mod, err := cfg.Modulator.Build(gen, infer.SavedScope)
	must(err)
	inv, ok := mod.(hypernet.Invertible)
	if !ok {
		must(fmt.Errorf("template %s: a %s modulator has no inverse", os.Args[1], cfg.Modulator.Kind))
	}
	ctx := context.New()
	poolT := ctx.InAbsPath("/pool").Checked(false).VariableWithValue("table", table).SetTrainable(false)
	prob := &hypernet.Problem{
		Name: "flowfit", Scope: "/" + infer.SavedScope, NoiseShape: shape, NumPrompts: len(gen.Prompts()),
		StepCost: hypernet.Cost{Forward: 1, Backward: 1}, Models: "the tilt's pool", Saves: "hypernetwork",
		Loss: func(ctx *context.Context, eps, prompts *Node) (*Node, []hypernet.Metric) {
			g := eps.Graph()
			b := eps.Shape().Dim(0)
			u := ctx.RandomUniform(g, shapes.Make(dtypes.Float32, b))
			row := Add(MulScalar(ConvertDType(prompts, dtypes.Float32), float64(pool)), Floor(MulScalar(u, float64(pool)-1e-3)))
			z := Gather(Reshape(poolT.ValueGraph(g), np*pool, d), ExpandAxes(ConvertDType(row, dtypes.Int32), -1))
			z = Reshape(z, append([]int{b}, shape...)...)
			back, ld := inv.Inverse(ctx, z, prompts)
			nll := Add(MulScalar(ReduceSum(Reshape(Square(back), b, d), -1), 0.5), ld)
			return nll, []hypernet.Metric{{Name: "nll", Value: nll}}
		},
	}
	tc := hypernet.DefaultAdamW()
	tc.Steps, tc.BatchSize, tc.LR, tc.WarmupSteps, tc.Schedule, tc.Seed = steps, 64, 1e-3, 20, hypernet.ScheduleCosine, 1
	res, err := hypernet.Train(backend, ctx, prob, tc, nil)
	must(err)
	fmt.Printf("trained %d steps in %.1fs\n", steps, res.Seconds)
	must(os.MkdirAll(os.Args[2], 0o755))
	must(infer.SaveFolder(ctx, "/"+infer.SavedScope, os.Args[2], cfg, nil))
	fmt.Println("wrote", os.Args[2])
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowfit:", err)
		os.Exit(1)
	}
}
