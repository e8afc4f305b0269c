package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/pipeline"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "sample",
		Summary: "generate a PNG grid of Fashion-MNIST images for a prompt with the embedded one-step generator",
		Run:     runSample,
	})
}

// sampleFlags are the flags of `hypernoise sample`; further generation methods add theirs here.
type sampleFlags struct {
	prompt, out, weights string
	n, cols, scale       int
	seed                 uint64
	teacherSteps         int
	guidance             float64
	gen                  pipeline.SampleOptions
}

func runSample(env *cli.Env, args []string) error {
	fs := env.FlagSet("sample", `Usage: hypernoise sample --prompt NAME [--n 16] [--seed 7] [--out grid.png] [flags]

Generates --n images of the prompt's class with the embedded one-step generator
x = decoder(student(eps, prompt)), eps ~ N(0, I): image k of prompt p uses noise p*n+k of --seed,
the same noise in every command and method (eval's images of a prompt are sample's with --n =
eval's --seeds), and writes them as a PNG grid. --teacher-steps K samples the multi-step teacher instead
(K Euler steps of its guided flow ODE), for comparison. --prompt all draws --n images of every
prompt, one row each. Prompts: `+strings.Join(fashion.Prompts, ", ")+`.

--hypernet DIR samples with a trained noise hypernetwork, x = g(eps + f(eps, c), c), from the same
noises; --method picks any method: `+pipeline.MethodList()+`
(best-of-n and reno use --reward, or the hypernetwork's reward; finetune uses the fine-tune cached
in DIR by hypernoise eval).`)
	var f sampleFlags
	fs.StringVar(&f.prompt, "prompt", "", "class name, case-insensitive, or \"all\" (required)")
	fs.IntVar(&f.n, "n", 16, "number of images (per prompt)")
	var seed int64
	fs.Int64Var(&seed, "seed", 7, "noise seed")
	fs.StringVar(&f.out, "out", "grid.png", "PNG file to write")
	fs.IntVar(&f.cols, "cols", 0, "grid columns (default: about sqrt(n))")
	fs.IntVar(&f.scale, "scale", 2, "pixel scale factor of each image")
	fs.IntVar(&f.teacherSteps, "teacher-steps", 0, "sample the teacher with K Euler steps instead of the one-step student")
	fs.Float64Var(&f.guidance, "guidance", fashion.DefaultGuidance, "classifier-free guidance scale of the teacher (with --teacher-steps)")
	fs.StringVar(&f.weights, "weights", "", "load weights from this folder instead of the embedded ones")
	fs.StringVar(&f.gen.HypernetDir, "hypernet", "", "hypernetwork folder from hypernoise train (default method: hypernoise)")
	fs.StringVar(&f.gen.Method, "method", "", "generation method: "+pipeline.MethodList()+" (default base, or hypernoise with --hypernet)")
	fs.StringVar(&f.gen.RewardSpec, "reward", "", "reward spec for reno and best-of-n (default: the hypernetwork's, else "+pipeline.DefaultReward+")")
	fs.IntVar(&f.gen.N, "best-of", pipeline.DefaultBestOfN, "candidates per image for --method best-of-n")
	fs.IntVar(&f.gen.Steps, "reno-steps", 0, fmt.Sprintf("ReNO iterations for --method reno (default %d) or hypernoise-reno (default %d)", pipeline.DefaultRenoSteps, pipeline.DefaultWarmSteps))
	fs.Float64Var(&f.gen.Beta, "beta", 0, "tilt temperature for a tilt-dial hypernetwork (default: its own)")
	modelSpec := fs.String("model", "", modelFlagUsage)
	backendName := cli.BackendFlag(fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	if f.gen.Method == "" {
		f.gen.Method = hypernet.MethodBase
		if f.gen.HypernetDir != "" {
			f.gen.Method = hypernet.MethodHyperNoise
		}
	}
	if err := f.gen.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	if f.gen.Method != hypernet.MethodBase && f.teacherSteps > 0 {
		return cli.Usagef("--teacher-steps samples the teacher; it cannot be combined with --method %s", f.gen.Method)
	}
	if err := checkBetaFlag(fs, f.gen.HypernetDir, f.gen.Beta); err != nil {
		return err
	}
	if *modelSpec != "" {
		if f.teacherSteps > 0 || f.weights != "" {
			return cli.Usagef("--teacher-steps and --weights are for the embedded model, not --model")
		}
		return sampleModel(env, &f, seed, *modelSpec, *backendName)
	}
	if f.prompt == "" {
		return cli.Usagef("--prompt is required; prompts: %s", strings.Join(fashion.Prompts, ", "))
	}
	ids := make([]int, 0, len(fashion.Prompts))
	if strings.EqualFold(strings.TrimSpace(f.prompt), "all") {
		for i := range fashion.Prompts {
			ids = append(ids, i)
		}
	} else {
		id, err := fashion.PromptID(f.prompt)
		if err != nil {
			return cli.Usagef("%v", err)
		}
		ids = append(ids, id)
	}
	switch {
	case f.n < 1 || f.n > 4096:
		return cli.Usagef("--n must be in [1, 4096], got %d", f.n)
	case f.teacherSteps < 0 || f.teacherSteps > 1000:
		return cli.Usagef("--teacher-steps must be in [0, 1000], got %d", f.teacherSteps)
	case f.scale < 1 || f.scale > 16:
		return cli.Usagef("--scale must be in [1, 16], got %d", f.scale)
	case f.cols < 0 || f.cols > f.n*len(ids):
		return cli.Usagef("--cols must be in [0, %d] (0: automatic), got %d", f.n*len(ids), f.cols)
	case math.IsNaN(f.guidance) || math.IsInf(f.guidance, 0):
		return cli.Usagef("--guidance must be a finite number")
	case seed < 0:
		return cli.Usagef("--seed must be >= 0, got %d", seed)
	}
	f.seed = uint64(seed)
	if err := cli.CheckMemory("sample", pipeline.EstimateSampleBytes(f.n*len(ids))); err != nil {
		return err
	}
	if f.cols == 0 {
		f.cols = int(math.Ceil(math.Sqrt(float64(f.n))))
		if len(ids) > 1 {
			f.cols = f.n // one row per prompt
		}
	}
	var m *fashion.Model
	var err error
	if f.weights != "" {
		if _, serr := os.Stat(f.weights); serr != nil {
			return cli.Usagef("--weights: %v", serr)
		}
		m, err = fashion.Load(f.weights)
	} else {
		m, err = fashion.Default()
	}
	if err != nil {
		return err
	}
	m.Guidance = f.guidance
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	total := f.n * len(ids)
	// Image k of prompt p uses noise p*n+k of the seed (hypernoise.PromptNoise), as in eval.
	eps := make([]float32, 0, total*fashion.LatentDim)
	prompts := make([]int32, 0, total)
	for _, id := range ids {
		eps = append(eps, hypernoise.PromptNoise(f.seed, id, f.n, m.NoiseShape())...)
		for range f.n {
			prompts = append(prompts, int32(id))
		}
	}
	var imgs []float32
	if f.teacherSteps > 0 {
		imgs, err = fashion.GenerateImages(backend, m, eps, prompts, f.teacherSteps)
	} else {
		imgs, _, err = pipeline.Sample(backend, m, eps, prompts, f.gen)
	}
	if err != nil {
		return err
	}
	png, err := fashion.GridPNG(imgs, total, f.cols, f.scale, 2)
	if err != nil {
		return err
	}
	if f.out == "" {
		return cli.Usagef("--out must not be empty")
	}
	if err := ckpt.WriteFileAtomic(f.out, png); err != nil {
		return err
	}
	what := "one-step student"
	if f.gen.Method != hypernet.MethodBase {
		what = "one-step student, method " + f.gen.Method
	}
	if f.teacherSteps > 0 {
		what = fmt.Sprintf("teacher, %d steps, guidance %g", f.teacherSteps, f.guidance)
	}
	name := fashion.Prompts[ids[0]]
	if len(ids) > 1 {
		name = "each prompt"
	}
	fmt.Fprintf(env.Stdout, "wrote %s: %d x %q (%s, seed %d)\n", f.out, f.n, name, what, f.seed)
	return nil
}

// checkBetaFlag validates --beta (when given) against the hypernetwork folder's config: a usage
// error naming a dial's trained range, or saying that the hypernetwork is not a dial.
func checkBetaFlag(fs *flag.FlagSet, dir string, beta float64) error {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "beta" })
	if !set {
		return nil
	}
	if dir == "" {
		return cli.Usagef("--beta needs --hypernet DIR (a tilt dial)")
	}
	if !(beta > 0) || math.IsInf(beta, 0) {
		return cli.Usagef("--beta must be a positive number, got %g", beta)
	}
	cfg, err := infer.ReadConfig(dir)
	if err != nil {
		return err
	}
	if err := cfg.CheckBeta(beta); err != nil {
		return cli.Usagef("%v", err)
	}
	return nil
}
