package main

import (
	"fmt"
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
