package main

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
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
	})
}

// TestZeroSpreadIsUsage: a reward that cannot be normalized (zero spread under the base model),
// however wrapped, is a usage error that names it.
func TestZeroSpreadIsUsage(t *testing.T) {
	err := trainUsage(fmt.Errorf("training: %w", &hypernet.ZeroSpreadError{Reward: "flat"}))
	var u *cli.UsageError
	if !errors.As(err, &u) || !strings.Contains(u.Msg, `reward "flat" has zero spread`) {
		t.Errorf("got %v (%T); want a usage error naming the reward", err, err)
	}
}
