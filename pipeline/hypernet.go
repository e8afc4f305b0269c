// Package pipeline runs the jobs of the toolkit on a model of any family (package family), one
// function per job: Train a noise hypernetwork for a reward spec into a folder, NewPipeline to
// load folders for inference, Sample, Evaluate every method, and the benchmarks of the embedded
// default (Demo, RunCompositional). The command line is a thin layer over it.
package pipeline

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/eval/report"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/progress"
	"github.com/hypernoise/hypernoise/rewards"
)

// TrainOptions configures Train.
type TrainOptions struct {
	RewardSpec string
	Modulator  infer.ModulatorSpec
	Reg        hypernet.Regularizer // default: the reference code's mean-square
	RegWeight  float64              // reference: 0.5
	// Beta is the tilt temperature: for kl, exact-kl and logdet their beta; for mean-sq, when > 0,
	// it sets the weight (hypernet.MeanSquareWeight; RegWeight is then ignored). hypernet.json
	// records the beta actually trained for (hypernet.Objective.TiltBeta).
	Beta float64
	// RewardNorm is hypernet.NormNone (the reward as given), hypernet.NormStd (each reward term
	// divided by its spread under the base generator, measured once before training and stored) or
	// hypernet.NormStdWithin (divided by its pooled spread within a prompt, likewise).
	RewardNorm string
	LogDet     hypernet.LogDet // for the logdet regularizer
	// TiltMatch, if set, adds the energy distance to a resampled tilt reference to the loss
	// (hypernet.MatchSpec; its Seed is set from Train.Seed). It needs a tilt beta.
	TiltMatch *hypernet.MatchSpec
	Train     hypernet.TrainConfig
	OutDir    string // receives weights, config, curve, and resumable checkpoints
	Resume    bool   // continue the run checkpointed in OutDir (same definition and settings)
	Force     bool   // start afresh in an OutDir that holds a run, discarding it
}

// NewPipeline returns the inference pipeline over model m, loading the opened hypernetwork
// folders (each under its folder's base name; see infer.OpenFolders).
func NewPipeline(backend backends.Backend, m *family.Model, hypernets ...*infer.Folder) (*infer.Pipeline, error) {
	p, err := infer.New(backend, m, DefaultChunk)
	if err != nil {
		return nil, err
	}
	for _, f := range hypernets {
		if _, err := p.LoadFolder(f); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// Train trains a hypernetwork for model im (which it modifies: the adapters live in im.Context)
// with a reward spec over im.Rewards, and writes it to opts.OutDir with the model's reference
// (family and argument) in hypernet.json. A folder with a checkpoint and Resume set continues
// that run; a finished one is returned as it is.
func Train(backend backends.Backend, im *family.Model, opts TrainOptions, prog progress.Func) (hn *infer.Hypernet, res *hypernet.TrainResult, err error) {
	if opts.OutDir == "" {
		return nil, nil, fmt.Errorf("no output folder")
	}
	prob, mod, reward, hcfg, drawRef, err := trainProblem(backend, im, &opts, prog)
	if err != nil {
		return nil, nil, err
	}
	cfg := hcfg.Train
	// What defines the model is stored in the checkpoint; a resume with anything else is refused.
	cfg.Defines = hcfg.Defines()
	if err := infer.CheckRunFolder(opts.OutDir, opts.Resume, opts.Force); err != nil {
		return nil, nil, err
	}
	_, statErr := os.Stat(opts.OutDir)
	created := os.IsNotExist(statErr)
	unlock, err := ckpt.LockDir(opts.OutDir) // one writer per run folder
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil && created { // a failed run that wrote nothing leaves no folder behind
			_ = ckpt.RemoveEmptyRun(opts.OutDir)
		}
		unlock()
	}()
	if opts.Resume {
		if err := hypernet.CheckResume(prob, cfg); err != nil {
			return nil, nil, &infer.RunFolderError{Msg: err.Error()}
		}
		if f := infer.FinishedRun(opts.OutDir, hcfg); f != nil {
			return finished(im, f, mod, reward)
		}
	}
	if opts.Force {
		if err := infer.ClearRunFolder(opts.OutDir); err != nil {
			return nil, nil, err
		}
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, nil, err
	}
	if drawRef != nil {
		skipped, err := drawRef()
		if err != nil {
			return nil, nil, err
		}
		if skipped != "" { // an Auto term whose pool cannot resample the tilt: trained without it
			hcfg.TiltMatchSkipped = skipped
			prog.Report(1, 1, "tilt matching is off: "+skipped)
		}
	}
	res, err = hypernet.Train(backend, im.Context, prob, cfg, prog)
	if err != nil {
		return nil, nil, err
	}
	hcfg.Result = summarize(res)
	hcfg.Train.Steps = res.Config.Steps // a time budget fixes the step count during the run
	hn, err = infer.NewHypernet(filepath.Base(filepath.Clean(opts.OutDir)), opts.OutDir,
		context.ScopeSeparator+infer.SavedScope, mod, reward, hcfg)
	if err != nil {
		return nil, nil, err
	}
	curve, err := curvePNG(res, opts.RewardSpec)
	if err != nil {
		return nil, nil, err
	}
	return hn, res, infer.SaveFolder(im.Context, hn.Scope, opts.OutDir, hn.Config, curve)
}

// trainProblem builds the training problem of opts on model im (the reward normalized when
// opts.RewardNorm asks; the mean-square weight set by beta when one is given; opts.Beta becomes
// the beta actually trained for), its modulator and reward, and the config hypernet.json will hold.
func trainProblem(backend backends.Backend, im *family.Model, opts *TrainOptions, prog progress.Func) (
	prob *hypernet.Problem, mod hypernoise.Modulator, reward hypernoise.Reward, hcfg infer.Config, drawRef func() (string, error), err error) {
	m := im.Generator
	sum, err := im.Rewards.Parse(opts.RewardSpec)
	if err != nil {
		return nil, nil, nil, hcfg, nil, err
	}
	trained, scale, err := normalizeReward(backend, im, sum, *opts)
	if err != nil {
		return nil, nil, nil, hcfg, nil, err
	}
	mod, err = opts.Modulator.Build(m, infer.SavedScope)
	if err != nil {
		return nil, nil, nil, hcfg, nil, err
	}
	if opts.Reg == hypernet.RegMeanSquare && opts.Beta > 0 {
		opts.RegWeight = hypernet.MeanSquareWeight(opts.Beta, m.NoiseShape())
	}
	obj := hypernet.Objective{Reward: trained, Reg: opts.Reg, Weight: opts.RegWeight, Beta: opts.Beta, LogDet: opts.LogDet}
	if opts.TiltMatch != nil {
		mt := &hypernet.Match{MatchSpec: *opts.TiltMatch} // a copy: train-seeds runs share the caller's
		mt.Seed = opts.Train.Seed
		opts.TiltMatch = &mt.MatchSpec
		obj.Match = mt
		beta := obj.TiltBeta(m.NoiseShape())
		drawRef = func() (skipped string, err error) {
			mt.Ref, skipped, err = tiltReference(backend, im, trained, beta, mt.MatchSpec, prog)
			return skipped, err
		}
	}
	if d, ok := mod.(hypernet.Dial); ok {
		prob, err = hypernet.NewDialProblem(m, d, obj)
		opts.Beta = infer.DialDefaultBeta(d.BetaRange())
	} else {
		prob, err = hypernet.NewProblem(m, mod, obj)
		opts.Beta = obj.TiltBeta(m.NoiseShape()) // the beta actually trained for (0: no tilt)
	}
	if err != nil {
		return nil, nil, nil, hcfg, nil, err
	}
	cfg := opts.Train
	cfg.CheckpointDir = opts.OutDir
	cfg.Resume, cfg.Force = opts.Resume, opts.Force
	hcfg = infer.Config{
		Format: infer.ConfigFormat, Generator: m.Name(), Model: im.Ref(), BaseHash: im.Hash, RewardSpec: opts.RewardSpec,
		Modulator: opts.Modulator, Reg: opts.Reg, RegWeight: opts.RegWeight, Beta: opts.Beta, Train: cfg,
		RewardScale: scale, TiltMatch: opts.TiltMatch,
	}
	if scale != nil {
		hcfg.RewardNorm = opts.RewardNorm
	}
	if opts.Reg == hypernet.RegLogDet {
		ld := opts.LogDet
		hcfg.LogDet = &ld
	}
	return prob, mod, sum, hcfg, drawRef, nil
}

// finished loads the weights of a finished run into im's context (under the saved scope, where
// training keeps them) and returns it with a result of no new steps.
func finished(im *family.Model, f *infer.Folder, mod hypernoise.Modulator, reward hypernoise.Reward) (*infer.Hypernet, *hypernet.TrainResult, error) {
	scope := context.ScopeSeparator + infer.SavedScope
	if _, err := f.LoadInto(im.Context, scope); err != nil {
		return nil, nil, err
	}
	hn, err := infer.NewHypernet(f.Name(), f.Dir, scope, mod, reward, f.Config)
	if err != nil {
		return nil, nil, err
	}
	s := f.Config.Result
	return hn, &hypernet.TrainResult{StartStep: s.Steps, Steps: s.Steps, Skipped: s.Skipped}, nil
}

// curvePNG plots the training loss and reward per step (nil for a run of at most one step).
func curvePNG(res *hypernet.TrainResult, spec string) ([]byte, error) {
	if len(res.Loss) <= 1 {
		return nil, nil
	}
	series := []report.Series{{Name: "loss", Y: res.Loss}}
	if r, ok := res.Metrics["reward"]; ok {
		series = append(series, report.Series{Name: "reward", Y: r})
	}
	return report.CurvesPNG("HyperNoise training ("+spec+")", "step", "batch mean", series, max(1, len(res.Loss)/30))
}

// normalizeReward returns the reward training uses: reward itself, or with opts.RewardNorm =
// hypernet.NormStd (hypernet.NormStdWithin), each term divided by its spread (its pooled
// within-prompt spread) under the base generator, measured from the training seed, with the
// spreads by reward name.
func normalizeReward(backend backends.Backend, im *family.Model, reward *rewards.Sum, opts TrainOptions) (hypernoise.Reward, map[string]float64, error) {
	norm, err := hypernet.ParseRewardNorm(opts.RewardNorm)
	if err != nil || norm == hypernet.NormNone {
		return reward, nil, err
	}
	measure := hypernet.RewardSpread
	if norm == hypernet.NormStdWithin {
		measure = hypernet.RewardSpreadWithin
	}
	spread, err := measure(backend, im.Context, im.Generator, reward, hypernet.SpreadSamples, opts.Train.Seed,
		im.ChunkRows(false, hypernet.SpreadChunk))
	if err != nil {
		return nil, nil, err
	}
	scaled, err := hypernet.NormalizedReward(reward, spread)
	if err != nil {
		return nil, nil, err
	}
	scale := map[string]float64{}
	for k, t := range reward.Terms() {
		scale[t.Reward.Name()] = spread[k]
	}
	return scaled, scale, nil
}

func summarize(res *hypernet.TrainResult) *infer.TrainSummary {
	s := &infer.TrainSummary{Steps: res.Steps, Skipped: res.Skipped, Seconds: max(res.Seconds, res.TotalSeconds),
		FinishedAtTime: time.Now().UTC().Format(time.RFC3339)}
	r := res.Metrics["reward"]
	if n := len(r); n > 0 {
		k := max(1, n/10)
		s.RewardFirst = mean(r[:k])
		s.RewardLast = mean(r[n-k:])
	}
	if d := res.Metrics["logdet_diverged"]; len(d) > 0 {
		s.Diverged = mean(d)
	}
	last := func(xs []float64) float64 {
		if len(xs) == 0 {
			return 0
		}
		return mean(xs[len(xs)-max(1, len(xs)/10):])
	}
	s.RegLast = last(res.Metrics["reg"])
	s.SeriesLast = last(res.Metrics["logdet_series"])
	return s
}

// mean is the mean of the finite values of xs (0 if none): a skipped step's NaN reward does not
// make the summary unwritable.
func mean(xs []float64) float64 {
	var s float64
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			s += x
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}
