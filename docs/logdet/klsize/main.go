// Command klsize measures, for trained hypernetworks on the embedded Fashion default, the two parts
// of KL(T#N || N) = E[1/2||f||^2 + V] on 320 noises (10 prompts x 32): the surrogate's 1/2||f||^2
// and the volume term V = Σ_{k=2}^{7} (-1)^k tr(J_f^k)/k that the surrogate drops, estimated with
// 8 Rademacher probes per noise (hypernet.LogDetSeries), with the gain (a lower estimate of
// ||J_f||_2) and the share of diverging series. Usage: go run ./docs/logdet/klsize DIR...
package main

import (
	"fmt"
	"math/rand/v2"
	"os"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/pipeline"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(dirs []string) error {
	backend, err := compute.NewBackend("")
	if err != nil {
		return err
	}
	m, err := fashion.Default()
	if err != nil {
		return err
	}
	folders, err := infer.OpenFolders(dirs...)
	if err != nil {
		return err
	}
	p, err := pipeline.NewPipeline(backend, fashion.ModelOf(m), folders...)
	if err != nil {
		return err
	}
	const perPrompt, probes = 32, 8
	n := perPrompt * len(m.Prompts())
	eps := hypernet.NoiseTensor(2025, 7001, n, m.NoiseShape())
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i / perPrompt)
	}
	d := 1
	for _, s := range m.NoiseShape() {
		d *= s
	}
	r := rand.New(rand.NewPCG(7, 11))
	v := make([]float32, probes*n*d)
	for i := range v {
		v[i] = float32(2*r.IntN(2) - 1)
	}
	cfg := hypernet.LogDet{Probes: probes, Terms: 6, GuardMax: 0.8}
	fmt.Println("| hypernetwork | regularizer | beta | 1/2 E||f||^2 | volume term E[V] | gain | diverged |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, hn := range p.Hypernets() {
		var outs []*tensors.Tensor
		err := p.Update(func(ctx *context.Context) error {
			e, err := context.NewExec(backend, ctx, func(ctx *context.Context, eps, prompts, v *Node) []*Node {
				f := hn.Modulator.Residual(ctx, eps, prompts)
				s := hypernet.LogDetSeries(eps, f, v, cfg)
				return []*Node{ReduceAllMean(hypernet.KLSurrogate(f)), ReduceAllMean(s.Value), ReduceAllMean(s.Gain), ReduceAllMean(s.Diverged)}
			})
			if err != nil {
				return err
			}
			defer e.Finalize()
			outs, err = e.Exec(eps, tensors.FromValue(ids), tensors.FromFlatDataAndDimensions(v, probes, n, d))
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", hn.Dir, err)
		}
		val := func(t *tensors.Tensor) float64 { return float64(tensors.MustCopyFlatData[float32](t)[0]) }
		fmt.Printf("| %s | %s | %g | %.3f | %.4f | %.3f | %.1f%% |\n", hn.Name, hn.Config.Reg, hn.Config.Beta,
			val(outs[0]), val(outs[1]), val(outs[2]), 100*val(outs[3]))
	}
	return nil
}
