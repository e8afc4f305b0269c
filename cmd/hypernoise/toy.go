package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/eval/toy2d"
	"github.com/hypernoise/hypernoise/progress"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "toy",
		Summary: "2-D exact-tilt benchmark: every method against the exact reward-tilted distribution",
		Run:     runToy,
	})
}

func runToy(env *cli.Env, args []string) error {
	def := toy2d.DefaultConfig()
	fs := env.FlagSet("toy", `Usage: hypernoise toy [--json] [--quick] [--beta B] [--reward SPEC] [--out plot.png] [flags]

Trains a one-step generator of 8 Gaussians on a ring (rectified flow, then distilled), computes
the exact reward-tilted distribution p*(x) ∝ p(x) exp(r(x)/beta) by quadrature, runs base
sampling, best-of-N, ReNO, LoRA fine-tuning and HyperNoise (LoRA modulator with the paper's
surrogate, MLP modulator, LoRA with the exact KL, LoRA with the stochastic log-det KL, and a tilt
dial: one MLP conditioned on beta, scored at beta 0.5, 1 and 2 against each exact target), and scores each by KL(target || method), total
variation, mean reward and cost. Prints a table and writes a PNG of the densities, or one JSON
object with --json. --quick finishes in under a minute on 2 cores.

Rewards: `+strings.Join(toy2d.RewardNames(), ", ")+`
Methods: `+strings.Join(toy2d.MethodNames(), ", "))
	backendName := cli.BackendFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object instead of the table")
	quick := fs.Bool("quick", false, "smaller run (under a minute)")
	beta := fs.Float64("beta", def.Beta, "tilt temperature beta (> 0)")
	reward := fs.String("reward", def.Reward, "reward spec name=weight[,name=weight]")
	methods := fs.String("methods", "", "comma-separated methods to run (default: all)")
	out := fs.String("out", "", "PNG of the densities (default toy.png without --json, none with --json)")
	seed := fs.Int64("seed", def.Seed, "random seed")
	steps := fs.Int("steps", 0, "training steps of HyperNoise and fine-tune (default 1500, quick 400)")
	batch := fs.Int("batch", def.Train.BatchSize, "training batch size")
	rank := fs.Int("rank", def.Rank, "LoRA rank of the modulator and the fine-tune")
	bestOf := fs.Int("best-of", def.BestOfN, "N of best-of-N")
	renoSteps := fs.Int("reno-steps", def.ReNO.Steps, "ReNO optimization steps")
	samples := fs.Int("samples", 0, "evaluation samples per method (default 20000, quick 6000)")
	probes := fs.Int("probes", def.LogDet.Probes, "hypernoise_logdet and hypernoise_dial: Rademacher probes per sample")
	terms := fs.Int("terms", def.LogDet.Terms, "hypernoise_logdet and hypernoise_dial: log-det series terms after the first")
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	cfg := def
	if *quick {
		cfg = toy2d.QuickConfig()
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg.Beta, cfg.Reward, cfg.Seed = *beta, *reward, *seed
	cfg.Train.BatchSize, cfg.Rank, cfg.BestOfN, cfg.ReNO.Steps = *batch, *rank, *bestOf, *renoSteps
	cfg.Train.Seed, cfg.Toy.Seed = *seed, *seed
	cfg.LogDet.Probes, cfg.LogDet.Terms = *probes, *terms
	if set["steps"] {
		cfg.Train.Steps = *steps
	}
	if set["samples"] {
		cfg.Samples = *samples
	}
	if *methods != "" {
		cfg.Methods = strings.Split(*methods, ",")
	}
	if err := cfg.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	rep, err := toy2d.Run(backend, cfg, progress.New(env.Stderr, "toy", false))
	if err != nil {
		return err
	}
	png := *out
	if png == "" && !*asJSON {
		png = "toy.png"
	}
	if png != "" {
		if err := rep.WritePNG(png); err != nil {
			return err
		}
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, rep)
	}
	fmt.Fprint(env.Stdout, rep.Table())
	if png != "" {
		fmt.Fprintf(env.Stdout, "densities written to %s\n", png)
	}
	return nil
}
