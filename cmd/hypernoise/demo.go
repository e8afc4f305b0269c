package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/internal/safeio"
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
	asJSON := fs.Bool("json", false, "print metrics.json to stdout (progress still goes to stderr; --quiet silences it)")
	force := fs.Bool("force", false, "train the hypernetworks afresh, discarding those a previous demo left in --out")
	resume := fs.Bool("resume", false, "continue a previous demo in --out (the default when it holds one; finished parts are reused)")
	backendName := cli.BackendFlag(fs)
	seedRange(env, fs)
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
	if *force && *resume {
		return cli.Usagef("demo: --resume and --force exclude each other")
	}
	if err := safeio.CheckOutput(filepath.Join(*out, "index.html")); err != nil {
		return err
	}
	env.OnInterrupt(func() string { return demoKept(*out, args) })
	res, err := pipeline.Demo(backend, pipeline.DemoOptions{OutDir: *out, Quick: *quick, Seed: *seed, Brightness: !*noBright,
		Compositional: !*noComp, Force: *force, TrainSeeds: *trainSeeds}, log, *quiet)
	if errors.Is(err, infer.ErrRunFolder) {
		return cli.Usagef("%v", err)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return env.WriteJSON(res)
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

// demoKept says, after an interrupt, what a demo folder holds (each hypernetwork finished, or its
// checkpoint's step) and how to continue.
func demoKept(out string, args []string) string {
	var parts []string
	for _, name := range []string{"align", "brightness"} {
		dir := filepath.Join(out, "hypernet-"+name)
		if _, err := os.Stat(filepath.Join(dir, infer.WeightsFile)); err == nil {
			parts = append(parts, "hypernet-"+name+" finished")
			continue
		}
		var st struct {
			Step int `json:"step"`
		}
		if err := ckpt.ReadJSON(filepath.Join(dir, hypernet.CheckpointJSON), &st); err == nil && st.Step > 0 {
			parts = append(parts, fmt.Sprintf("hypernet-%s at step %d", name, st.Step))
		}
	}
	again := commandLine(append([]string{"demo"}, withoutForce(args)...))
	if len(parts) == 0 {
		return fmt.Sprintf("no training run was kept yet in %s; start again with: %s", out, again)
	}
	return fmt.Sprintf("kept in %s: %s; run the same command again to continue (%s), or add --force to start afresh",
		out, strings.Join(parts, ", "), again)
}

// withoutForce returns args without --force.
func withoutForce(args []string) []string {
	var out []string
	for _, a := range args {
		if t := strings.TrimLeft(a, "-"); t != "force" && t != "force=true" {
			out = append(out, a)
		}
	}
	return out
}
