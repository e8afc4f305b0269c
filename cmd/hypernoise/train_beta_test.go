package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
)

// TestTrainRecordsBeta: on the ONNX fixture, --beta sets the default regularizer (mean-sq) to the
// tilt at that beta (weight beta*D/2) and hypernet.json records it; without --beta it records the
// beta its weight means (2*weight/D); --reward-norm std stores the reward's spread.
func TestTrainRecordsBeta(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	spec := filepath.Join(fixtureDir, "spec.json")
	dir := t.TempDir()
	train := func(name string, args ...string) infer.Config {
		out := filepath.Join(dir, name)
		all := append([]string{"train", "--model", spec, "--reward", "score=1", "--out", out, "--steps", "2", "--batch", "4", "--quiet"}, args...)
		if code, _, msg := run(all...); code != 0 {
			t.Fatalf("%v: exit %d: %s", all, code, msg)
		}
		f, err := infer.OpenFolder(out)
		if err != nil {
			t.Fatal(err)
		}
		return f.Config
	}
	withBeta := train("beta", "--beta", "0.2")
	if withBeta.Reg != "mean-sq" || withBeta.Beta != 0.2 || !(withBeta.RegWeight > 0) {
		t.Fatalf("--beta 0.2: regularizer %s, beta %g, weight %g; want mean-sq at beta 0.2", withBeta.Reg, withBeta.Beta, withBeta.RegWeight)
	}
	d := 2 * withBeta.RegWeight / withBeta.Beta // the noise size the weight was made from
	if d < 1 || math.Abs(d-math.Round(d)) > 1e-9 {
		t.Fatalf("weight %g for beta 0.2 is not beta*D/2 for a whole D", withBeta.RegWeight)
	}
	plain := train("plain")
	if want := 2 * plain.RegWeight / d; math.Abs(plain.Beta-want) > 1e-12 || plain.RewardNorm != "" {
		t.Errorf("no --beta: recorded beta %g (norm %q), want 2*%g/%g = %g", plain.Beta, plain.RewardNorm, plain.RegWeight, d, want)
	}
	norm := train("norm", "--reward-norm", "std", "--reg", "kl", "--beta", "0.5")
	if s := norm.RewardScale["score"]; norm.RewardNorm != "std" || !(s > 0) || norm.Beta != 0.5 {
		t.Errorf("--reward-norm std: norm %q, scale %v, beta %g", norm.RewardNorm, norm.RewardScale, norm.Beta)
	}
	// Tilt matching is recorded with its settings, the training seed and the prompts per step it
	// sets; both spaces train.
	for _, space := range []string{"image", "noise"} {
		tm := train("match-"+space, "--beta", "0.5", "--tilt-match", "0.3", "--tilt-match-space", space,
			"--tilt-match-pool", "32", "--tilt-match-size", "8", "--seed", "5")
		want := hypernet.MatchSpec{Weight: 0.3, Space: space, Pool: 32, Size: 8, Seed: 5}
		if tm.TiltMatch == nil || *tm.TiltMatch != want || tm.Train.PromptsPerStep != 2 || tm.Defines()["tilt_match"] == "" {
			t.Errorf("--tilt-match in %s: recorded %+v, prompts per step %d; want %+v and 2", space, tm.TiltMatch, tm.Train.PromptsPerStep, want)
		}
	}
	// The reference (a pool of base samples scored) is drawn for a run that trains, and not again
	// when --resume finds the run finished.
	out := filepath.Join(dir, "match-resume")
	args := []string{"train", "--model", spec, "--reward", "score=1", "--out", out, "--steps", "2", "--batch", "4",
		"--beta", "0.5", "--tilt-match", "1", "--tilt-match-pool", "16", "--tilt-match-size", "4"}
	for i, want := range []bool{true, false} {
		a := args
		if i == 1 {
			a = append(slices.Clone(args), "--resume")
		}
		code, _, msg := run(a...)
		if drawn := strings.Contains(msg, "tilt reference: scoring"); code != 0 || drawn != want {
			t.Errorf("run %d (%v): exit %d, reference drawn %v, want %v; stderr %q", i+1, a[len(a)-1], code, drawn, want, msg)
		}
	}
	if plain.TiltMatch != nil || plain.Defines()["tilt_match"] != "" {
		t.Errorf("no --tilt-match: recorded %+v", plain.TiltMatch)
	}
}

// TestTrainBetaBadInput: --beta where it has no meaning, together with the weight it sets, or out
// of range, and an unknown normalization, are one line with exit code 2.
func TestTrainBetaBadInput(t *testing.T) {
	dir := t.TempDir()
	checkUsageErrors(t, []string{"train", "--out", dir}, []usageCase{
		{[]string{"--reg", "chi", "--beta", "1"}, "chi regularizer targets no tilt"},
		{[]string{"--reg", "none", "--beta", "1"}, "none regularizer targets no tilt"},
		{[]string{"--beta", "0.2", "--reg-weight", "1"}, "give --beta or --reg-weight, not both"},
		{[]string{"--beta", "0"}, "--beta must be in"},
		{[]string{"--reg", "kl", "--beta", "1e9"}, "--beta must be in"},
		{[]string{"--reward-norm", "max"}, `unknown reward normalization "max"`},
		{[]string{"--modulator", "dial", "--reg", "kl", "--beta", "0.3"}, "--beta does not apply to the tilt dial"},
		{[]string{"--tilt-match", "-1"}, "--tilt-match must be in [0, 10000], got -1"},
		{[]string{"--tilt-match", "NaN"}, "--tilt-match must be in [0, 10000], got NaN"},
		{[]string{"--tilt-match", "1", "--tilt-match-space", "latent"}, `tilt-match space must be image or noise, got "latent"`},
		{[]string{"--tilt-match", "1", "--tilt-match-pool", "1"}, "--tilt-match-pool must be in [2, 1048576], got 1"},
		{[]string{"--tilt-match", "1", "--tilt-match-pool", "64", "--tilt-match-size", "65"}, "tilt-match size must be in [2, 64], got 65"},
		{[]string{"--tilt-match", "1", "--reg", "none"}, "the none regularizer targets no tilt"},
		{[]string{"--tilt-match", "1", "--modulator", "dial", "--reg", "kl"}, "--tilt-match needs one beta"},
		{[]string{"--tilt-match-pool", "64"}, "--tilt-match-pool is a setting of tilt matching, which is off here"},
		{[]string{"--beta", "1", "--tilt-match-size", "8"}, "--tilt-match-size is a setting of tilt matching, which is off here"},
		{[]string{"--tilt-match", "0", "--tilt-match-space", "noise"}, "--tilt-match-space is a setting of tilt matching, which --tilt-match 0 turns off"},
	})
}

// TestTrainAutoTiltMatch: on the embedded model, a LoRA hypernetwork trained for a given --beta
// matches the tilt by default at weight min(1, (0.05/beta)²) with 2 prompts per step, recorded as
// auto; it stays off, saying why, where the pool would generate more than the training, at
// beta 1, for another modulator and without --beta; a pool that cannot resample the tilt (ESS
// under a quarter of the reference) trains without it and hypernet.json says why, and a --resume
// of that finished run does not draw the pool again.
func TestTrainAutoTiltMatch(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	dir := t.TempDir()
	train := func(name string, args ...string) (infer.Config, string) {
		out := filepath.Join(dir, name)
		all := append([]string{"train", "--reward", "align=1", "--out", out}, args...)
		code, _, msg := run(all...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", all, code, msg)
		}
		f, err := infer.OpenFolder(out)
		if err != nil {
			t.Fatal(err)
		}
		return f.Config, msg
	}
	small := []string{"--steps", "4", "--batch", "8", "--tilt-match-pool", "3", "--tilt-match-size", "2", "--quiet"} // 3 x 10 prompts <= 4 x 8
	for _, c := range []struct {
		beta   string
		weight float64
	}{{"0.05", 1}, {"0.01", 1}, {"0.2", 0.0625}, {"0.4", 0.015625}} {
		cfg, _ := train("on-"+c.beta, append([]string{"--beta", c.beta, "--seed", "3"}, small...)...)
		want := hypernet.MatchSpec{Weight: c.weight, Space: "image", Pool: 3, Size: 2, Seed: 3, Auto: true}
		var got hypernet.MatchSpec
		if cfg.TiltMatch != nil {
			got = *cfg.TiltMatch
		}
		wOK := math.Abs(got.Weight-c.weight) < 1e-12
		got.Weight = want.Weight
		if !wOK || got != want || cfg.Train.PromptsPerStep != 2 || cfg.TiltMatchSkipped != "" {
			t.Errorf("--beta %s: tilt matching %+v, prompts per step %d, skipped %q; want %+v and 2", c.beta, cfg.TiltMatch, cfg.Train.PromptsPerStep, cfg.TiltMatchSkipped, want)
		}
	}
	for _, args := range [][]string{
		{"--beta", "0.6"},
		{"--beta", "0.05", "--modulator", "mlp"},
		{"--reg-weight", "4.9"}, // the beta-0.05 tilt, but not asked for as a beta
	} {
		cfg, _ := train("off", append(slices.Clone(args), "--steps", "4", "--batch", "8", "--quiet", "--force")...)
		if cfg.TiltMatch != nil || cfg.Train.PromptsPerStep != 0 {
			t.Errorf("%v: tilt matching %+v, prompts per step %d; want none and 0", args, cfg.TiltMatch, cfg.Train.PromptsPerStep)
		}
	}
	cfg, msg := train("costly", "--beta", "0.05", "--steps", "4", "--batch", "8")
	if cfg.TiltMatch != nil || !strings.Contains(msg, "tilt matching, the default at beta 0.05 (weight 1), is off: its reference's pool (40960 base samples) would generate more than the training does (4 steps x 8)") {
		t.Errorf("a pool costlier than the training: tilt matching %+v, stderr %q", cfg.TiltMatch, msg)
	}
	// At beta 0.01 a pool of 16 resamples the tilt with an ESS of a few samples, under 16/4.
	args := []string{"--beta", "0.01", "--steps", "5", "--batch", "32", "--tilt-match-pool", "16", "--tilt-match-size", "16"}
	cfg, msg = train("ess", args...)
	if cfg.TiltMatch == nil || !cfg.TiltMatch.Auto || !strings.Contains(cfg.TiltMatchSkipped, "effective sample size") ||
		!strings.Contains(msg, "tilt matching is off: the pool of 16 base samples per prompt resamples the tilt at beta 0.01") {
		t.Errorf("an unresampleable pool: tilt matching %+v, skipped %q, stderr %q", cfg.TiltMatch, cfg.TiltMatchSkipped, msg)
	}
	code, _, msg := run(append([]string{"train", "--reward", "align=1", "--out", filepath.Join(dir, "ess"), "--resume"}, args...)...)
	if code != 0 || strings.Contains(msg, "tilt reference: scoring") {
		t.Errorf("--resume of the finished run: exit %d, stderr %q; want 0 and no pool drawn", code, msg)
	}
}

// TestZeroSpreadIsUsage: train with --reward-norm std or std-within on a reward that is constant
// under the base model (the test family's "flat") is refused as a usage error naming the reward,
// through the command's own path.
func TestZeroSpreadIsUsage(t *testing.T) {
	for _, norm := range []string{"std", "std-within"} {
		code, _, msg := run("train", "--model", "tiny", "--modulator", "mlp", "--hidden", "8", "--layers", "1",
			"--reward", "brightness=1,flat=1", "--reward-norm", norm, "--steps", "2", "--batch", "4", "--quiet",
			"--out", filepath.Join(t.TempDir(), "hn"))
		if code != cli.ExitUsage || !strings.Contains(msg, `reward "flat" has zero spread`) ||
			strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Errorf("--reward-norm %s: exit %d, stderr %q; want exit 2 and one line naming the reward", norm, code, msg)
		}
	}
}

// TestTrainBudgetAndBetaBadInput: --budget's forms and ranges, and a --reg-weight whose tilt
// (2*weight/D) lies outside beta's range, are one-line usage errors (exit 2).
func TestTrainBudgetAndBetaBadInput(t *testing.T) {
	dir := t.TempDir()
	checkUsageErrors(t, []string{"train", "--out", dir}, []usageCase{
		{[]string{"--budget", "0"}, "--budget steps must be positive and at most 200000, got 0"},
		{[]string{"--budget", "-5"}, "--budget steps must be positive and at most 200000, got -5"},
		{[]string{"--budget", "0s"}, "--budget seconds must be in [1, 604800], got 0"},
		{[]string{"--budget", "1e9s"}, "--budget seconds must be in [1, 604800], got 1e+09"},
		{[]string{"--budget", "nans"}, "--budget seconds must be a finite number, got NaN"},
		{[]string{"--budget", "abc"}, `--budget must be steps (2000) or seconds (90s), got "abc"`},
		{[]string{"--budget", "1.5"}, `--budget must be steps (2000) or seconds (90s), got "1.5"`},
		{[]string{"--budget", "5m"}, `--budget must be steps (2000) or seconds (90s), got "5m"`},
		{[]string{"--budget", "10", "--steps", "5"}, "give --budget STEPS or --steps, not both"},
		{[]string{"--budget", "10s", "--resume"}, "--budget 10s fixes the step count of a fresh run; resume with --steps instead"},
		{[]string{"--reg-weight", "1e-12"}, "--reg-weight 1e-12: beta (2*reg-weight/D) must be in [1e-06, 1e+06]"},
	})
}

// TestJSONKeepsProgress: --json prints JSON alone on stdout and leaves the progress on stderr
// (a long run piped to a file still shows how far it is); --quiet silences it.
func TestJSONKeepsProgress(t *testing.T) {
	args := []string{"train", "--model", "tiny", "--modulator", "mlp", "--hidden", "8", "--layers", "1", "--steps", "3", "--batch", "4", "--json"}
	code, out, msg := run(append(args, "--out", filepath.Join(t.TempDir(), "hn"))...)
	var cfg map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &cfg) != nil || !strings.Contains(msg, "train 3/3") {
		t.Fatalf("train --json: exit %d, stdout %q, stderr %q; want JSON on stdout and the progress on stderr", code, out, msg)
	}
	if code, _, msg := run(append(args, "--quiet", "--out", filepath.Join(t.TempDir(), "hn"))...); code != 0 || msg != "" {
		t.Fatalf("train --json --quiet: exit %d, stderr %q; want nothing on stderr", code, msg)
	}
}
