package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/pipeline"
)

// TestEvalTiltColumnsAndSeeds: on the ONNX fixture (no held-out evaluator), eval reports every
// method's share of the tilt's and ReNO's reward gain (the base's shares are 0, ReNO's own share
// of its gain 1) and the reward-space distance to the tilt reference (0 for nothing but a valid
// figure); --train-seeds 2 trains a second seed beside the first, compares both with one tilt
// reference drawn once, and reports the trained methods' mean and standard deviation.
func TestEvalTiltColumnsAndSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("trains and evaluates for a few seconds")
	}
	spec := filepath.Join(fixtureDir, "spec.json")
	dir := t.TempDir()
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", spec, "--reward", "score=1", "--beta", "0.5", "--out", hn, "--steps", "3", "--batch", "4", "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	drawn := pipeline.TiltReferencesDrawn()
	code, out, msg := run("eval", "--model", spec, "--hypernet", hn, "--seeds", "4", "--methods", "base,reno,hypernoise",
		"--reno-steps", "3", "--tilt-pool", "32", "--train-seeds", "2", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, msg)
	}
	// Both seeds share the model, the reward and beta: one tilt reference serves them.
	if n := pipeline.TiltReferencesDrawn() - drawn; n != 1 {
		t.Errorf("%d tilt references drawn for two training seeds of one configuration, want 1", n)
	}
	var got struct {
		Reports []struct {
			Methods map[string]struct {
				Reward float64 `json:"reward"`
			} `json:"methods"`
			Tilt struct {
				Beta      float64 `json:"beta"`
				Distance  string  `json:"distance"`
				Reference *struct {
					Reward float64 `json:"reward"`
				} `json:"reference"`
				Mean     float64                        `json:"reference_mean"`
				BaseMean float64                        `json:"base_mean"`
				Methods  map[string]map[string]*float64 `json:"methods"`
			} `json:"tilt"`
		} `json:"reports"`
		Seeds struct {
			Seeds   []int64                                           `json:"seeds"`
			Methods map[string]map[string]struct{ Mean, Std float64 } `json:"methods"`
		} `json:"train_seeds"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got.Reports) != 2 {
		t.Fatalf("%d reports, want one per training seed (2)", len(got.Reports))
	}
	tc := got.Reports[0].Tilt
	if tc.Beta != 0.5 || tc.Reference == nil || tc.Distance != "w1-reward" {
		t.Fatalf("tilt columns: beta %g, reference %v, distance %q; want 0.5, a reference, w1-reward", tc.Beta, tc.Reference, tc.Distance)
	}
	share := func(method, key string) float64 {
		v := tc.Methods[method][key]
		if v == nil {
			t.Fatalf("%s.%s is null", method, key)
		}
		return *v
	}
	if s := share("base", "tilt_gain_share"); math.Abs(s) > 1e-9 {
		t.Errorf("base's share of the tilt's gain = %g, want 0", s)
	}
	if s := share("reno", "reno_gain_share"); math.Abs(s-1) > 1e-12 {
		t.Errorf("ReNO's share of its own gain = %g, want 1", s)
	}
	m := got.Reports[0].Methods
	// The share is (E[r] - base_mean)/(tilt mean - base_mean) with E[r] the evaluated mean
	// corrected by the base's deviation on these noises (tilt.PairedMean, tested there): the
	// correction is at most a couple of times that deviation.
	s := share("hypernoise", "tilt_gain_share")
	e := tc.BaseMean + s*(tc.Mean-tc.BaseMean)
	if dev := math.Abs(m["base"].Reward - tc.BaseMean); math.Abs(e-m["hypernoise"].Reward) > 2*dev+1e-9 || !(tc.Mean > tc.BaseMean) || tc.BaseMean == 0 {
		t.Errorf("hypernoise's tilt share %g: E[r] %g against its evaluated %g (base %g on these noises, %g over the pool; tilt mean %g)",
			s, e, m["hypernoise"].Reward, m["base"].Reward, tc.BaseMean, tc.Mean)
	}
	if d := share("hypernoise", "distance_to_tilt"); !(d >= 0) {
		t.Errorf("distance to the tilt %g", d)
	}
	if _, err := os.Stat(filepath.Join(hn, "train-seed-2", "hypernet.json")); err != nil {
		t.Errorf("the second training seed was not trained in DIR/train-seed-2: %v", err)
	}
	h := got.Seeds.Methods["hypernoise"]["reward"]
	r0, r1 := got.Reports[0].Methods["hypernoise"].Reward, got.Reports[1].Methods["hypernoise"].Reward
	if len(got.Seeds.Seeds) != 2 || math.Abs(h.Mean-(r0+r1)/2) > 1e-9 || math.Abs(h.Std-math.Abs(r0-r1)/math.Sqrt2) > 1e-9 {
		t.Errorf("seeds %v, hypernoise reward %+v; want the mean and std of %g and %g", got.Seeds.Seeds, h, r0, r1)
	}
}

// TestEvalSeedsAndPoolBadInput: --train-seeds below 1 and a tilt pool of 1 or out of range are
// one line with exit code 2.
func TestEvalSeedsAndPoolBadInput(t *testing.T) {
	dir := t.TempDir()
	checkUsageErrors(t, []string{"eval", "--hypernet", dir}, []usageCase{
		{[]string{"--train-seeds", "0"}, "--train-seeds must be in [1, 100], got 0"},
		{[]string{"--train-seeds", "-2"}, "--train-seeds must be in [1, 100]"},
		{[]string{"--tilt-pool", "1"}, "tilt pool must be 0 (none) or in [2, 100000], got 1"},
		{[]string{"--tilt-pool", "-5"}, "--tilt-pool must be in [0, 100000], got -5"},
		{[]string{"--tilt-sampler", "mcmc"}, `unknown tilt sampler "mcmc" (want sir or smc)`},
		{[]string{"--tilt-moves", "-1"}, "--tilt-moves must be in [0, 1000], got -1"},
	})
}

// TestDemoSeedsBadInput: demo --train-seeds below 1 is one line with exit code 2.
func TestDemoSeedsBadInput(t *testing.T) {
	code, _, msg := run("demo", "--train-seeds", "0", "--out", t.TempDir())
	if code != 2 || !strings.Contains(msg, "--train-seeds must be in [1, 100], got 0") || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("exit %d, stderr %q", code, msg)
	}
}

// TestEvalTiltSMC: with --tilt-sampler smc the tilt columns come from SMC particles (sampler,
// stages and acceptance reported), the base's share is 0, the resampled reference at an ESS near 1
// carries a warning that says so (the SMC one none), and at a beta where a base pool of the
// same size has an ESS near 1 the SMC reference's mean reward lies above that pool's best sample
// (the SIR "reference" there), which it must at the tilt of a reward with no ceiling nearby.
func TestEvalTiltSMC(t *testing.T) {
	if testing.Short() {
		t.Skip("trains and evaluates for a few seconds")
	}
	spec := filepath.Join(fixtureDir, "spec.json")
	hn := filepath.Join(t.TempDir(), "hn")
	if code, _, msg := run("train", "--model", spec, "--reward", "score=1", "--beta", "0.01", "--out", hn, "--steps", "3", "--batch", "4", "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	type cols struct {
		Sampler   string  `json:"sampler"`
		Stages    int     `json:"smc_stages"`
		Accept    float64 `json:"smc_accept"`
		ESSMin    float64 `json:"ess_min"`
		Mean      float64 `json:"reference_mean"`
		BaseMean  float64 `json:"base_mean"`
		Reference *struct {
			Reward float64 `json:"reward"`
		} `json:"reference"`
		Methods map[string]map[string]*float64 `json:"methods"`
		Warning string                         `json:"warning"`
	}
	evalCols := func(sampler string) cols {
		code, out, msg := run("eval", "--model", spec, "--hypernet", hn, "--seeds", "4", "--methods", "base,hypernoise",
			"--tilt-pool", "16", "--tilt-sampler", sampler, "--json", "--quiet")
		if code != 0 {
			t.Fatalf("eval --tilt-sampler %s: exit %d: %s", sampler, code, msg)
		}
		var got struct {
			Tilt cols `json:"tilt"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return got.Tilt
	}
	smc, sir := evalCols("smc"), evalCols("sir")
	if smc.Sampler != "smc" || sir.Sampler != "sir" || smc.Stages < 2 || !(smc.Accept > 0.2) || smc.Reference == nil {
		t.Fatalf("smc columns %+v, sir sampler %q: want sampler smc with several stages and a working MALA", smc, sir.Sampler)
	}
	if sir.ESSMin > 3 {
		t.Fatalf("the base pool's ESS at beta 0.01 is %.1f: the test needs a tilt SIR cannot resample", sir.ESSMin)
	}
	if !strings.Contains(sir.Warning, "--tilt-sampler smc draws the tilt itself") || smc.Warning != "" {
		t.Errorf("warnings: sir %q (want one naming --tilt-sampler smc at ESS %.1f), smc %q (want none)", sir.Warning, sir.ESSMin, smc.Warning)
	}
	if v := smc.Methods["base"]["tilt_gain_share"]; v == nil || math.Abs(*v) > 1e-9 {
		t.Errorf("base's share of the SMC tilt's gain = %v, want 0", v)
	}
	if !(smc.Mean > sir.Mean) || !(smc.Mean > smc.BaseMean) {
		t.Errorf("SMC tilt mean reward %g, SIR's (its pool's best) %g, base %g: want SMC's above both", smc.Mean, sir.Mean, smc.BaseMean)
	}
}
