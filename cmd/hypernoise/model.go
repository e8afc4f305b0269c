package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/onnx"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/progress"
)

// modelFlagUsage documents --model on every command that takes it.
const modelFlagUsage = "a model spec (JSON) naming your own generator and rewards as ONNX files, instead of the embedded Fashion-MNIST model (docs/bring-your-model.md)"

// loadModel loads an imported model from its spec: a mistake in the spec is a usage error (exit
// code 2); a missing, broken or unsupported file a run-time error (exit code 1).
func loadModel(path string, backend backends.Backend) (*onnx.Model, *infer.Model, error) {
	m, err := onnx.Load(path, backend)
	if err != nil {
		var se *onnx.SpecError
		if errors.As(err, &se) {
			return nil, nil, cli.Usagef("%v", err)
		}
		return nil, nil, err
	}
	return m, pipeline.ImportedModel(m), nil
}

// flagSet reports whether a flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// promptIDs resolves --prompt against a model's prompts: a prompt (case-insensitive) or "all".
func promptIDs(prompts []string, prompt string) ([]int, error) {
	if len(prompts) == 0 {
		return []int{0}, nil // unconditional
	}
	p := strings.ToLower(strings.Join(strings.Fields(prompt), " "))
	if p == "all" {
		ids := make([]int, len(prompts))
		for i := range ids {
			ids[i] = i
		}
		return ids, nil
	}
	for i, name := range prompts {
		if strings.ToLower(name) == p {
			return []int{i}, nil
		}
	}
	return nil, cli.Usagef("unknown prompt %q; the model's prompts: %s (or all)", prompt, strings.Join(prompts, ", "))
}

// checkModulator refuses a LoRA hypernetwork on a model that cannot start it at f = 0.
func checkModulator(m *onnx.Model, kind string) error {
	if kind != infer.KindLoRA {
		return nil
	}
	if err := m.CheckLoRA(); err != nil {
		return cli.Usagef("--modulator lora: %v", err)
	}
	return nil
}

// sampleModel is `hypernoise sample --model SPEC`: any method on an imported generator, written as
// a grid (grey or RGB images of any size).
func sampleModel(env *cli.Env, f *sampleFlags, seed int64, spec, backendName string) error {
	switch {
	case f.n < 1 || f.n > 4096:
		return cli.Usagef("--n must be in [1, 4096], got %d", f.n)
	case f.scale < 1 || f.scale > 16:
		return cli.Usagef("--scale must be in [1, 16], got %d", f.scale)
	case f.cols < 0:
		return cli.Usagef("--cols must be >= 0, got %d", f.cols)
	case seed < 0:
		return cli.Usagef("--seed must be >= 0, got %d", seed)
	case f.out == "":
		return cli.Usagef("--out must not be empty")
	}
	backend, err := cli.Backend(backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	m, im, err := loadModel(spec, backend)
	if err != nil {
		return err
	}
	prompts := m.Prompts()
	if f.prompt == "" && len(prompts) > 0 {
		return cli.Usagef("--prompt is required; the model's prompts: %s (or all)", strings.Join(prompts, ", "))
	}
	ids, err := promptIDs(prompts, f.prompt)
	if err != nil {
		return err
	}
	if f.gen.RewardSpec != "" {
		if _, err := im.Rewards.Parse(f.gen.RewardSpec); err != nil {
			return cli.Usagef("--reward: %v", err)
		}
	}
	if f.cols == 0 {
		f.cols = int(math.Ceil(math.Sqrt(float64(f.n))))
		if len(ids) > 1 {
			f.cols = f.n
		}
	}
	total := f.n * len(ids)
	if err := checkModelMemory(m, "sample --method "+f.gen.Method, total, f.gen.Method != hypernet.MethodBase && f.gen.Method != hypernet.MethodHyperNoise, 0, "--n", len(ids)); err != nil {
		return err
	}
	one := hypernoise.NoiseFlat(uint64(seed), f.n, m.NoiseShape())
	eps := make([]float32, 0, total*len(one)/f.n)
	pr := make([]int32, 0, total)
	for _, id := range ids {
		eps = append(eps, one...)
		for range f.n {
			pr = append(pr, int32(id))
		}
	}
	imgs, _, err := pipeline.SampleModel(backend, im, eps, pr, f.gen)
	if err != nil {
		return err
	}
	dims := m.ImageDims()
	if dims == nil {
		return fmt.Errorf("model %s: the generator's output is not an image batch, so there is no grid to write", m.Name())
	}
	png, err := onnx.GridPNG(imgs, total, dims[0], dims[1], dims[2], f.cols, f.scale, 2)
	if err != nil {
		return err
	}
	if err := ckpt.WriteFileAtomic(f.out, png); err != nil {
		return err
	}
	name := "unconditional"
	if len(prompts) > 0 {
		name = prompts[ids[0]]
		if len(ids) > 1 {
			name = "each prompt"
		}
	}
	fmt.Fprintf(env.Stdout, "wrote %s: %d x %q (%s, method %s, seed %d)\n", f.out, f.n, name, m.Name(), f.gen.Method, seed)
	return nil
}

// evalModel is `hypernoise eval --model SPEC`: every method on an imported generator, scored with
// the hypernetwork's reward; the held-out metrics (alignment, FD) are null.
func evalModel(env *cli.Env, p *infer.Pipeline, hn *infer.Hypernet, dir string, o pipeline.EvalOptions, out string, asJSON, quiet bool) error {
	rep, err := pipeline.EvaluateModel(p, hn, dir, o, progress.New(env.Stderr, "eval", quiet || asJSON))
	if err != nil {
		return err
	}
	if out != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		if err := ckpt.WriteFileAtomic(filepath.Join(out, "metrics.json"), append(data, '\n')); err != nil {
			return err
		}
	}
	if asJSON {
		return cli.WriteJSON(env.Stdout, rep)
	}
	fmt.Fprintf(env.Stdout, "%s, reward %s, %d images per method (held-out metrics: none for an imported model)\n",
		rep.Generator, rep.RewardSpec, rep.Images)
	fmt.Fprintf(env.Stdout, "%-18s %10s %10s %10s %8s %10s\n", "method", "reward", "diversity", "brightness", "NFE/img", "ms/img")
	for _, name := range rep.Order {
		r := rep.Methods[name]
		fmt.Fprintf(env.Stdout, "%-18s %10.4f %10.3f %10.4f %8.1f %10.2f\n", name, r.Reward, r.Diversity, r.Brightness,
			r.NFEPerImage, 1000*r.SecondsPerImage)
	}
	if out != "" {
		fmt.Fprintf(env.Stdout, "wrote %s\n", filepath.Join(out, "metrics.json"))
	}
	return nil
}
