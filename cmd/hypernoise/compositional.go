package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/progress"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "compositional",
		Summary: "the compositional benchmark alone (class + attribute prompts, held-out checks) on the embedded default",
		Run:     runCompositional,
	})
}

func runCompositional(env *cli.Env, args []string) error {
	fs := env.FlagSet("compositional", `Usage: hypernoise compositional [--out DIR] [--quick] [--weights DIR] [flags]

Runs the compositional benchmark of the demo by itself: prompts that join a class with one, two or
three attributes ("a dark sneaker", "a small dark bag", "a very large very bright very wide coat";
the generator sees the class, the hypernetwork and the reward the whole prompt). It trains a LoRA
hypernetwork on the compositional reward, generates the same noises with base, best-of-N, ReNO,
HyperNoise and HyperNoise+ReNO, scores every image with held-out checks (held-out classifier for the
class, a measured ink statistic in a band set by the real test images for each attribute), applies
the same checks to the real test images when Fashion-MNIST is installed, and writes DIR/index.html
and DIR/metrics.json (key "compositional").`)
	out := fs.String("out", "hypernoise-compositional", "report folder")
	quick := fs.Bool("quick", false, "fewer training steps and seeds")
	seed := fs.Int64("seed", 1, "training seed")
	weights := fs.String("weights", "", "fashion weights folder (default: the embedded weights)")
	quiet := fs.Bool("quiet", false, "no progress output")
	asJSON := fs.Bool("json", false, "print metrics.json to stdout (progress still goes to stderr; --quiet silences it)")
	backendName := cli.BackendFlag(fs)
	seedRange(env, fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	ref := ""
	if *weights != "" {
		if _, serr := os.Stat(*weights); serr != nil {
			return cli.Usagef("compositional: --weights: %v", serr)
		}
		ref = family.JoinRef("fashion", *weights)
	}
	backend, m, err := backendAndModel(*backendName, ref, nil)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	res, err := pipeline.RunCompositional(backend, m, *out, *quick, *seed, env.Stderr, progress.New(env.Stderr, "compositional", *quiet))
	if err != nil {
		return err
	}
	if *asJSON {
		return env.WriteJSON(map[string]any{"compositional": res})
	}
	fmt.Fprint(env.Stdout, res.Text())
	fmt.Fprintf(env.Stdout, "report: %s (%.0f s)\n", filepath.Join(*out, "index.html"), res.Seconds)
	return nil
}
