package pipeline

import (
	"fmt"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// The defaults of training, evaluation and the demo on the embedded default, in one place (the
// methods' own knobs are in the method registry: hypernoise.MethodInfo.Defaults).

// DefaultChunk is the most rows (images, or best-of-N candidates) a method runs in one compiled
// call. It bounds memory: measured peak of `hypernoise sample --method best-of-n --best-of 100
// --prompt all --n 16` is in docs (see notes of issue 9).
const DefaultChunk = hypernoise.DefaultChunk

// MethodDefault is a registered method's default knobs (hypernoise.MethodInfo.Defaults).
func MethodDefault(name string) hypernoise.Knobs {
	info, err := hypernoise.LookupMethod(name)
	if err != nil {
		panic(fmt.Sprintf("pipeline: %v", err)) // the toolkit's own methods are always registered
	}
	return info.Defaults
}

// BrightnessSpec is the demo's second reward. The weight 0.1 sets the tilt: with weight 1 the
// hypernetwork turns every image into a white blob (brightness 0.28 -> 0.67, FD 50 -> 405 in our
// run); with 0.1 the shift is visible while the images stay recognizable.
const BrightnessSpec = "brightness=0.1"

// DefaultTrainOptions are CPU-friendly defaults for the embedded default: LoRA rank 8 on the
// student, the reference regularizer reg_weight*mean(f^2) with weight 0.5, AdamW (lr 1e-3, weight
// decay 1e-4) with 20 warm-up steps and clip 1, batch 32, fresh noise, 1000 steps (--budget trades
// time for quality).
//
// 1000 steps, not 300: in issue 19's A/B (docs/convergence.md; align=1, surrogate at beta 0.05, 0.2,
// 1) the share of the resampled tilt's reward gain rose from 0.85/0.73/0.38 at 300 steps to
// 0.96/0.88/0.68 at 1000 (about 22 s of training on 2 idle cores), while a larger learning rate
// (3e-3; 1e-2 diverged), rank 32, a cosine schedule or the log-det KL did not do better per step.
//
// The reference code uses SGD (momentum 0.9, lr 1e-3) for its smaller model; on this generator
// and budget we measured (300 steps, 160 evaluation images) held-out alignment 0.86 with that
// setting against 1.00 with AdamW at lr 1e-3, so AdamW is the default (--optimizer sgd restores it).
func DefaultTrainOptions() TrainOptions {
	cfg := hypernet.DefaultAdamW()
	cfg.Steps = 1000
	cfg.BatchSize = 32
	cfg.WarmupSteps = 20
	cfg.LR = 1e-3
	cfg.CheckpointEvery = 50
	return TrainOptions{
		RewardSpec: fashion.DefaultReward,
		Modulator:  infer.ModulatorSpec{Kind: infer.KindLoRA, Rank: 8},
		Reg:        hypernet.RegMeanSquare,
		RegWeight:  0.5,
		LogDet:     hypernet.DefaultLogDet(),
		Train:      cfg,
	}
}

// DefaultEvalOptions: 16 seeds per prompt (160 images), ReNO and HyperNoise+ReNO with the
// registry's default steps (the paper's 50; 10 warm-start), best-of-N with N = 2*50 (ReNO's 50
// forward + 50 backward evaluations) and N = 4.
func DefaultEvalOptions() EvalOptions {
	return EvalOptions{SeedsPerPrompt: 16, Seed: 2025, RenoSteps: MethodDefault(reno.Name).Steps, WarmRenoSteps: MethodDefault(reno.WarmName).Steps,
		SmallN: 4, FinetuneSteps: 300, FinetuneRank: 8, GridSeeds: 8, Batch: 160, TiltPool: DefaultTiltPool}
}

// demoSettings returns the training and evaluation settings of the demo (quick: lower precision).
func demoSettings(quick bool, seed int64) (TrainOptions, EvalOptions) {
	to := DefaultTrainOptions()
	to.Train.Seed = seed
	eo := DefaultEvalOptions()
	if quick {
		to.Train.Steps = 120
		eo.SeedsPerPrompt = 6
		eo.GridSeeds = 6
	}
	eo.FinetuneSteps = to.Train.Steps
	return to, eo
}
