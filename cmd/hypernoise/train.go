package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/progress"
	"github.com/hypernoise/hypernoise/rewards/imagerewards"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "train",
		Summary: "train a noise hypernetwork for a reward on the embedded Fashion-MNIST generator",
		Run:     runTrain,
	})
}

func runTrain(env *cli.Env, args []string) error {
	def := pipeline.DefaultTrainOptions()
	fs := env.FlagSet("train", `Usage: hypernoise train --reward SPEC --out DIR [flags]

Trains a noise hypernetwork f for the embedded one-step generator g: eps' = eps + f(eps, c),
x = g(eps', c), minimizing  -r(x, c) + reg_weight * mean(f^2)  over fresh noise and random prompts.
The folder receives hypernet.safetensors + hypernet.json (reward spec, architecture, base-model hash),
curve.png (loss and reward per step) and train.safetensors/train.json (resumable checkpoint).
Rewards (SPEC is name=weight[,name=weight...], e.g. align=1,realism=0.5):
`+imagerewards.Registry(nil).Help())
	spec := fs.String("reward", def.RewardSpec, "reward spec")
	out := fs.String("out", "", "output folder (required)")
	kind := fs.String("modulator", def.Modulator.Kind, "hypernetwork: lora (LoRA copy of the student, the paper's), mlp (standalone) or dial (mlp conditioned on beta, a tilt dial)")
	betaRange := fs.String("beta-range", "0.25,4", "dial: the range lo,hi of beta it is trained over (log-uniform)")
	rank := fs.Int("rank", def.Modulator.Rank, "LoRA rank")
	alpha := fs.Float64("alpha", 0, "LoRA alpha (0: 2*rank)")
	hidden := fs.Int("hidden", 256, "MLP modulator hidden width")
	layers := fs.Int("layers", 2, "MLP modulator hidden layers")
	reg := fs.String("reg", string(def.Reg), fmt.Sprintf("regularizer: %v", hypernet.Regularizers()))
	regWeight := fs.Float64("reg-weight", def.RegWeight, "weight of the mean-square or chi regularizer")
	beta := fs.Float64("beta", 1, "tilt temperature for the kl, exact-kl and logdet regularizers")
	probes := fs.Int("probes", def.LogDet.Probes, "logdet: Rademacher probes per sample")
	terms := fs.Int("terms", def.LogDet.Terms, "logdet: series terms after the first (k = 2..terms+1)")
	steps := fs.Int("steps", def.Train.Steps, "optimizer steps")
	batch := fs.Int("batch", def.Train.BatchSize, "samples per step")
	opt := fs.String("optimizer", def.Train.Optimizer, "adamw (weight decay 1e-4) or sgd (momentum 0.9)")
	lr := fs.Float64("lr", def.Train.LR, "peak learning rate")
	warmup := fs.Int("warmup", def.Train.WarmupSteps, "linear warm-up steps")
	clip := fs.Float64("clip", def.Train.ClipNorm, "gradient-norm clip (0: off)")
	noise := fs.String("noise", string(def.Train.Noise), fmt.Sprintf("noise mode: %v", hypernet.NoiseModes()))
	seed := fs.Int64("seed", def.Train.Seed, "seed for initialization and noise")
	every := fs.Int("checkpoint-every", def.Train.CheckpointEvery, "steps between checkpoints")
	resume := fs.Bool("resume", false, "continue the run checkpointed in --out (same reward, model and settings; --steps may grow)")
	force := fs.Bool("force", false, "discard the run in --out, if any, and start over")
	quiet := fs.Bool("quiet", false, "no progress output")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	modelSpec := fs.String("model", "", modelFlagUsage)
	backendName := cli.BackendFlag(fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	if *out == "" {
		return cli.Usagef("train: --out DIR is required")
	}
	o := def
	o.RewardSpec = *spec
	o.Modulator = infer.ModulatorSpec{Kind: *kind, Rank: *rank, Alpha: *alpha}
	if *kind == infer.KindMLP {
		o.Modulator = infer.ModulatorSpec{Kind: *kind, Hidden: *hidden, Layers: *layers}
	}
	if *kind == infer.KindDial {
		o.Modulator = infer.ModulatorSpec{Kind: *kind, Hidden: *hidden, Layers: *layers}
		var lo, hi float64
		if n, err := fmt.Sscanf(strings.ReplaceAll(*betaRange, ",", " "), "%g %g", &lo, &hi); err != nil || n != 2 {
			return cli.Usagef("train: --beta-range must be lo,hi, got %q", *betaRange)
		}
		o.Modulator.BetaRange = [2]float64{lo, hi}
	}
	if err := o.Modulator.Validate(); err != nil {
		return cli.Usagef("train: %v", err)
	}
	r, err := hypernet.ParseRegularizer(*reg)
	if err != nil {
		return cli.Usagef("train: %v", err)
	}
	if *kind == infer.KindDial && !r.Tempered() {
		return cli.Usagef("train: the tilt dial is trained against r/beta and needs a beta-tempered regularizer (--reg kl, exact-kl or logdet), not %s", r)
	}
	o.Reg, o.RegWeight, o.Beta = r, *regWeight, *beta
	if err := infer.CheckObjective(r, *regWeight, *beta); err != nil {
		return cli.Usagef("train: %v", err)
	}
	o.LogDet.Probes, o.LogDet.Terms = *probes, *terms
	if err := (hypernet.Objective{Reward: imagerewards.BrightnessReward(), Reg: r, Weight: *regWeight, Beta: *beta, LogDet: o.LogDet}).Validate([]int{7, 7, 4}); err != nil {
		return cli.Usagef("train: %v", err)
	}
	nm, err := hypernet.ParseNoiseMode(*noise)
	if err != nil {
		return cli.Usagef("train: %v", err)
	}
	o.Train.Steps, o.Train.BatchSize, o.Train.LR, o.Train.WarmupSteps = *steps, *batch, *lr, *warmup
	o.Train.ClipNorm, o.Train.Noise, o.Train.Seed, o.Train.CheckpointEvery = *clip, nm, *seed, *every
	switch *opt {
	case hypernet.SGD:
		s := hypernet.DefaultSGD()
		o.Train.Optimizer, o.Train.Momentum, o.Train.WeightDecay = s.Optimizer, s.Momentum, s.WeightDecay
	case hypernet.AdamW:
		a := hypernet.DefaultAdamW()
		o.Train.Optimizer, o.Train.Momentum, o.Train.WeightDecay = a.Optimizer, a.Momentum, a.WeightDecay
	default:
		return cli.Usagef("train: unknown --optimizer %q; allowed: %s, %s", *opt, hypernet.SGD, hypernet.AdamW)
	}
	if err := o.Train.Validate(); err != nil {
		return cli.Usagef("train: %v", err)
	}
	if *modelSpec == "" {
		if err := pipeline.CheckRewardSpec(o.RewardSpec); err != nil {
			return cli.Usagef("train: %v", err)
		}
	}
	o.OutDir, o.Resume, o.Force = *out, *resume, *force
	if err := pipeline.CheckRunFolder(o.OutDir, o.Resume, o.Force); err != nil {
		return cli.Usagef("train: %v", err)
	}
	prog := progress.New(env.Stderr, "train", *quiet || *asJSON)
	var hn *infer.Hypernet
	var res *hypernet.TrainResult
	if *modelSpec != "" {
		backend, err := cli.Backend(*backendName)
		if err != nil {
			return err
		}
		defer backend.Finalize()
		m, im, err := loadModel(*modelSpec, backend)
		if err != nil {
			return err
		}
		if !flagSet(fs, "reward") {
			o.RewardSpec = im.DefaultReward
		}
		if _, err := im.Rewards.Parse(o.RewardSpec); err != nil {
			return cli.Usagef("train: %v", err)
		}
		if err := checkModulator(m, o.Modulator.Kind); err != nil {
			return err
		}
		if err := checkModelMemory(m, "train", o.Train.BatchSize, true, loraRank(o.Modulator), "--batch", 1); err != nil {
			return err
		}
		if hn, res, err = pipeline.TrainModel(backend, im, o, prog); err != nil {
			return runFolderUsage(err)
		}
	} else {
		if err := cli.CheckMemory("train", pipeline.EstimateTrainBytes(o)); err != nil {
			return err
		}
		m, err := fashion.Default()
		if err != nil {
			return err
		}
		if _, err := imagerewards.Registry(m).Parse(o.RewardSpec); err != nil {
			return cli.Usagef("train: %v", err)
		}
		backend, err := cli.Backend(*backendName)
		if err != nil {
			return err
		}
		defer backend.Finalize()
		if hn, res, err = pipeline.TrainHypernet(backend, m, o, prog); err != nil {
			return runFolderUsage(err)
		}
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, hn.Config)
	}
	s := hn.Config.Result
	if res.StartStep == res.Steps && o.Resume && len(res.Loss) == 0 { // finished before: nothing was written
		fmt.Fprintf(env.Stdout, "the run in %s is already finished (%d steps); nothing to do (raise --steps to continue it)\n", *out, s.Steps)
		return nil
	}
	fmt.Fprintf(env.Stdout, "trained %s hypernetwork for %q: %d steps (%d skipped) in %.1fs\n",
		o.Modulator.Kind, o.RewardSpec, s.Steps, s.Skipped, res.Seconds)
	fmt.Fprintf(env.Stdout, "batch reward: %.4f over the first 10%% of steps -> %.4f over the last 10%%\n", s.RewardFirst, s.RewardLast)
	if o.Reg == hypernet.RegLogDet {
		fmt.Fprintf(env.Stdout, "logdet: %.2f%% of training samples had a diverging series (not trained on)\n", 100*s.Diverged)
	}
	fmt.Fprintf(env.Stdout, "wrote %s, %s and %s\n", filepath.Join(*out, infer.WeightsFile),
		filepath.Join(*out, infer.ConfigFile), filepath.Join(*out, infer.CurveFile))
	return nil
}

// runFolderUsage makes a refusal of the run folder's rules (resume with other settings, ...) a
// usage error: the user must change the flags.
func runFolderUsage(err error) error {
	if errors.Is(err, pipeline.ErrRunFolder) {
		return cli.Usagef("train: %v", err)
	}
	return err
}
