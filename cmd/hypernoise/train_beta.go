package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline"
)

// resolveBeta applies --beta's meaning to the regularizer r: the tilt temperature for every
// regularizer that targets a tilt (kl, exact-kl, logdet: default 1; mean-sq: it sets the weight,
// so --reg-weight may not be given too, and without --beta the weight decides); refused for chi and
// none, which target no tilt, and for the tilt dial (modulator kind), which trains every beta of
// its range; required (or --reg-weight) for the dense-matrix modulators (affine, gaussian).
func resolveBeta(fs *flag.FlagSet, kind string, r hypernet.Regularizer, beta *float64) error {
	set := flagSet(fs, "beta")
	switch {
	case set && kind == infer.KindDial:
		return cli.Usagef("train: --beta does not apply to the tilt dial, which is trained over every beta of --beta-range (and sampled at any beta in it with sample --beta)")
	case set && !r.HasTilt():
		return cli.Usagef("train: --beta is the tilt temperature, and the %s regularizer targets no tilt; use --reg kl, logdet, exact-kl or mean-sq", r)
	case set && r == hypernet.RegMeanSquare && flagSet(fs, "reg-weight"):
		return cli.Usagef("train: give --beta or --reg-weight, not both: mean-sq's weight is beta*D/2 (D noise elements)")
	case set:
		if err := hypernet.CheckRange("--beta", *beta, hypernet.MinBeta, hypernet.MaxBeta); err != nil {
			return cli.Usagef("train: %v", err)
		}
	case infer.DenseMatrix(kind) && !flagSet(fs, "reg-weight"):
		return cli.Usagef("train: --modulator %s needs --beta (or --reg-weight): its optimum exists only while beta exceeds the reward's curvature in the noise, which the default, 1/D, does not on the models measured; use a beta a pool of base samples can resample, e.g. --reward-norm std-within --beta 1", kind)
	case r.Tempered():
		*beta = 1
	}
	return nil
}

// weightBeta checks the tilt 2w/D that a mean-sq weight w means over D noise elements, where it
// sets the beta: a flow's default beta (flowBeta: o.Beta becomes it), and a --reg-weight given with
// mean-sq (hypernet.json records it). Outside beta's range it is a usage error.
func weightBeta(fs *flag.FlagSet, w float64, r hypernet.Regularizer, flowBeta bool, noise []int, o *pipeline.TrainOptions) error {
	if !flowBeta && !(r == hypernet.RegMeanSquare && flagSet(fs, "reg-weight") && w > 0) {
		return nil
	}
	beta := hypernet.Objective{Reg: hypernet.RegMeanSquare, Weight: w}.TiltBeta(noise)
	if err := hypernet.CheckRange("beta (2*reg-weight/D)", beta, hypernet.MinBeta, hypernet.MaxBeta); err != nil {
		return cli.Usagef("train: --reg-weight %g: %v", w, err)
	}
	if flowBeta {
		o.Beta = beta
	}
	return nil
}

// trainUsage makes the refusals a user fixes with flags usage errors: the run folder's rules
// (resume with other settings, ...) and a reward that cannot be normalized (zero spread).
func trainUsage(err error) error {
	var zs *hypernet.ZeroSpreadError
	if errors.As(err, &zs) {
		return cli.Usagef("train: %v", zs)
	}
	return runFolderUsage(err)
}

// scheduleName is the flag value of a schedule ("" is constant).
func scheduleName(s string) string {
	if s == "" {
		return hypernet.ScheduleConstant
	}
	return s
}

// applyBudget reads --budget: a whole number of steps (it replaces --steps, which may not be given
// too), or seconds written with an s suffix (then --steps, default hypernet.MaxSteps, is the most
// the budget may run).
func applyBudget(fs *flag.FlagSet, budget string, cfg *hypernet.TrainConfig) error {
	if budget == "" {
		return nil
	}
	if flagSet(fs, "steps") && !strings.HasSuffix(budget, "s") {
		return cli.Usagef("train: give --budget STEPS or --steps, not both")
	}
	if secs, ok := strings.CutSuffix(budget, "s"); ok {
		v, err := strconv.ParseFloat(secs, 64)
		if err != nil {
			return cli.Usagef("train: --budget must be steps (2000) or seconds (90s), got %q", budget)
		}
		if err := hypernet.CheckRange("--budget seconds", v, 1, hypernet.MaxBudgetSeconds); err != nil {
			return cli.Usagef("train: %v", err)
		}
		cfg.BudgetSeconds = v
		if !flagSet(fs, "steps") {
			cfg.Steps = hypernet.MaxSteps
		}
		return nil
	}
	n, err := strconv.Atoi(budget)
	if err != nil {
		return cli.Usagef("train: --budget must be steps (2000) or seconds (90s), got %q", budget)
	}
	if err := hypernet.CheckIntRange("--budget steps", n, 1, hypernet.MaxSteps); err != nil {
		return cli.Usagef("train: %v", err)
	}
	cfg.Steps = n
	return nil
}

// matchSettings are the flags that set tilt matching up beside its weight.
var matchSettings = []string{"tilt-match-space", "tilt-match-pool", "tilt-match-size"}

// tiltMatchFlags reads --tilt-match and its settings into o.TiltMatch: a weight out of range, an
// unknown space, a pool or size out of range, a regularizer without a tilt, the tilt dial (no
// single beta), or settings beside --tilt-match 0 are usage errors. Without --tilt-match, the
// default (autoTiltMatch) is decided once the model is loaded.
func tiltMatchFlags(fs *flag.FlagSet, f *trainFlags, r hypernet.Regularizer, o *pipeline.TrainOptions) error {
	if !flagSet(fs, "tilt-match") {
		return nil
	}
	if *f.tiltMatch == 0 {
		for _, name := range matchSettings {
			if flagSet(fs, name) {
				return cli.Usagef("train: --%s is a setting of tilt matching, which --tilt-match 0 turns off", name)
			}
		}
		return nil
	}
	if !r.HasTilt() {
		return cli.Usagef("train: --tilt-match matches the tilt at --beta, and the %s regularizer targets no tilt", r)
	}
	if *f.kind == infer.KindDial {
		return cli.Usagef("train: --tilt-match needs one beta, and the tilt dial trains over --beta-range")
	}
	return setTiltMatch(fs, f, hypernet.MatchSpec{Weight: *f.tiltMatch}, o)
}

// setTiltMatch completes spec with the settings flags, checks it, and turns matching on: with
// --prompts-per-step not given, each step then holds 2 prompts, so that every row has partners of
// its prompt in the batch (the energy distance's within-batch term).
func setTiltMatch(fs *flag.FlagSet, f *trainFlags, spec hypernet.MatchSpec, o *pipeline.TrainOptions) error {
	spec.Space, spec.Pool, spec.Size = *f.matchSpace, *f.matchPool, *f.matchSize
	if err := spec.Validate(); err != nil {
		return cli.Usagef("train: %v", err)
	}
	o.TiltMatch = &spec
	if !flagSet(fs, "prompts-per-step") {
		o.Train.PromptsPerStep = min(2, o.Train.BatchSize)
	}
	return nil
}

// autoTiltMatch turns tilt matching on by default (hypernet.AutoMatch) for a LoRA hypernetwork
// trained for a --beta given on the command line, at the weight AutoMatchWeight(beta), where its
// reference costs no more than the training's own samples (pool x prompts <= steps x batch) and
// no time budget is set. Where it stays off, a settings flag is a usage error, and a run that
// would have had it says why not (on stderr, unless --quiet).
func autoTiltMatch(env *cli.Env, fs *flag.FlagSet, f *trainFlags, r hypernet.Regularizer, prompts int, o *pipeline.TrainOptions) error {
	off := func() error {
		for _, name := range matchSettings {
			if flagSet(fs, name) {
				return cli.Usagef("train: --%s is a setting of tilt matching, which is off here (give --tilt-match W; docs/convergence.md, ninth round)", name)
			}
		}
		return nil
	}
	if flagSet(fs, "tilt-match") {
		return nil // asked for (tiltMatchFlags)
	}
	if !flagSet(fs, "beta") || !r.HasTilt() || o.Modulator.Kind != infer.KindLoRA {
		return off()
	}
	spec := hypernet.AutoMatch(o.Beta)
	if spec == nil {
		return off()
	}
	why := ""
	if n := *f.matchPool * max(1, prompts); o.Train.BudgetSeconds > 0 {
		why = "a time budget is set, and the reference's pool would be drawn outside it"
	} else if n > o.Train.Steps*o.Train.BatchSize {
		why = fmt.Sprintf("its reference's pool (%d base samples) would generate more than the training does (%d steps x %d)", n, o.Train.Steps, o.Train.BatchSize)
	}
	if why != "" {
		if !*f.quiet {
			fmt.Fprintf(env.Stderr, "train: tilt matching, the default at beta %g (weight %g), is off: %s; --tilt-match %g turns it on\n", o.Beta, spec.Weight, why, spec.Weight)
		}
		return off()
	}
	return setTiltMatch(fs, f, *spec, o)
}
