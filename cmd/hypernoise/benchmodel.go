package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hypernoise/hypernoise/bench"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/models/onnx"
)

// scaleFlags are bench's flags for --scale: per-stage timing of an imported model.
type scaleFlags struct {
	scale, noORT *bool
	torchCmd     *string
	rounds       *int
	warmup       *int
}

func addScaleFlags(fs *flag.FlagSet) scaleFlags {
	return scaleFlags{
		scale: fs.Bool("scale", false, "--model SPEC.json: time every stage of an imported model (load and graph check, first call, "+
			"forward, HyperNoise step, ReNO step, estimate and peak memory), beside PyTorch (--torch-cmd) and onnxruntime"),
		torchCmd: fs.String("torch-cmd", "", "--scale: a command printing PyTorch's figures as one JSON line, e.g. "+
			"\"/usr/bin/python3 models/onnx/testdata/make_t2i.py --size small --bench --batch 2\""),
		noORT: fs.Bool("no-ort", false, "--scale: do not run onnxruntime (scripts/ort_bench.js, npm onnxruntime-node in .ort/)"),
		rounds: fs.Int("rounds", 1, "--scale: time our forward and onnxruntime's this many times, alternately, and print each ratio and their median "+
			"(a shared machine's speed drifts between two single runs)"),
		warmup: fs.Int("warmup", 0, "--scale: untimed forwards after the first call, before the timed ones, ours and onnxruntime's "+
			"(a process's first forwards run slower than its later ones)"),
	}
}

// runScaleBench is `hypernoise bench --model SPEC.json --scale`: bench.RunModel on an ONNX spec.
func runScaleBench(env *cli.Env, sf scaleFlags, mf modelBenchFlags, ref, backendName string, steps int, asJSON bool) error {
	spec := strings.TrimPrefix(ref, onnx.FamilyName+":")
	switch {
	case !onnx.Family.Accepts(spec):
		return cli.Usagef("--scale needs --model SPEC.json (an imported model), got %q", ref)
	case *mf.batch < 1 || *mf.batch > 4096:
		return cli.Usagef("--batch must be in [1, 4096], got %d", *mf.batch)
	case *mf.rank < 0 || *mf.rank > 1024:
		return cli.Usagef("--rank must be in [0, 1024], got %d", *mf.rank)
	case *sf.rounds > 1 && *sf.noORT:
		return cli.Usagef("--rounds %d alternates our forward with onnxruntime's, which --no-ort turns off", *sf.rounds)
	}
	if err := checkWeightsFit(ref); err != nil {
		return err
	}
	backend, err := cli.Backend(backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	o := bench.ScaleOptions{Batch: *mf.batch, Steps: min(steps, 20), Rank: *mf.rank, Reward: *mf.reward, TorchCmd: *sf.torchCmd,
		Rounds: *sf.rounds, Warmup: *sf.warmup}
	if o.MemBudget, err = cli.MemBudget(); err != nil {
		return err
	}
	if !*sf.noORT {
		o.ORTScript = bench.FindORTScript()
	}
	if !asJSON {
		o.Log = func(line string) { fmt.Fprintln(env.Stderr, "bench: "+line) }
	}
	res, err := bench.RunModel(backend, spec, o)
	if err != nil {
		var se *onnx.SpecError
		if errors.As(err, &se) {
			return cli.Usagef("%v", err)
		}
		return err
	}
	if asJSON {
		return cli.WriteJSON(env.Stdout, res)
	}
	writeModelTable(env.Stdout, res)
	return nil
}

// writeModelTable prints RunModel's figures, one per line.
func writeModelTable(w io.Writer, r *bench.ScaleResult) {
	fmt.Fprintf(w, "model %s, batch %d\n", r.Spec, r.Batch)
	fmt.Fprintf(w, "load + check          %8.2f s\n", r.LoadS)
	if r.ForwardMSPerImage > 0 { // 0: not run (refused over the memory budget)
		fmt.Fprintf(w, "first call            %8.2f s (graph build %.2f s, compile %.2f s)\n", r.FirstCallS, r.BuildS, r.CompileS)
		fmt.Fprintf(w, "forward               %8.1f ms/image", r.ForwardMSPerImage)
		if r.Warmup > 0 {
			fmt.Fprintf(w, " (after %d warm-up forwards)", r.Warmup)
		}
		fmt.Fprintln(w)
	}
	if r.HypernetStepMS != nil {
		fmt.Fprintf(w, "hypernoise step       %8.0f ms\n", *r.HypernetStepMS)
	}
	if r.RenoStepMSImage != nil {
		fmt.Fprintf(w, "reno step             %8.1f ms/image\n", *r.RenoStepMSImage)
	}
	fmt.Fprintf(w, "weights               %8s\n", cli.FormatBytes(r.WeightBytes))
	fmt.Fprintf(w, "estimate fwd / train  %8s / %s\n", cli.FormatBytes(r.EstimateForward), cli.FormatBytes(r.EstimateTrain))
	fmt.Fprintf(w, "peak memory           %8s (%s after loading)\n", cli.FormatBytes(r.PeakRSS), cli.FormatBytes(r.LoadPeakRSS))
	if r.Torch != nil {
		fmt.Fprintf(w, "pytorch               %v\n", r.Torch)
	}
	if r.ORT != nil {
		fmt.Fprintf(w, "onnxruntime           %v\n", r.ORT)
	}
	for i, fr := range r.ForwardRounds {
		fmt.Fprintf(w, "forward round %-2d      %8.1f / %.1f ms/image (ours / onnxruntime) = %.3fx\n", i+1, fr.OursMS, fr.ORTMS, fr.Ratio)
	}
	if r.ForwardRatioMedian != nil {
		fmt.Fprintf(w, "forward / onnxruntime %8.3fx (median of %d alternated rounds)\n", *r.ForwardRatioMedian, len(r.ForwardRounds))
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "not measured: %s\n", e)
	}
}
