package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hypernoise/hypernoise/bench"
	"github.com/hypernoise/hypernoise/cli"
)

// usesModel reports whether bench's arguments name --model (then runBenchModel runs instead).
func usesModel(args []string) bool {
	return slices.ContainsFunc(args, func(a string) bool {
		return a == "--model" || a == "-model" || strings.HasPrefix(a, "--model=") || strings.HasPrefix(a, "-model=")
	})
}

// runBenchModel is `hypernoise bench --model SPEC`: times an imported model (bench.RunModel).
func runBenchModel(env *cli.Env, args []string) error {
	fs := env.FlagSet("bench", `Usage: hypernoise bench --model SPEC [--json] [--batch N] [--steps N] [--rank R] [--reward SPEC]
                       [--torch-cmd CMD] [--no-ort] [--backend NAME]

Times an imported model: spec load and graph check, the first forward at --batch (graph build,
compile, run), the forward in ms per image, one HyperNoise training step (LoRA rank --rank, AdamW),
one ReNO iteration in ms per image, the estimate of onnx.Model.EstimateBytes and the peak memory.
Then, in the same run, PyTorch's figures from --torch-cmd (a command printing one JSON line, e.g.
"/usr/bin/python3 models/onnx/testdata/make_t2i.py --size small --bench --batch 2") and
onnxruntime's (scripts/ort_bench.js, when node and npm's onnxruntime-node in .ort/ are installed).`)
	backendName := cli.BackendFlag(fs)
	spec := fs.String("model", "", modelFlagUsage)
	asJSON := fs.Bool("json", false, "print one JSON object")
	batch := fs.Int("batch", 2, "images per forward, training step and ReNO run")
	steps := fs.Int("steps", 3, "timed forwards, training steps and ReNO iterations")
	rank := fs.Int("rank", 8, "LoRA rank of the HyperNoise step (0: skip it)")
	reward := fs.String("reward", "", "reward spec of the training and ReNO steps (default: the spec's first reward)")
	torchCmd := fs.String("torch-cmd", "", "command printing PyTorch's figures as one JSON line")
	noORT := fs.Bool("no-ort", false, "do not run onnxruntime")
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	switch {
	case *spec == "":
		return cli.Usagef("--model must name a spec")
	case *batch < 1 || *batch > 4096:
		return cli.Usagef("--batch must be in [1, 4096], got %d", *batch)
	case *steps < 1 || *steps > 1000:
		return cli.Usagef("--steps must be in [1, 1000], got %d", *steps)
	case *rank < 0 || *rank > 512:
		return cli.Usagef("--rank must be in [0, 512], got %d", *rank)
	}
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	o := bench.ModelOptions{Batch: *batch, Steps: *steps, Rank: *rank, Reward: *reward, TorchCmd: *torchCmd}
	if !*noORT {
		o.ORTScript = bench.FindORTScript()
	}
	if !*asJSON {
		o.Log = func(line string) { fmt.Fprintln(env.Stderr, "bench: "+line) }
	}
	res, err := bench.RunModel(backend, *spec, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, res)
	}
	writeModelTable(env.Stdout, res)
	return nil
}

// writeModelTable prints RunModel's figures, one per line.
func writeModelTable(w io.Writer, r *bench.ModelResult) {
	fmt.Fprintf(w, "model %s, batch %d\n", r.Spec, r.Batch)
	fmt.Fprintf(w, "load + check          %8.2f s\n", r.LoadS)
	fmt.Fprintf(w, "first call            %8.2f s\n", r.FirstCallS)
	fmt.Fprintf(w, "forward               %8.1f ms/image\n", r.ForwardMSPerImage)
	if r.HypernetStepMS != nil {
		fmt.Fprintf(w, "hypernoise step       %8.0f ms\n", *r.HypernetStepMS)
	}
	if r.RenoStepMSImage != nil {
		fmt.Fprintf(w, "reno step             %8.1f ms/image\n", *r.RenoStepMSImage)
	}
	fmt.Fprintf(w, "weights               %8s\n", cli.FormatBytes(r.WeightBytes))
	fmt.Fprintf(w, "estimate fwd / train  %8s / %s\n", cli.FormatBytes(r.EstimateForward), cli.FormatBytes(r.EstimateTrain))
	fmt.Fprintf(w, "peak memory           %8s\n", cli.FormatBytes(r.PeakRSS))
	if r.Torch != nil {
		fmt.Fprintf(w, "pytorch               %v\n", r.Torch)
	}
	if r.ORT != nil {
		fmt.Fprintf(w, "onnxruntime           %v\n", r.ORT)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "not measured: %s\n", e)
	}
}
