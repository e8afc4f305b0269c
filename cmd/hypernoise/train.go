package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/progress"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "train",
		Summary: "train a noise hypernetwork for a reward on a model (the embedded Fashion-MNIST generator by default)",
		Run:     runTrain,
	})
}

func runTrain(env *cli.Env, args []string) error {
	def := pipeline.DefaultTrainOptions()
	fs := env.FlagSet("train", `Usage: hypernoise train --reward SPEC --out DIR [flags]

Trains a noise hypernetwork f for the model's one-step generator g: eps' = eps + f(eps, c),
x = g(eps', c), minimizing  -r(x, c) + reg_weight * mean(f^2)  over fresh noise and random prompts.
The folder receives hypernet.safetensors + hypernet.json (model, reward spec, architecture,
base-model hash), curve.png (loss and reward per step) and train.safetensors/train.json
(resumable checkpoint). SPEC is name=weight[,name=weight...] over the model's rewards (default:
the model's default reward); the embedded model's, e.g. align=1,realism=0.5:
`+family.DefaultRewardHelp())
	f := addTrainFlags(fs, def)
	modelRef := modelFlag(fs)
	backendName := cli.BackendFlag(fs)
	dtype := dtypeFlag(fs)
	trainRanges(env, fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	if *f.out == "" {
		return cli.Usagef("train: --out DIR is required")
	}
	o := def
	o.RewardSpec = *f.spec
	kindGiven := *f.kind != "" // else the model's default, known once it is loaded (modelModulator)
	if !kindGiven {
		*f.kind = def.Modulator.Kind
	}
	var err error
	if o.Modulator, err = modulatorSpec(*f.kind, *f.rank, *f.alpha, *f.hidden, *f.layers, *f.couplings, *f.conditioner, *f.betaRange); err != nil {
		return err
	}
	r, err := regularizer(*f.kind, *f.reg)
	if err != nil {
		return err
	}
	// A flow or a gaussian trains on the exact KL (its log-determinant is exact) unless --reg says
	// otherwise; a flow's beta defaults to the tilt of the default objective (mean-sq at
	// --reg-weight), set once the model's noise size is known (a gaussian needs --beta, below).
	flowExact, flowBeta := false, false
	if (*f.kind == infer.KindFlow || *f.kind == infer.KindGaussian) && !flagSet(fs, "reg") {
		r = hypernet.RegExactKL
		flowExact, flowBeta = true, *f.kind == infer.KindFlow && !flagSet(fs, "beta")
	}
	if err := resolveBeta(fs, *f.kind, r, f.beta); err != nil {
		return err
	}
	o.Reg, o.RegWeight, o.Beta = r, *f.regWeight, *f.beta
	if flowExact {
		o.RegWeight = 0 // the exact KL has no weight; hypernet.json records 0
	}
	if err := infer.CheckObjective(r, *f.regWeight, *f.beta); err != nil {
		return cli.Usagef("train: %v", err)
	}
	if o.RewardNorm, err = hypernet.ParseRewardNorm(*f.rewardNorm); err != nil {
		return cli.Usagef("train: %v", err)
	}
	o.LogDet.Probes, o.LogDet.Terms = *f.probes, *f.terms
	if err := trainConfig(fs, f, &o.Train); err != nil {
		return err
	}
	if err := tiltMatchFlags(fs, f, r, &o); err != nil {
		return err
	}
	if infer.DenseMatrix(*f.kind) {
		affineDefaults(fs, &o.Train)
	}
	o.OutDir, o.Resume, o.Force = *f.out, *f.resume, *f.force
	if err := infer.CheckRunFolder(o.OutDir, o.Resume, o.Force); err != nil {
		return cli.Usagef("train: %v", err)
	}
	env.OnInterrupt(func() string { return runKept(o.OutDir, o.Train.Steps, append([]string{"train"}, args...)) })
	backend, m, err := backendAndModel(compute.WithDType(*backendName, *dtype), *modelRef, nil)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	if !kindGiven {
		if err := modelModulator(fs, f, m, &o); err != nil {
			return err
		}
	}
	if err := loadedChecks(env, fs, f, r, flowBeta, m, &o); err != nil {
		return err
	}
	hn, res, err := pipeline.Train(backend, m, o, progress.New(env.Stderr, "train", *f.quiet))
	if err != nil {
		return trainUsage(err)
	}
	if *f.asJSON {
		return env.WriteJSON(hn.Config)
	}
	printTrained(env, o, hn, res)
	return nil
}

// loadedChecks applies what needs the loaded model: a flow's default beta or a --reg-weight's
// tilt (weightBeta), the model's own checks (trainModelChecks) and the default tilt matching
// (autoTiltMatch).
func loadedChecks(env *cli.Env, fs *flag.FlagSet, f *trainFlags, r hypernet.Regularizer, flowBeta bool, m *family.Model, o *pipeline.TrainOptions) error {
	if err := weightBeta(fs, *f.regWeight, r, flowBeta, m.Generator.NoiseShape(), o); err != nil {
		return err
	}
	if err := trainModelChecks(fs, m, o); err != nil {
		return err
	}
	return autoTiltMatch(env, fs, f, r, len(m.Generator.Prompts()), o)
}

// trainFlags are train's flags beyond --model, --backend and --dtype.
type trainFlags struct {
	spec           *string
	out            *string
	kind           *string
	betaRange      *string
	rank           *int
	alpha          *float64
	hidden         *int
	layers         *int
	couplings      *int
	conditioner    *string
	reg            *string
	regWeight      *float64
	beta           *float64
	rewardNorm     *string
	probes         *int
	terms          *int
	steps          *int
	batch          *int
	opt            *string
	lr             *float64
	warmup         *int
	schedule       *string
	budget         *string
	clip           *float64
	noise          *string
	promptsPerStep *int
	seed           *int64
	every          *int
	resume         *bool
	force          *bool
	quiet          *bool
	asJSON         *bool
	tiltMatch      *float64
	matchSpace     *string
	matchPool      *int
	matchSize      *int
}

func addTrainFlags(fs *flag.FlagSet, def pipeline.TrainOptions) *trainFlags {
	f := &trainFlags{}
	f.spec = fs.String("reward", def.RewardSpec, "reward spec")
	f.out = fs.String("out", "", "output folder (required)")
	f.kind = fs.String("modulator", "", "hypernetwork: lora (LoRA copy of the student, the paper's), mlp (standalone), dial (mlp conditioned on beta, a tilt dial) "+
		"flow (an invertible coupling flow with an exact log-determinant, trained on the exact KL unless --reg is given) "+
		"affine (a per-prompt affine map b_c + A_c eps, for noise of up to a few thousand elements; needs --beta; SGD at lr 0.02 unless --optimizer or --lr is given) "+
		"or gaussian (the affine map in Cholesky form b_c + L_c eps, the same distributions with an exact log-determinant: trained on the exact KL unless --reg is given; otherwise as affine); "+
		"default: the model's, lora for the embedded model, mlp for an imported (ONNX) one unless --rank or --alpha is given, which only a LoRA reads")
	f.betaRange = fs.String("beta-range", "0.25,4", "dial: the range lo,hi of beta it is trained over (log-uniform)")
	f.rank = fs.Int("rank", def.Modulator.Rank, "LoRA rank")
	f.alpha = fs.Float64("alpha", 0, "LoRA alpha (0: 2*rank)")
	f.hidden = fs.Int("hidden", 256, "MLP modulator hidden width")
	f.layers = fs.Int("layers", 2, "MLP modulator hidden layers")
	f.couplings = fs.Int("couplings", 4, "flow modulator: coupling layers")
	f.conditioner = fs.String("conditioner", infer.ConditionerMLP, "flow modulator: what computes each coupling's scales and shifts: mlp (--hidden, --layers) or lora (a LoRA copy of the student per coupling, --rank, --alpha)")
	f.reg = fs.String("reg", string(def.Reg), fmt.Sprintf("regularizer: %v", hypernet.Regularizers()))
	f.regWeight = fs.Float64("reg-weight", def.RegWeight, "weight of the mean-square or chi regularizer")
	f.beta = fs.Float64("beta", 0, "tilt temperature beta of p*(x) ∝ p(x) exp(r(x)/beta), for every regularizer but chi and none "+
		"(mean-sq: sets its weight to beta*D/2, D noise elements; default: 1 for kl, exact-kl and logdet, --reg-weight for mean-sq)")
	f.rewardNorm = fs.String("reward-norm", hypernet.NormNone, "reward scale: none (as given), std (each reward divided by its spread under the base model, measured before training) or std-within (by its pooled spread within a prompt, the spread each prompt's tilt sees)")
	f.probes = fs.Int("probes", def.LogDet.Probes, "logdet: Rademacher probes per sample")
	f.terms = fs.Int("terms", def.LogDet.Terms, "logdet: series terms after the first (k = 2..terms+1)")
	f.steps = fs.Int("steps", def.Train.Steps, "optimizer steps")
	f.batch = fs.Int("batch", def.Train.BatchSize, "samples per step")
	f.opt = fs.String("optimizer", def.Train.Optimizer, "adamw (weight decay 1e-4) or sgd (momentum 0.9)")
	f.lr = fs.Float64("lr", def.Train.LR, "peak learning rate")
	f.warmup = fs.Int("warmup", def.Train.WarmupSteps, "linear warm-up steps")
	f.schedule = fs.String("schedule", scheduleName(def.Train.Schedule), "learning rate after warm-up: constant or cosine (decays to 0 at the last step)")
	f.budget = fs.String("budget", "", "training budget: a step count (2000) or wall seconds (90s, from the first step: the steps that fit in the rest of it at the pace of steps 2-6, the first, compiling step not counted in the pace; at most --steps' maximum); default --steps")
	f.clip = fs.Float64("clip", def.Train.ClipNorm, "gradient-norm clip (0: off)")
	f.noise = fs.String("noise", string(def.Train.Noise), fmt.Sprintf("noise mode: %v", hypernet.NoiseModes()))
	f.promptsPerStep = fs.Int("prompts-per-step", def.Train.PromptsPerStep, "prompts in each step's batch, each held by a group of rows (fresh and batch noise modes; 1: one prompt for the whole batch); 0: every row draws its prompt independently; at most --batch")
	f.seed = fs.Int64("seed", def.Train.Seed, "seed for initialization and noise")
	dm := hypernet.DefaultMatch(0)
	f.tiltMatch = fs.Float64("tilt-match", 0, "weight of the energy distance between each batch and a reference set of the tilt at --beta (resampled from base samples before training; docs/convergence.md, eighth and ninth rounds); 0: off. Default: min(1, (0.05/beta)^2) for a LoRA trained with --beta, off above beta 0.5 and where the reference's pool would cost more samples than the training, under a time budget, or cannot resample the tilt (train says why). On, it sets --prompts-per-step 2 unless given")
	f.matchSpace = fs.String("tilt-match-space", dm.Space, "tilt matching: where the distance is measured, image (the generator's output) or noise (the modulated noise)")
	f.matchPool = fs.Int("tilt-match-pool", dm.Pool, "tilt matching: base samples per prompt the reference is resampled from (scored once, before training)")
	f.matchSize = fs.Int("tilt-match-size", dm.Size, "tilt matching: reference samples per prompt")
	f.every = fs.Int("checkpoint-every", def.Train.CheckpointEvery, "steps between checkpoints")
	f.resume = fs.Bool("resume", false, "continue the run checkpointed in --out (same reward, model and settings; --steps may grow)")
	f.force = fs.Bool("force", false, "discard the run in --out, if any, and start over")
	f.quiet = fs.Bool("quiet", false, "no progress output")
	f.asJSON = fs.Bool("json", false, "print the result as JSON to stdout (progress still goes to stderr; --quiet silences it)")
	return f
}

// modulatorSpec is the hypernetwork architecture the flags describe (a usage error if invalid).
func modulatorSpec(kind string, rank int, alpha float64, hidden, layers, couplings int, conditioner, betaRange string) (infer.ModulatorSpec, error) {
	spec := infer.ModulatorSpec{Kind: kind, Rank: rank, Alpha: alpha}
	if kind == infer.KindMLP || kind == infer.KindDial {
		spec = infer.ModulatorSpec{Kind: kind, Hidden: hidden, Layers: layers}
	}
	if infer.DenseMatrix(kind) {
		spec = infer.ModulatorSpec{Kind: kind, ShiftScale: hypernet.DefaultAffineShiftScale}
	}
	if kind == infer.KindFlow {
		spec = infer.ModulatorSpec{Kind: kind, Hidden: hidden, Layers: layers, Couplings: couplings}
		if conditioner == infer.ConditionerLoRA {
			spec = infer.ModulatorSpec{Kind: kind, Rank: rank, Alpha: alpha, Couplings: couplings, Conditioner: conditioner}
		} else if conditioner != infer.ConditionerMLP {
			return spec, cli.Usagef("train: unknown --conditioner %q; allowed: %s, %s", conditioner, infer.ConditionerMLP, infer.ConditionerLoRA)
		}
	}
	if kind == infer.KindDial {
		var lo, hi float64
		if n, err := fmt.Sscanf(strings.ReplaceAll(betaRange, ",", " "), "%g %g", &lo, &hi); err != nil || n != 2 {
			return spec, cli.Usagef("train: --beta-range must be lo,hi, got %q", betaRange)
		}
		spec.BetaRange = [2]float64{lo, hi}
	}
	if err := spec.Validate(); err != nil {
		return spec, cli.Usagef("train: %v", err)
	}
	return spec, nil
}

// trainConfig sets the optimizer loop's settings in c from the flags (a usage error if invalid).
func trainConfig(fs *flag.FlagSet, f *trainFlags, c *hypernet.TrainConfig) error {
	nm, err := hypernet.ParseNoiseMode(*f.noise)
	if err != nil {
		return cli.Usagef("train: %v", err)
	}
	c.Steps, c.BatchSize, c.LR, c.WarmupSteps = *f.steps, *f.batch, *f.lr, *f.warmup
	c.ClipNorm, c.Noise, c.Seed, c.CheckpointEvery = *f.clip, nm, *f.seed, *f.every
	c.PromptsPerStep = *f.promptsPerStep
	if err := setOptimizer(c, *f.opt); err != nil {
		return err
	}
	c.Schedule = *f.schedule
	if err := applyBudget(fs, *f.budget, c); err != nil {
		return err
	}
	if *f.resume && c.BudgetSeconds > 0 { // hypernet refuses it too, later and as a run-time error
		return cli.Usagef("train: --budget %s fixes the step count of a fresh run; resume with --steps instead", *f.budget)
	}
	if err := c.Validate(); err != nil {
		return cli.Usagef("train: %v", err)
	}
	return nil
}

// affineDefaults sets the affine modulator's optimizer, SGD with momentum 0.9 at lr 0.02, where
// --optimizer and --lr leave it open: SGD averages the per-sample gradients into A_c, while AdamW,
// measured once on the small fixture, grew A_c a hundredfold past SGD's and spread the samples
// wider than the base's (docs/convergence.md, the curvature round).
func affineDefaults(fs *flag.FlagSet, c *hypernet.TrainConfig) {
	if !flagSet(fs, "optimizer") {
		d := hypernet.DefaultSGD()
		c.Optimizer, c.Momentum, c.WeightDecay = d.Optimizer, d.Momentum, d.WeightDecay
	}
	if !flagSet(fs, "lr") {
		c.LR = AffineLR
	}
}

// AffineLR is the affine modulator's default learning rate (SGD).
const AffineLR = 0.02

// modelModulator sets o's hypernetwork to the model's own default (an imported model's is the MLP)
// when --modulator was not given, unless --rank or --alpha, which only a LoRA reads, asks for the
// LoRA copy.
func modelModulator(fs *flag.FlagSet, f *trainFlags, m *family.Model, o *pipeline.TrainOptions) error {
	k := m.DefaultModulator
	if k == "" || flagSet(fs, "rank") || flagSet(fs, "alpha") {
		return nil
	}
	var err error
	o.Modulator, err = modulatorSpec(k, *f.rank, *f.alpha, *f.hidden, *f.layers, *f.couplings, *f.conditioner, *f.betaRange)
	return err
}

// regularizer parses --reg (the tilt dial needs a beta-tempered one).
func regularizer(kind, reg string) (hypernet.Regularizer, error) {
	r, err := hypernet.ParseRegularizer(reg)
	if err != nil {
		return r, cli.Usagef("train: %v", err)
	}
	if kind == infer.KindDial && !r.Tempered() {
		return r, cli.Usagef("train: the tilt dial is trained against r/beta and needs a beta-tempered regularizer (--reg kl, exact-kl or logdet), not %s", r)
	}
	return r, nil
}

// setOptimizer sets the optimizer --optimizer names with its default momentum and weight decay.
func setOptimizer(cfg *hypernet.TrainConfig, name string) error {
	var d hypernet.TrainConfig
	switch name {
	case hypernet.SGD:
		d = hypernet.DefaultSGD()
	case hypernet.AdamW:
		d = hypernet.DefaultAdamW()
	default:
		return cli.Usagef("train: unknown --optimizer %q; allowed: %s, %s", name, hypernet.SGD, hypernet.AdamW)
	}
	cfg.Optimizer, cfg.Momentum, cfg.WeightDecay = d.Optimizer, d.Momentum, d.WeightDecay
	return nil
}

// printTrained reports a training run: what it reached and the files it wrote.
func printTrained(env *cli.Env, o pipeline.TrainOptions, hn *infer.Hypernet, res *hypernet.TrainResult) {
	s, out := hn.Config.Result, o.OutDir
	if res.StartStep == res.Steps && o.Resume && len(res.Loss) == 0 { // finished before: nothing was written
		fmt.Fprintf(env.Stdout, "the run in %s is already finished (%d steps); nothing to do (raise --steps to continue it)\n", out, s.Steps)
		return
	}
	fmt.Fprintf(env.Stdout, "trained %s hypernetwork for %q: %d steps (%d skipped) in %.1fs\n",
		o.Modulator.Kind, o.RewardSpec, s.Steps, s.Skipped, res.Seconds)
	fmt.Fprintf(env.Stdout, "batch reward: %.4f over the first 10%% of steps -> %.4f over the last 10%%\n", s.RewardFirst, s.RewardLast)
	if o.Reg == hypernet.RegLogDet {
		fmt.Fprintf(env.Stdout, "logdet: %.2f%% of training samples had a diverging series (not trained on)\n", 100*s.Diverged)
	}
	fmt.Fprintf(env.Stdout, "wrote %s, %s and %s\n", filepath.Join(out, infer.WeightsFile),
		filepath.Join(out, infer.ConfigFile), filepath.Join(out, infer.CurveFile))
}

// trainModelChecks checks the options against the model: the reward spec over its rewards
// (default: its default reward), the objective for its noise shape, a LoRA hypernetwork on its
// backbone, and the memory estimate.
func trainModelChecks(fs *flag.FlagSet, m *family.Model, o *pipeline.TrainOptions) error {
	if !flagSet(fs, "reward") {
		o.RewardSpec = m.DefaultReward
	}
	reward, err := m.Rewards.Parse(o.RewardSpec)
	if err != nil {
		return cli.Usagef("train: %v", err)
	}
	weight := o.RegWeight
	if o.Reg == hypernet.RegMeanSquare && o.Beta > 0 { // --beta is the tilt's temperature for mean-sq too
		weight = hypernet.MeanSquareWeight(o.Beta, m.Generator.NoiseShape())
	}
	obj := hypernet.Objective{Reward: reward, Reg: o.Reg, Weight: weight, Beta: o.Beta, LogDet: o.LogDet,
		ExactLogDet: o.Modulator.Kind == infer.KindFlow || o.Modulator.Kind == infer.KindGaussian}
	if err := obj.Validate(m.Generator.NoiseShape()); err != nil {
		return cli.Usagef("train: %v", err)
	}
	if infer.DenseMatrix(o.Modulator.Kind) { // a D x D matrix per prompt: refused up front past its bound
		if _, err := o.Modulator.Build(m.Generator, ""); err != nil {
			return cli.Usagef("train: %v", err)
		}
	}
	if c, ok := m.Generator.(family.LoRAChecker); ok && (o.Modulator.Kind == infer.KindLoRA || o.Modulator.Conditioner == infer.ConditionerLoRA) {
		if err := c.CheckLoRA(); err != nil {
			return cli.Usagef("--modulator lora: %v", err)
		}
	}
	return checkMemoryFit("train", "--batch", o.Train.BatchSize, func(b int) int64 {
		ob := *o
		ob.Train.BatchSize = b
		return pipeline.EstimateTrainBytes(m, ob)
	})
}

// runFolderUsage makes a refusal of the run folder's rules (resume with other settings, ...) a
// usage error: the user must change the flags.
func runFolderUsage(err error) error {
	if errors.Is(err, infer.ErrRunFolder) {
		return cli.Usagef("train: %v", err)
	}
	return err
}
