package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"testing"
)

// TestT2IEveryMethodCLI: on the tiny text-to-image fixture (attention, text embeddings as data, a
// CLIP-like reward), train and eval run from the command line with --model, and eval reports every
// method (base, best-of-N at both sizes, ReNO, fine-tuning, HyperNoise, HyperNoise + ReNO) with a
// finite reward and diversity.
func TestT2IEveryMethodCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("trains and evaluates for some seconds")
	}
	spec := filepath.Join(fixtureDir, "t2i_emb.json")
	hn := filepath.Join(t.TempDir(), "hn")
	if code, _, msg := run("train", "--model", spec, "--reward", "clip=1", "--steps", "3", "--batch", "4", "--out", hn, "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	code, out, msg := run("eval", "--model", spec, "--hypernet", hn, "--seeds", "2", "--reno-steps", "2", "--warm-steps", "1",
		"--finetune-steps", "2", "--small-n", "2", "--tilt-pool", "0", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, msg)
	}
	var rep struct {
		Order   []string                  `json:"order"`
		Methods map[string]map[string]any `json:"methods"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := []string{"base", "best-of-2", "reno", "finetune", "hypernoise", "hypernoise-reno"}
	for _, m := range want {
		row, ok := rep.Methods[m]
		if !ok {
			t.Errorf("eval has no %q row (rows %v)", m, rep.Order)
			continue
		}
		for _, k := range []string{"reward", "diversity"} {
			if v, ok := row[k].(float64); !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s: %s = %v", m, k, row[k])
			}
		}
	}
}
