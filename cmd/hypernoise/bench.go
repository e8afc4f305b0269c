package main

import (
	"fmt"
	"os"

	"github.com/hypernoise/hypernoise/bench"
	"github.com/hypernoise/hypernoise/cli"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "bench",
		Summary: "time matmul, the HyperNoise step, ReNO and sampling, beside PyTorch when installed",
		Run:     runBench,
	})
}

func runBench(env *cli.Env, args []string) error {
	fs := env.FlagSet("bench", `Usage: hypernoise bench [--json] [--backend NAME] [--dtype f32|bf16] [--torch-dir DIR | --no-torch]
       hypernoise bench --model SPEC.json [--batch N] [--rank R] [--reward SPEC] [--backend NAME] [--dtype f32|bf16] [--json]
       hypernoise bench --model SPEC.json --scale [--batch N] [--rank R] [--steps N] [--rounds R] [--torch-cmd CMD] [--no-ort] [--json]

Times, on the selected backend: a 1024^3 float32 matmul (GFLOP/s), one HyperNoise training step on
the embedded default or --model (batch 32, LoRA rank 8 or an MLP for a generator without a
backbone, the model's default reward, AdamW), one ReNO iteration and one HyperNoise sample (ms per
image), and the MLP and conv-net training steps of the compute benchmarks.
When /usr/bin/python3 has torch, the PyTorch scripts in ../shared/bench (or --torch-dir) time the same
steps in the same run and each ratio is printed. Takes a few minutes. With --model, it times only the
HyperNoise training step on that model (the step make_t2i.py --bench times in PyTorch), the first
step (compilation) apart from the median of the others.`)
	backendName := cli.BackendFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object")
	torchDir := fs.String("torch-dir", "", "folder with the PyTorch scripts (default: ../shared/bench above the working directory)")
	noTorch := fs.Bool("no-torch", false, "do not run the PyTorch scripts")
	python := fs.String("python", bench.DefaultPython, "Python interpreter with torch")
	steps := fs.Int("steps", 10, "timed steps per training benchmark")
	modelRef := modelFlag(fs)
	dtype := dtypeFlag(fs)
	model := addModelBenchFlags(fs)
	scale := addScaleFlags(fs)
	benchRanges(env, fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	if *steps < 1 || *steps > 1000 {
		return cli.Usagef("--steps must be in [1, 1000], got %d", *steps)
	}
	name, err := dtypeBackend(*backendName, *dtype)
	if err != nil {
		return err
	}
	if *scale.scale {
		return runScaleBench(env, scale, model, *modelRef, name, *steps, *asJSON)
	}
	if *modelRef != "" && (flagSet(fs, "batch") || flagSet(fs, "rank") || flagSet(fs, "reward")) {
		return runModelBench(env, model, *modelRef, name, *steps, *asJSON)
	}
	dir := *torchDir
	if *noTorch {
		if dir != "" {
			return cli.Usagef("--torch-dir and --no-torch exclude each other")
		}
	} else if dir == "" {
		dir = bench.FindTorchDir()
	} else if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return cli.Usagef("--torch-dir %q is not a folder", dir)
	}
	backend, err := cli.Backend(name)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	opts := bench.Options{TorchDir: dir, Python: *python, Steps: *steps}
	if *modelRef != "" {
		if opts.Model, err = loadModel(*modelRef, nil, backend); err != nil {
			return err
		}
	}
	if !*asJSON {
		opts.Log = func(line string) { fmt.Fprintln(env.Stderr, "bench: "+line) }
	}
	res, err := bench.Run(backend, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		return env.WriteJSON(res)
	}
	bench.WriteTable(env.Stdout, res)
	if !*noTorch && res.Torch == nil {
		why := res.TorchError
		if dir == "" {
			why = "no ../shared/bench folder found; pass --torch-dir"
		}
		fmt.Fprintf(env.Stdout, "PyTorch: not run (%s)\n", why)
	}
	return nil
}
