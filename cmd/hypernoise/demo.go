package main

import (
	"fmt"
	"path/filepath"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/pipeline"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "demo",
		Summary: "the main job: train a hypernetwork on the embedded default, evaluate every method, write a report",
		Run:     runDemo,
	})
}

func runDemo(env *cli.Env, args []string) error {
	fs := env.FlagSet("demo", `Usage: hypernoise demo [--out DIR] [--quick] [flags]

On the embedded Fashion-MNIST generator, with no dataset and no download: trains a noise
hypernetwork for prompt alignment, compares it with base sampling, best-of-N, ReNO, fine-tuning and
HyperNoise+ReNO, trains a second one for brightness, runs the compositional benchmark (a class and
one to three attributes, such as "a small dark bag", scored by held-out checks), and writes DIR/index.html with metrics.json,
image grids and a reward-vs-seconds plot. --quick uses fewer steps and seeds (lower precision).`)
	out := fs.String("out", "hypernoise-demo", "report folder")
	quick := fs.Bool("quick", false, "fewer training steps and evaluation seeds")
	seed := fs.Int64("seed", 1, "training seed")
	noBright := fs.Bool("no-brightness", false, "skip the brightness hypernetwork")
	noComp := fs.Bool("no-compositional", false, "skip the compositional benchmark")
	trainSeeds := fs.Int("train-seeds", 1, "also train the align hypernetwork and rerun the compositional benchmark with this many training seeds in all, and report mean and std")
	quiet := fs.Bool("quiet", false, "no progress output")
	asJSON := fs.Bool("json", false, "print metrics.json to stdout")
	backendName := cli.BackendFlag(fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	if *trainSeeds < 1 || *trainSeeds > pipeline.MaxTrainSeeds {
		return cli.Usagef("demo: --train-seeds must be in [1, %d], got %d", pipeline.MaxTrainSeeds, *trainSeeds)
	}
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	log := env.Stderr
	res, err := pipeline.Demo(backend, pipeline.DemoOptions{OutDir: *out, Quick: *quick, Seed: *seed, Brightness: !*noBright, Compositional: !*noComp, TrainSeeds: *trainSeeds}, log, *quiet || *asJSON)
	if err != nil {
		return err
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, res)
	}
	fmt.Fprint(env.Stdout, res.Align.Text())
	if res.Brightness != nil {
		fmt.Fprintf(env.Stdout, "\nbrightness reward:\n%s", res.Brightness.Text())
	}
	if res.Compositional != nil {
		fmt.Fprintf(env.Stdout, "\ncompositional prompts:\n%s", res.Compositional.Text())
	}
	if res.AlignSeeds != nil {
		fmt.Fprintf(env.Stdout, "\nalign, %s", res.AlignSeeds.Text())
	}
	if res.CompositionalSeeds != nil {
		fmt.Fprintf(env.Stdout, "compositional, %s", res.CompositionalSeeds.Text())
	}
	fmt.Fprintf(env.Stdout, "report: %s (%.0f s)\n", filepath.Join(*out, "index.html"), res.Seconds)
	return nil
}
