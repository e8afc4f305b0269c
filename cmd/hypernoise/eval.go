package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/backends"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/internal/safeio"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/progress"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "eval",
		Summary: "compare base, best-of-N, ReNO, fine-tune and a trained hypernetwork on every prompt",
		Run:     runEval,
	})
}

func runEval(env *cli.Env, args []string) error {
	def := pipeline.DefaultEvalOptions()
	fs := env.FlagSet("eval", `Usage: hypernoise eval --hypernet DIR [--json] [flags]

For every prompt and a fixed seed set, compares base sampling, best-of-N (N matched to ReNO's network
evaluations, and a small N), ReNO (paper defaults), the LoRA fine-tune baseline (trained on the same
reward and cached in DIR), the hypernetwork, and the hypernetwork warm-starting a few ReNO steps.
Per method: mean training reward, held-out alignment, FD to the test set in held-out feature space
(null for a model without a held-out evaluator), diversity, network evaluations and seconds per
image. The model is the one DIR was trained on (or --model).

Each compiled call (a method's chunk of images, the scoring, the tilt pool) runs at most as many
images as keep the model's memory estimate under a quarter of $HYPERNOISE_MEM_BUDGET (for an
imported model; the defaults, 64 to 256 images, otherwise): the figures are the same to float32
rounding whatever the chunk.

  hypernoise eval --write-test-stats   rebuilds the embedded test-set statistics (needs the dataset)`)
	dir := fs.String("hypernet", "", "hypernetwork folder written by hypernoise train (required)")
	seeds := fs.Int("seeds", def.SeedsPerPrompt, "images per prompt")
	seed := fs.Uint64("seed", def.Seed, "seed of the evaluation noises")
	renoSteps := fs.Int("reno-steps", def.RenoSteps, "ReNO iterations")
	warm := fs.Int("warm-steps", def.WarmRenoSteps, "ReNO iterations after the hypernetwork (0: skip)")
	smallN := fs.Int("small-n", def.SmallN, "N of the small best-of-N")
	ftSteps := fs.Int("finetune-steps", -1, "fine-tune baseline steps (-1: as many as the hypernetwork; 0: skip)")
	only := fs.String("methods", "", "comma-separated methods to run (default all): "+pipeline.MethodList())
	beta := fs.Float64("beta", 0, "tilt temperature for a tilt-dial hypernetwork (default: its own)")
	tiltPool := fs.Int("tilt-pool", def.TiltPool, "base samples per prompt of the tilt reference at the hypernetwork's beta (0: no tilt columns)")
	tiltSampler := fs.String("tilt-sampler", pipeline.TiltSIR, "how the tilt reference is drawn: sir (resample --tilt-pool base samples) or smc (move --tilt-pool particles per prompt from the base to the tilt by tempered sequential Monte Carlo with Langevin moves: for a beta at which the pool's ESS collapses; costs 1 + stages x moves gradient passes per particle, 21-541 on the project's fixtures)")
	tiltMoves := fs.Int("tilt-moves", 0, "with --tilt-sampler smc: Langevin moves per tempering stage (0: the default, 10)")
	trainSeeds := fs.Int("train-seeds", 1, "train and evaluate this many training seeds of the hypernetwork's configuration (its own, then the next ones, in DIR/train-seed-S) and report mean and std of the trained methods")
	out := fs.String("out", "", "also write metrics.json, grids and index.html into this folder")
	asJSON := fs.Bool("json", false, "print the report as JSON to stdout (progress still goes to stderr; --quiet silences it)")
	quiet := fs.Bool("quiet", false, "no progress output")
	writeStats := fs.Bool("write-test-stats", false, "compute the held-out feature statistics of the test set into "+pipeline.TestStatsFile)
	modelRef := modelFlag(fs)
	backendName := cli.BackendFlag(fs)
	evalRanges(env, fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	if *modelRef != "" && *writeStats {
		return cli.Usagef("eval: --write-test-stats is for the embedded model, not --model")
	}
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	if *writeStats {
		return writeTestStats(env, backend)
	}
	if *dir == "" {
		return cli.Usagef("eval: --hypernet DIR is required")
	}
	if *out != "" {
		if err := safeio.CheckOutput(filepath.Join(*out, "index.html")); err != nil {
			return err
		}
	}
	// Every flag is checked before the folder is read, so a usage error is reported as one.
	o := def
	o.SeedsPerPrompt, o.Seed, o.RenoSteps, o.WarmRenoSteps, o.SmallN = *seeds, *seed, *renoSteps, *warm, *smallN
	o.TiltPool, o.TiltSampler, o.TiltMoves = *tiltPool, *tiltSampler, *tiltMoves
	if err := checkEvalFlags(&o, *trainSeeds, *ftSteps, *only); err != nil {
		return err
	}
	m, folders, err := evalModel(fs, backend, *modelRef, *dir, *beta)
	if err != nil {
		return err
	}
	p, err := pipeline.NewPipeline(backend, m, folders...)
	if err != nil {
		return err
	}
	defer p.Close()
	hn := p.Hypernets()[0]
	o.Beta = *beta
	o.FinetuneSteps = *ftSteps
	if *ftSteps == -1 {
		o.FinetuneSteps = hn.Config.Train.Steps
	}
	prog := progress.New(env.Stderr, "eval", *quiet)
	if *trainSeeds > 1 {
		return evalSeeds(env, backend, m, p, hn, *dir, *trainSeeds, o, *asJSON, prog)
	}
	rep, err := pipeline.Evaluate(p, hn, *dir, o, prog)
	if err != nil {
		return err
	}
	return writeEval(env, rep, *out, *asJSON)
}

// evalModel opens the hypernetwork folder dir and loads the model: --model's (a bad spec is a usage
// error, reported before the folder is read), else the one the folder was trained on; --beta is
// checked against the folder in between.
func evalModel(fs *flag.FlagSet, backend backends.Backend, modelRef, dir string, beta float64) (*family.Model, []*infer.Folder, error) {
	var m *family.Model
	var err error
	if modelRef != "" {
		if m, err = loadModel(modelRef, nil, backend); err != nil {
			return nil, nil, err
		}
	}
	folders, err := openHypernets(dir)
	if err != nil {
		return nil, nil, err
	}
	if err := checkBetaFlag(fs, folders[0], beta); err != nil {
		return nil, nil, err
	}
	if m == nil {
		if m, err = loadModel("", folders[0], backend); err != nil {
			return nil, nil, err
		}
	}
	return m, folders, nil
}

// checkEvalFlags validates eval's options (a usage error naming the range) and fills o.Methods.
func checkEvalFlags(o *pipeline.EvalOptions, trainSeeds, ftSteps int, only string) error {
	if err := o.Validate(); err != nil {
		return cli.Usagef("eval: %v", err)
	}
	if trainSeeds < 1 || trainSeeds > pipeline.MaxTrainSeeds {
		return cli.Usagef("eval: --train-seeds must be in [1, %d], got %d", pipeline.MaxTrainSeeds, trainSeeds)
	}
	if ftSteps < -1 || ftSteps > hypernet.MaxSteps {
		return cli.Usagef("eval: --finetune-steps must be in [-1, %d], got %d", hypernet.MaxSteps, ftSteps)
	}
	var err error
	o.Methods, err = methodList(only)
	return err
}

// writeEval writes the report: the HTML report in out (if given), then JSON or the text table.
func writeEval(env *cli.Env, rep *pipeline.EvalReport, out string, asJSON bool) error {
	if out != "" {
		if err := pipeline.WriteDemoReport(out, &pipeline.DemoResult{Align: rep, Seconds: rep.Seconds}); err != nil {
			return err
		}
	}
	if asJSON {
		return env.WriteJSON(rep)
	}
	fmt.Fprint(env.Stdout, rep.Text())
	if out != "" {
		fmt.Fprintf(env.Stdout, "report: %s\n", filepath.Join(out, "index.html"))
	}
	return nil
}

// writeTestStats is `eval --write-test-stats`: the embedded model's test-set statistics.
func writeTestStats(env *cli.Env, backend backends.Backend) error {
	st, err := pipeline.WriteTestStats(backend)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s (%d test images, %d features)\n", pipeline.TestStatsFile, st.N, len(st.Mean))
	return nil
}

// methodList parses --methods: registered method names, comma-separated ("": all).
func methodList(only string) ([]string, error) {
	if only == "" {
		return nil, nil
	}
	var names []string
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		if _, err := hypernoise.LookupMethod(name); err != nil {
			return nil, cli.Usagef("eval: %v", err)
		}
		names = append(names, name)
	}
	return names, nil
}
