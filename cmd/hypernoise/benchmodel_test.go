package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
)

// TestBenchModel: bench --model --scale --json times every figure on the fixture (positive times, the
// weights and the peak memory) and refuses a bad --batch with exit 2.
func TestBenchModel(t *testing.T) {
	spec := filepath.Join(fixtureDir, "spec.json")
	code, stdout, stderr := run("bench", "--model", spec, "--scale", "--json", "--no-ort", "--steps", "1", "--batch", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		LoadS              float64  `json:"load_s"`
		FirstCallS         float64  `json:"first_call_s"`
		ForwardMSPerImage  float64  `json:"forward_ms_per_image"`
		HypernetStepMS     *float64 `json:"hypernet_step_ms"`
		RenoStepMSPerImage *float64 `json:"reno_step_ms_per_image"`
		WeightBytes        int64    `json:"weight_bytes"`
		PeakRSSBytes       int64    `json:"peak_rss_bytes"`
		Errors             []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.LoadS <= 0 || r.FirstCallS <= 0 || r.ForwardMSPerImage <= 0 || r.HypernetStepMS == nil || *r.HypernetStepMS <= 0 ||
		r.RenoStepMSPerImage == nil || *r.RenoStepMSPerImage <= 0 || r.WeightBytes <= 0 || r.PeakRSSBytes < r.WeightBytes || len(r.Errors) > 0 {
		t.Fatalf("figures missing or not positive: %s", stdout)
	}
	if code, _, stderr := run("bench", "--model", spec, "--scale", "--batch", "0"); code != cli.ExitUsage {
		t.Fatalf("--batch 0: exit %d (%s), want 2", code, stderr)
	}
}
