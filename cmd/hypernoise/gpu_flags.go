package main

import (
	"flag"
	"fmt"

	"github.com/hypernoise/hypernoise/bench"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/compute/mixed"
)

// dtypeFlag registers --dtype: the type float32 matrix products and convolutions compute in.
func dtypeFlag(fs *flag.FlagSet) *string {
	return fs.String("dtype", "f32", "compute type of matrix products and convolutions: f32, or bf16 (bfloat16 "+
		"operands; weights, optimizer state and loss stay float32)")
}

// dtypeBackend is the backend name with --dtype applied (a usage error for an unknown dtype).
func dtypeBackend(name, dtype string) (string, error) {
	_, narrow, err := mixed.Parse(dtype)
	if err != nil {
		return "", cli.Usagef("--dtype: %v", err)
	}
	if !narrow {
		return name, nil
	}
	return compute.WithDType(name, dtype), nil
}

// modelBenchFlags are bench's flags for an imported model (--model).
type modelBenchFlags struct {
	reward      *string
	batch, rank *int
}

func addModelBenchFlags(fs *flag.FlagSet) modelBenchFlags {
	return modelBenchFlags{
		reward: fs.String("reward", "", "--model: time only the HyperNoise step, with this reward spec (default: the model's first reward)"),
		batch:  fs.Int("batch", 2, "--model: time only the HyperNoise step, at this batch"),
		rank:   fs.Int("rank", 4, "--model: time only the HyperNoise step, with this LoRA rank (make_t2i.py --bench's default); with --scale, 0 skips the step"),
	}
}

// runModelBench times the HyperNoise step on model ref (any family) and prints it (as JSON with asJSON).
func runModelBench(env *cli.Env, f modelBenchFlags, ref, backendName string, steps int, asJSON bool) error {
	if *f.batch < 1 || *f.batch > 4096 {
		return cli.Usagef("--batch must be in [1, 4096], got %d", *f.batch)
	}
	if *f.rank < 1 || *f.rank > 1024 {
		return cli.Usagef("--rank must be in [1, 1024], got %d", *f.rank)
	}
	backend, im, err := backendAndModel(backendName, ref, nil)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	if *f.reward != "" {
		if _, err := im.Rewards.Parse(*f.reward); err != nil {
			return cli.Usagef("bench: %v", err)
		}
	}
	res, err := bench.TimeModelStep(backend, im, *f.reward, *f.batch, *f.rank, steps)
	if err != nil {
		return err
	}
	if asJSON {
		return cli.WriteJSON(env.Stdout, res)
	}
	fmt.Fprintf(env.Stdout, "HyperNoise step on %s (%s, batch %d, LoRA rank %d, reward %s): %.2f ms (median of %d; min %.2f), first step with compilation %.2f s\n",
		res.Model, res.Backend, res.Batch, res.Rank, res.Reward, res.StepMS, res.Steps, res.MinStepMS, res.CompileSeconds)
	return nil
}
