package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDemoTrainSeeds: demo --train-seeds 2 trains the align hypernetwork a second time with seed 2
// (in its folder's train-seed-2) and reports, for the trained methods only, the mean and sample
// standard deviation over both seeds, the first seed's figures being the main report's.
func TestDemoTrainSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("a quick demo, about 20 s")
	}
	out := filepath.Join(t.TempDir(), "demo")
	code, stdout, msg := run("demo", "--quick", "--no-brightness", "--no-compositional", "--train-seeds", "2", "--quiet", "--json", "--out", out)
	if code != 0 {
		t.Fatalf("demo: exit %d: %s", code, msg)
	}
	var got struct {
		Align struct {
			Methods map[string]struct {
				Reward float64 `json:"reward"`
			} `json:"methods"`
		} `json:"align"`
		Seeds struct {
			Seeds   []int64                                           `json:"seeds"`
			Methods map[string]map[string]struct{ Mean, Std float64 } `json:"methods"`
		} `json:"align_train_seeds"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Seeds.Seeds, []int64{1, 2}) {
		t.Errorf("seeds %v, want [1 2]", got.Seeds.Seeds)
	}
	var names []string
	for n := range got.Seeds.Methods {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"finetune", "hypernoise", "hypernoise-reno"}) {
		t.Errorf("summarized methods %v, want the trained ones only", names)
	}
	r := got.Seeds.Methods["hypernoise"]["reward"]
	first := got.Align.Methods["hypernoise"].Reward
	// Two values a, b: mean (a+b)/2 and sample std |a-b|/sqrt(2), so |a - mean| = std/sqrt(2).
	if !(r.Std > 0) || math.Abs(math.Abs(first-r.Mean)-r.Std/math.Sqrt2) > 1e-9 {
		t.Errorf("hypernoise reward over seeds: mean %g, std %g, seed 1's %g; want a two-seed sample with seed 1's figure and a spread", r.Mean, r.Std, first)
	}
	var cfg struct {
		Train struct {
			Seed int64 `json:"seed"`
		} `json:"train"`
	}
	data, err := os.ReadFile(filepath.Join(out, "hypernet-align", "train-seed-2", "hypernet.json"))
	if err != nil || json.Unmarshal(data, &cfg) != nil || cfg.Train.Seed != 2 {
		t.Errorf("the second seed's hypernetwork: %v, seed %d; want train-seed-2/hypernet.json trained with seed 2", err, cfg.Train.Seed)
	}
}
