package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/progress"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "zoo",
		Summary: "the embedded Fashion-MNIST models: train a part (zoo train <part>) or show their figures (zoo info)",
		Run:     runZoo,
	})
}

func runZoo(env *cli.Env, args []string) error {
	if len(args) == 0 {
		return cli.Usagef("want a subcommand: train <part> | info (see hypernoise zoo --help)")
	}
	switch args[0] {
	case "train":
		return runZooTrain(env, args[1:])
	case "info":
		return runZooInfo(env, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintf(env.Stdout, "Usage:\n  hypernoise zoo train <part|all> [flags]   parts: %s\n  hypernoise zoo info [--json|--markdown] [--weights DIR]\n",
			strings.Join(fashion.Parts, ", "))
		return nil
	}
	return cli.Usagef("unknown subcommand %q; want train or info", args[0])
}

func runZooTrain(env *cli.Env, args []string) error {
	fs := env.FlagSet("zoo train", `Usage: hypernoise zoo train <part|all> [flags]

Trains one part of the Fashion-MNIST pipeline (`+strings.Join(fashion.Parts, ", ")+`), or all of them
in that order, evaluates it, and writes its weights and figures into --out (by default the folder
the binary embeds, so the command reproduces the shipped weights). Progress is checkpointed
atomically every 100 steps in --state; running the same command again resumes an interrupted run.`)
	out := fs.String("out", filepath.Join("models", "fashion", fashion.WeightsDir), "weights folder (read for earlier parts, written)")
	state := fs.String("state", fashion.DefaultStateDir(), "folder for resumable training state")
	data := fs.String("data", "", "Fashion-MNIST folder (default "+"/usr/share/datasets/fashion-mnist)")
	steps := fs.Int("steps", 0, "training steps (0: the part's default)")
	pairs := fs.Int("pairs", 0, "student: number of distillation pairs (0: the default)")
	samples := fs.Int("eval-samples", 0, "generated images per evaluation (0: the default)")
	arch := fs.String("arch", fashion.CurrentArch, "architecture of autoencoder, teacher and student: "+fashion.ArchV2+" (the shipped weights': residual autoencoder with a perceptual loss, U-Net flow, adversarial student) or "+fashion.ArchV1+" (the earlier default: MLP flow, regression-only student)")
	quiet := fs.Bool("quiet", false, "no progress output")
	backendName := cli.BackendFlag(fs)
	// Allow the part before or after the flags.
	var part string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		part, args = args[0], args[1:]
	}
	zooRanges(env, fs)
	if err := env.Parse(fs, args, true); err != nil {
		return err
	}
	if part == "" && fs.NArg() > 0 {
		part = fs.Arg(0)
	}
	if part == "" {
		return cli.Usagef("train: want a part: %s, or all", strings.Join(fashion.Parts, ", "))
	}
	parts := []string{part}
	if part == "all" {
		parts = fashion.Parts
	} else if _, ok := fashion.DefaultConfigs[part]; !ok {
		return cli.Usagef("train: unknown part %q; parts: %s, all", part, strings.Join(fashion.Parts, ", "))
	}
	if *pairs < 0 || *samples < 0 || (*samples > 0 && *samples < 10) {
		return cli.Usagef("train: --pairs must be >= 0 and --eval-samples 0 or >= 10")
	}
	if *arch != fashion.ArchV1 && *arch != fashion.ArchV2 {
		return cli.Usagef("train: --arch must be %s or %s, got %q", fashion.ArchV1, fashion.ArchV2, *arch)
	}
	if *steps < 0 {
		return cli.Usagef("train: --steps must be >= 0, got %d", *steps)
	}
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	for _, p := range parts {
		opt := fashion.TrainOptions{Out: *out, State: *state, DataDir: *data,
			Command:  "hypernoise zoo train " + p,
			Progress: progress.New(env.Stderr, "zoo train "+p, *quiet), Log: env.Stdout,
			Pairs: *pairs, Samples: *samples, Arch: *arch}
		if *arch != fashion.CurrentArch {
			opt.Command += " --arch " + *arch
		}
		if *steps > 0 {
			c := fashion.ConfigFor(p, *arch)
			c.Steps = *steps
			opt.Config = &c
			opt.Command += fmt.Sprintf(" --steps %d", *steps)
		}
		if *pairs > 0 {
			opt.Command += fmt.Sprintf(" --pairs %d", *pairs)
		}
		if *samples > 0 {
			opt.Command += fmt.Sprintf(" --eval-samples %d", *samples)
		}
		fig, err := fashion.Train(backend, p, opt)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s: %d parameters, %.2f MB, %.0f s; figures:", p, fig.Params, float64(fig.Bytes)/1e6, fig.WallSeconds)
		keys := make([]string, 0, len(fig.Metrics))
		for k := range fig.Metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(env.Stdout, " %s=%.4g", k, fig.Metrics[k])
		}
		fmt.Fprintln(env.Stdout)
	}
	return nil
}

func runZooInfo(env *cli.Env, args []string) error {
	fs := env.FlagSet("zoo info", `Usage: hypernoise zoo info [--json|--markdown] [--weights DIR]

Prints each embedded Fashion-MNIST model's size and the figures its training run measured.`)
	asJSON := fs.Bool("json", false, "print JSON")
	asMD := fs.Bool("markdown", false, "print a Markdown table (the model card's)")
	dir := fs.String("weights", "", "read weights from this folder instead of the embedded ones")
	zooRanges(env, fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	var m *fashion.Model
	var err error
	if *dir != "" {
		if _, serr := os.Stat(*dir); serr != nil {
			return cli.Usagef("info: --weights: %v", serr)
		}
		m, err = fashion.Load(*dir)
	} else {
		m, err = fashion.Default()
	}
	if err != nil {
		return err
	}
	figs := m.Figures()
	if figs == nil {
		return errors.New("the weights have no figures.json (train them with hypernoise zoo train all)")
	}
	if *asJSON {
		return env.WriteJSON(figs)
	}
	if *asMD {
		_, err := fmt.Fprint(env.Stdout, figs.Markdown())
		return err
	}
	for _, p := range fashion.Parts {
		f, ok := figs[p]
		if !ok {
			fmt.Fprintf(env.Stdout, "%-13s not trained\n", p)
			continue
		}
		keys := make([]string, 0, len(f.Metrics))
		for k := range f.Metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%.4g", k, f.Metrics[k])
		}
		fmt.Fprintf(env.Stdout, "%-13s %8d params %6.2f MB %5.0f s |%s\n", p, f.Params, float64(f.Bytes)/1e6, f.WallSeconds, b.String())
	}
	return nil
}
