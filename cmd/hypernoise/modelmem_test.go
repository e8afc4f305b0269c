package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/models/onnx"
)

// TestModelMemoryRefusal: a sample or train run on an imported model whose estimate exceeds
// $HYPERNOISE_MEM_BUDGET is refused up front (exit 2) with the estimate and the flag value that fits.
func TestModelMemoryRefusal(t *testing.T) {
	spec := filepath.Join(fixtureDir, "spec.json")
	be := testutil.Backend(t)
	defer be.Finalize()
	m, err := onnx.Load(spec, be)
	if err != nil {
		t.Fatal(err)
	}
	prompt := m.Prompts()[0]
	t.Setenv(cli.EnvMemBudget, fmt.Sprint(m.EstimateBytes(3, false)))
	code, _, stderr := run("sample", "--model", spec, "--prompt", prompt, "--n", "64", "--out", filepath.Join(t.TempDir(), "g.png"))
	if code != cli.ExitUsage || !strings.Contains(stderr, "--n 3 would fit") || !strings.Contains(stderr, "needs about") {
		t.Fatalf("sample over budget: exit %d, stderr %q; want exit 2 naming --n 3", code, stderr)
	}
	t.Setenv(cli.EnvMemBudget, fmt.Sprint(m.EstimateTrainBytes(5, 8)))
	code, _, stderr = run("train", "--model", spec, "--batch", "16", "--rank", "8", "--steps", "1", "--out", t.TempDir())
	if code != cli.ExitUsage || !strings.Contains(stderr, "--batch 5 would fit") {
		t.Fatalf("train over budget: exit %d, stderr %q; want exit 2 naming --batch 5", code, stderr)
	}
	t.Setenv(cli.EnvMemBudget, "1M")
	code, _, stderr = run("sample", "--model", spec, "--prompt", prompt, "--n", "1", "--out", filepath.Join(t.TempDir(), "g.png"))
	if code != cli.ExitUsage || !strings.Contains(stderr, "no --n fits") {
		t.Fatalf("sample with a 1 MiB budget: exit %d, stderr %q; want exit 2, no --n fits", code, stderr)
	}
}

// TestWeightsOverBudgetRefusedBeforeLoading: a model whose weights alone exceed
// $HYPERNOISE_MEM_BUDGET is refused (exit 2, the weights' size) before any file is loaded: the
// spec's generator here lacks its external data file, which loading would report (exit 1).
func TestWeightsOverBudgetRefusedBeforeLoading(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(fixtureDir, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	spec := copyFixture(t, strings.Replace(string(good), `"gen.onnx"`, `"gen_ext.onnx"`, 1))
	data, err := os.ReadFile(filepath.Join(fixtureDir, "gen_ext.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(spec), "gen_ext.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	weights, err := onnx.SpecWeightBytes(spec)
	if err != nil || weights <= 0 {
		t.Fatalf("SpecWeightBytes: %d, %v", weights, err)
	}
	args := []string{"sample", "--model", spec, "--prompt", "circle", "--n", "1", "--out", filepath.Join(t.TempDir(), "g.png")}
	t.Setenv(cli.EnvMemBudget, fmt.Sprint(weights-1))
	code, _, stderr := run(args...)
	if code != cli.ExitUsage || !strings.Contains(stderr, "its weights alone need about "+cli.FormatBytes(weights)) || !strings.Contains(stderr, "nothing was loaded") ||
		strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("weights over budget: exit %d, stderr %q; want exit 2, one line on the weights", code, stderr)
	}
	t.Setenv(cli.EnvMemBudget, fmt.Sprint(weights+1<<30))
	if code, _, stderr := run(args...); code != cli.ExitFailure || !strings.Contains(stderr, "gen_ext.onnx.data") {
		t.Fatalf("weights within budget: exit %d, stderr %q; want the load's exit 1 naming the missing data file", code, stderr)
	}
}
