package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "sample",
		Summary: "generate a PNG grid for a prompt with a one-step generator (the embedded Fashion-MNIST one by default)",
		Run:     runSample,
	})
}

// sampleFlags are the flags of `hypernoise sample`; further generation methods add theirs here.
type sampleFlags struct {
	prompt, out, weights, model string
	hypernetDir                 string
	n, cols, scale              int
	seed                        int64
	teacherSteps                int
	guidance                    float64
	gen                         pipeline.SampleOptions
}

func runSample(env *cli.Env, args []string) error {
	fs := env.FlagSet("sample", `Usage: hypernoise sample --prompt NAME [--n 16] [--seed 7] [--out grid.png] [--model M] [flags]

Generates --n images of the prompt with the model's one-step generator x = g(eps, prompt),
eps ~ N(0, I): image k of prompt p uses noise p*n+k of --seed, the same noise in every command and
method (eval's images of a prompt are sample's with --n = eval's --seeds, and the server returns
the same images for the same seed), and writes them as a PNG grid. --prompt all draws --n images
of every prompt, one row each. --teacher-steps K samples the multi-step teacher instead (K Euler
steps of its guided flow ODE), for comparison, on models that have one (the embedded default).

--hypernet DIR samples with a trained noise hypernetwork, x = g(eps + f(eps, c), c), from the same
noises (on the model DIR was trained on); --method picks any method: `+pipeline.MethodList()+`
(best-of-n and reno use --reward, or the hypernetwork's reward; finetune uses the fine-tune cached
in DIR by hypernoise eval). Method defaults and limits: `+hypernoise.KnobHelp()+`.`)
	f := sampleFlags{}
	fs.StringVar(&f.prompt, "prompt", "", "prompt name, case-insensitive, or \"all\" (required for a conditional model)")
	fs.IntVar(&f.n, "n", 16, "number of images (per prompt)")
	fs.Int64Var(&f.seed, "seed", 7, "noise seed")
	fs.StringVar(&f.out, "out", "grid.png", "PNG file to write")
	fs.IntVar(&f.cols, "cols", 0, "grid columns (default: about sqrt(n))")
	fs.IntVar(&f.scale, "scale", 2, "pixel scale factor of each image")
	fs.IntVar(&f.teacherSteps, "teacher-steps", 0, "sample the teacher with K Euler steps instead of the one-step student")
	fs.Float64Var(&f.guidance, "guidance", 0, "classifier-free guidance scale of the teacher (with --teacher-steps; default: the teacher's own)")
	fs.StringVar(&f.weights, "weights", "", "load the embedded family's weights from this folder (shorthand for --model fashion:DIR)")
	fs.StringVar(&f.hypernetDir, "hypernet", "", "hypernetwork folder from hypernoise train (default method: hypernoise)")
	fs.StringVar(&f.gen.Method, "method", "", "generation method: "+pipeline.MethodList()+" (default base, or hypernoise with --hypernet)")
	fs.StringVar(&f.gen.RewardSpec, "reward", "", "reward spec for reno and best-of-n (default: the hypernetwork's, else the model's default)")
	fs.IntVar(&f.gen.N, "best-of", 0, fmt.Sprintf("candidates per image for --method best-of-n (default %d)", pipeline.MethodDefault(bestofn.Name).N))
	fs.IntVar(&f.gen.Steps, "reno-steps", 0, fmt.Sprintf("ReNO iterations for --method reno (default %d) or hypernoise-reno (default %d)",
		pipeline.MethodDefault(reno.Name).Steps, pipeline.MethodDefault(reno.WarmName).Steps))
	fs.Float64Var(&f.gen.Beta, "beta", 0, "tilt temperature for a tilt-dial hypernetwork (default: its own)")
	modelRef := modelFlag(fs)
	backendName := cli.BackendFlag(fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	f.model = *modelRef
	if err := f.check(fs); err != nil {
		return err
	}
	backend, m, err := backendAndModel(*backendName, f.model, f.gen.Hypernet)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	ids, err := f.modelChecks(m)
	if err != nil {
		return err
	}
	total := f.n * len(ids)
	eps, prompts := promptNoise(m, uint64(f.seed), ids, f.n)
	var imgs []float32
	if f.teacherSteps > 0 {
		imgs, err = m.Teacher.TeacherSamples(backend, eps, prompts, f.teacherSteps, f.guidance)
	} else {
		imgs, _, err = pipeline.Sample(backend, m, eps, prompts, f.gen)
	}
	if err != nil {
		return err
	}
	png, err := m.Grid(imgs, total, f.cols, f.scale, 2)
	if err != nil {
		return err
	}
	if err := ckpt.WriteFileAtomic(f.out, png); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s: %d x %q (%s, seed %d)\n", f.out, f.n, promptLabel(m, ids), f.what(m), f.seed)
	return nil
}

// check validates the flags that need no model.
func (f *sampleFlags) check(fs *flag.FlagSet) error {
	if f.hypernetDir != "" {
		hf, err := infer.OpenFolder(f.hypernetDir)
		if err != nil {
			return err
		}
		f.gen.Hypernet = hf
	}
	if f.gen.Method == "" {
		f.gen.Method = hypernet.MethodBase
		if f.gen.Hypernet != nil {
			f.gen.Method = hypernet.MethodHyperNoise
		}
	}
	if err := f.gen.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	if f.gen.Method != hypernet.MethodBase && f.teacherSteps > 0 {
		return cli.Usagef("--teacher-steps samples the teacher; it cannot be combined with --method %s", f.gen.Method)
	}
	if err := checkBetaFlag(fs, f.gen.Hypernet, f.gen.Beta); err != nil {
		return err
	}
	if f.weights != "" {
		if f.model != "" {
			return cli.Usagef("--weights and --model exclude each other (--weights DIR is --model fashion:DIR)")
		}
		if _, err := os.Stat(f.weights); err != nil {
			return cli.Usagef("--weights: %v", err)
		}
		f.model = family.JoinRef("fashion", f.weights)
	}
	switch {
	case f.n < 1 || f.n > 4096:
		return cli.Usagef("--n must be in [1, 4096], got %d", f.n)
	case f.teacherSteps < 0 || f.teacherSteps > 1000:
		return cli.Usagef("--teacher-steps must be in [0, 1000], got %d", f.teacherSteps)
	case f.scale < 1 || f.scale > 16:
		return cli.Usagef("--scale must be in [1, 16], got %d", f.scale)
	case f.cols < 0:
		return cli.Usagef("--cols must be >= 0, got %d", f.cols)
	case math.IsNaN(f.guidance) || math.IsInf(f.guidance, 0):
		return cli.Usagef("--guidance must be a finite number")
	case f.seed < 0:
		return cli.Usagef("--seed must be >= 0, got %d", f.seed)
	case f.out == "":
		return cli.Usagef("--out must not be empty")
	}
	return nil
}

// modelChecks validates the flags against the model (its prompts, rewards, capabilities and
// memory fit) and returns the prompt ids; it sets the default grid columns.
func (f *sampleFlags) modelChecks(m *family.Model) ([]int, error) {
	prompts := m.Generator.Prompts()
	if f.prompt == "" && len(prompts) > 0 {
		return nil, cli.Usagef("--prompt is required; the model's prompts: %s (or all)", strings.Join(prompts, ", "))
	}
	ids, err := m.Prompt(f.prompt)
	if err != nil {
		return nil, cli.Usagef("%v", err)
	}
	if f.gen.RewardSpec != "" {
		if err := checkReward("sample", m, f.gen.RewardSpec); err != nil {
			return nil, err
		}
	}
	if f.cols > f.n*len(ids) {
		return nil, cli.Usagef("--cols must be in [0, %d] (0: automatic), got %d", f.n*len(ids), f.cols)
	}
	if f.teacherSteps > 0 && m.Teacher == nil {
		return nil, cli.Usagef("--teacher-steps: model %s has no teacher to sample", m.Ref())
	}
	if m.Grid == nil {
		return nil, cli.Usagef("model %s: the generator's output is not an image batch, so there is no grid to write", m.Ref())
	}
	if err := cli.CheckMemory("sample", pipeline.EstimateSampleBytes(m, f.n*len(ids))); err != nil {
		return nil, err
	}
	if f.cols == 0 {
		f.cols = int(math.Ceil(math.Sqrt(float64(f.n))))
		if len(ids) > 1 {
			f.cols = f.n // one row per prompt
		}
	}
	return ids, nil
}

// promptNoise is the noise and prompt ids of n images of each prompt id: image k of prompt p is
// noise p*n+k of the seed (hypernoise.PromptNoise), as in eval and the server.
func promptNoise(m *family.Model, seed uint64, ids []int, n int) ([]float32, []int32) {
	var eps []float32
	prompts := make([]int32, 0, n*len(ids))
	for _, id := range ids {
		eps = append(eps, hypernoise.PromptNoise(seed, id, n, m.Generator.NoiseShape())...)
		for range n {
			prompts = append(prompts, int32(id))
		}
	}
	return eps, prompts
}

// promptLabel names what was drawn: the prompt, "each prompt" or "unconditional".
func promptLabel(m *family.Model, ids []int) string {
	prompts := m.Generator.Prompts()
	switch {
	case len(prompts) == 0:
		return "unconditional"
	case len(ids) > 1:
		return "each prompt"
	}
	return prompts[ids[0]]
}

// what describes the sampler: the generator and method, or the teacher.
func (f *sampleFlags) what(m *family.Model) string {
	if f.teacherSteps > 0 {
		g := f.guidance
		if g == 0 {
			g = m.Teacher.DefaultGuidance()
		}
		return fmt.Sprintf("%s teacher, %d steps, guidance %g", m.Generator.Name(), f.teacherSteps, g)
	}
	return fmt.Sprintf("%s one-step generator, method %s", m.Generator.Name(), f.gen.Method)
}

// checkBetaFlag validates --beta (when given) against the opened hypernetwork folder's config: a
// usage error naming a dial's trained range, or saying that the hypernetwork is not a dial.
func checkBetaFlag(fs *flag.FlagSet, hf *infer.Folder, beta float64) error {
	if !flagSet(fs, "beta") {
		return nil
	}
	if hf == nil {
		return cli.Usagef("--beta needs --hypernet DIR (a tilt dial)")
	}
	if !(beta > 0) || math.IsInf(beta, 0) {
		return cli.Usagef("--beta must be a positive number, got %g", beta)
	}
	if err := hf.Config.CheckBeta(beta); err != nil {
		return cli.Usagef("%v", err)
	}
	return nil
}
