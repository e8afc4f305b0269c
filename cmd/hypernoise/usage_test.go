package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/hypernet"
)

// TestUsageErrorsUpFront is issue 12 cases 3, 4 and 6: non-finite and out-of-range numbers,
// reward weights outside float32, sizes that cannot fit in memory, a bad --reward in sample and
// the go-stock backend are each one line on stderr and exit code 2, before any work starts.
func TestUsageErrorsUpFront(t *testing.T) {
	t.Setenv(cli.EnvMemBudget, "16GiB")
	out := t.TempDir()
	resumeDir := filepath.Join(t.TempDir(), "empty")
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, hypernet.CheckpointWeights), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	train := func(args ...string) []string { return append([]string{"train", "--out", out}, args...) }
	checkUsageErrors(t, nil, []usageCase{
		// case 3
		{train("--lr", "1e300"), "--lr must be in [1e-12, 10], got 1e+300"},
		{train("--lr", "NaN"), "--lr must be in [1e-12, 10], got NaN"},
		{train("--alpha", "NaN"), "--alpha must be in [0, 8192], got NaN"},
		{train("--clip", "NaN"), "--clip must be in [0, 1e+06], got NaN"},
		{train("--beta", "NaN"), "--beta must be in [1e-06, 1e+06], got NaN"},
		{train("--beta", "-1"), "--beta must be in [1e-06, 1e+06], got -1"},
		{train("--reg-weight", "Inf"), "--reg-weight must be in [0, 1e+06], got +Inf"},
		{train("--reward", "align=1e308"), "weight magnitude must be in"},
		{train("--reward", "align=1e-320"), "weight magnitude must be in"},
		{train("--reward", "0=1e100"), "weight magnitude must be in"},
		// case 4
		{train("--rank", "100000"), "--rank must be in [1, 512], got 100000"},
		{train("--batch", "100000"), "--batch must be in [1, 4096], got 100000"},
		{train("--modulator", "mlp", "--hidden", "1000000"), "--hidden must be in [1, 8192], got 1000000"},
		{train("--modulator", "mlp", "--hidden", "8192", "--layers", "16", "--batch", "4096"), "more than the budget of 16.0 GiB"},
		{[]string{"sample", "--prompt", "dress", "--n", "4", "--cols", "100"}, "--cols must be in [0, 4]"},
		// case 6
		{[]string{"sample", "--prompt", "dress", "--method", "reno", "--reward", "nonsense=1"}, "unknown reward \"nonsense\""},
		{[]string{"sample", "--prompt", "dress", "--method", "best-of-n", "--reward", "align=abc"}, "not a number"},
		{[]string{"sample", "--prompt", "dress", "--backend", "go-stock"}, "compute benchmarks only"},
		{train("--backend", "go-stock", "--steps", "1"), "compute benchmarks only"},
		// case 2: folder rules
		{[]string{"train", "--out", resumeDir, "--resume"}, "holds no checkpoint"},
		{[]string{"train", "--out", busy}, "already holds a training run"},
		{[]string{"train", "--out", busy, "--resume", "--force"}, "exclude each other"},
	})
	// Sampling runs in chunks (ReNO and best-of-N included), so only the kept images grow with
	// --n: the largest request (40960 images) fits 16 GiB and is refused up front under 1 GiB.
	t.Setenv(cli.EnvMemBudget, "1GiB")
	var stdout, stderr bytes.Buffer
	args := []string{"sample", "--prompt", "all", "--n", "4096", "--method", "reno"}
	if code := cli.Main("hypernoise", about, commands, args, &stdout, &stderr); code != cli.ExitUsage || !strings.Contains(stderr.String(), "more than the budget") {
		t.Errorf("%v under a 1 GiB budget: exit %d, stderr %q", args, code, stderr.String())
	}
}

// TestGoStockNotOffered: the backend list in --help does not offer go-stock.
func TestGoStockNotOffered(t *testing.T) {
	for _, n := range cli.OfferedBackends() {
		if n == "go-stock" {
			t.Fatal("go-stock offered")
		}
	}
	var stdout, stderr bytes.Buffer
	cli.Main("hypernoise", about, commands, []string{"sample", "--help"}, &stdout, &stderr)
	if strings.Contains(stdout.String(), "go-stock") {
		t.Errorf("sample --help offers go-stock:\n%s", stdout.String())
	}
}

// TestSampleMemoryBudget: a sample request whose estimate exceeds $HYPERNOISE_MEM_BUDGET is a
// usage error before any work.
func TestSampleMemoryBudget(t *testing.T) {
	t.Setenv(cli.EnvMemBudget, "100MiB")
	var stdout, stderr bytes.Buffer
	code := cli.Main("hypernoise", about, commands, []string{"sample", "--prompt", "all", "--n", "4096", "--method", "reno"}, &stdout, &stderr)
	if code != cli.ExitUsage || !strings.Contains(stderr.String(), "more than the budget of 100 MiB") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	t.Setenv(cli.EnvMemBudget, "lots")
	stderr.Reset()
	code = cli.Main("hypernoise", about, commands, []string{"sample", "--prompt", "dress"}, &stdout, &stderr)
	if code != cli.ExitUsage || !strings.Contains(stderr.String(), "not a memory size") {
		t.Errorf("bad budget: exit %d, stderr %q", code, stderr.String())
	}
}
