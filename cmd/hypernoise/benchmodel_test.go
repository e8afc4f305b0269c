package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/models/onnx"
)

// TestBenchModel: bench --model --scale --json times every figure on the fixture (positive times, the
// weights, the peak memory and the peak after loading, between the weights' size and the peak;
// the first call's graph build and compile within it) and refuses a bad --batch with exit 2.
func TestBenchModel(t *testing.T) {
	spec := filepath.Join(fixtureDir, "spec.json")
	code, stdout, stderr := run("bench", "--model", spec, "--scale", "--json", "--no-ort", "--steps", "1", "--batch", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		LoadS              float64  `json:"load_s"`
		FirstCallS         float64  `json:"first_call_s"`
		BuildS             float64  `json:"build_s"`
		CompileS           float64  `json:"compile_s"`
		ForwardMSPerImage  float64  `json:"forward_ms_per_image"`
		HypernetStepMS     *float64 `json:"hypernet_step_ms"`
		RenoStepMSPerImage *float64 `json:"reno_step_ms_per_image"`
		WeightBytes        int64    `json:"weight_bytes"`
		PeakRSSBytes       int64    `json:"peak_rss_bytes"`
		LoadPeakRSSBytes   int64    `json:"load_peak_rss_bytes"`
		Errors             []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.LoadS <= 0 || r.FirstCallS <= 0 || r.ForwardMSPerImage <= 0 || r.HypernetStepMS == nil || *r.HypernetStepMS <= 0 ||
		r.RenoStepMSPerImage == nil || *r.RenoStepMSPerImage <= 0 || r.WeightBytes <= 0 || r.PeakRSSBytes < r.WeightBytes || len(r.Errors) > 0 ||
		r.LoadPeakRSSBytes < r.WeightBytes || r.LoadPeakRSSBytes > r.PeakRSSBytes ||
		!(r.BuildS > 0) || r.CompileS < 0 || r.BuildS+r.CompileS > r.FirstCallS {
		t.Fatalf("figures missing or not positive: %s", stdout)
	}
	// --rank 0: the forward and ReNO timed, no training step (bench.ScaleOptions.Rank), no error
	code, stdout, stderr = run("bench", "--model", spec, "--scale", "--json", "--no-ort", "--steps", "1", "--batch", "2", "--rank", "0")
	r.HypernetStepMS, r.RenoStepMSPerImage, r.Errors = nil, nil, nil
	if code != 0 {
		t.Fatalf("--rank 0: exit %d: %s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.ForwardMSPerImage <= 0 || r.HypernetStepMS != nil || r.RenoStepMSPerImage == nil || len(r.Errors) > 0 {
		t.Fatalf("--rank 0: %s; want the forward and ReNO timed and no HyperNoise step", stdout)
	}
	// without --scale the step needs a LoRA
	checkUsageErrors(t, []string{"bench", "--model", spec}, []usageCase{{[]string{"--rank", "0"}, "--rank must be in [1, 1024], got 0"}})
	checkUsageErrors(t, []string{"bench", "--model", spec, "--scale"}, []usageCase{
		{[]string{"--batch", "0"}, "--batch must be in [1, 4096], got 0"},
		{[]string{"--rounds", "0"}, "--rounds must be in [1, 20], got 0"},
		{[]string{"--rounds", "21"}, "--rounds must be in [1, 20], got 21"},
		{[]string{"--rounds", "3", "--no-ort"}, "--no-ort turns off"},
		{[]string{"--warmup", "-1"}, "--warmup must be in [0, 1000], got -1"},
		{[]string{"--warmup", "1001"}, "--warmup must be in [0, 1000], got 1001"},
	})
}

// TestBenchModelMemoryBudget: bench --scale runs no stage whose up-front estimate exceeds
// $HYPERNOISE_MEM_BUDGET (as train and sample refuse them): with a budget between ReNO's estimate
// and the LoRA step's, the forward and ReNO are timed and the step is reported as refused with its
// estimate; with a budget under the forward's, only the load is.
func TestBenchModelMemoryBudget(t *testing.T) {
	spec := filepath.Join(fixtureDir, "spec.json")
	be, err := compute.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Finalize()
	m, err := onnx.Load(spec, be)
	if err != nil {
		t.Fatal(err)
	}
	if m.EstimateBytes(2, true) >= m.EstimateTrainBytes(2, 8) {
		t.Fatalf("ReNO's estimate %d is not under the step's %d", m.EstimateBytes(2, true), m.EstimateTrainBytes(2, 8))
	}
	type result struct {
		LoadS              float64  `json:"load_s"`
		ForwardMSPerImage  float64  `json:"forward_ms_per_image"`
		HypernetStepMS     *float64 `json:"hypernet_step_ms"`
		RenoStepMSPerImage *float64 `json:"reno_step_ms_per_image"`
		Errors             []string `json:"errors"`
	}
	bench := func(budget int64) result {
		t.Setenv(cli.EnvMemBudget, fmt.Sprint(budget))
		code, stdout, stderr := run("bench", "--model", spec, "--scale", "--json", "--no-ort", "--steps", "1", "--batch", "2", "--rank", "8")
		if code != 0 {
			t.Fatalf("budget %d: exit %d: %s", budget, code, stderr)
		}
		var r result
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := bench(m.EstimateBytes(2, true))
	if r.ForwardMSPerImage <= 0 || r.RenoStepMSPerImage == nil || r.HypernetStepMS != nil || len(r.Errors) != 1 ||
		!strings.Contains(r.Errors[0], "hypernoise step (LoRA rank 8): refused up front: needs about") {
		t.Fatalf("budget under the step's estimate: %+v; want the forward and ReNO timed, the step refused", r)
	}
	r = bench(m.EstimateBytes(2, false) - 1)
	if r.LoadS <= 0 || r.ForwardMSPerImage != 0 || r.RenoStepMSPerImage != nil || r.HypernetStepMS != nil ||
		len(r.Errors) != 1 || !strings.HasPrefix(r.Errors[0], "forward: refused up front") {
		t.Fatalf("budget under the forward's estimate: %+v; want only the load timed", r)
	}
	t.Setenv(cli.EnvMemBudget, fmt.Sprint(m.WeightBytes()-1))
	code, _, stderr := run("bench", "--model", spec, "--scale", "--json", "--no-ort", "--steps", "1")
	if code != cli.ExitUsage || !strings.Contains(stderr, "its weights alone need") || !strings.Contains(stderr, "nothing was loaded") {
		t.Fatalf("budget under the weights: exit %d, stderr %q; want exit 2 before loading", code, stderr)
	}
}
