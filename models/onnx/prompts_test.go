package onnx

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestPromptRules: prompts equal but for case and blanks, and the reserved word, are refused.
func TestPromptRules(t *testing.T) {
	for prompts, want := range map[string]string{
		`["Circle", "circle"]`:  "same prompt as prompts[0]",
		`["a  cat", " A cat "]`: "same prompt as prompts[0]",
		`["x", "all"]`:          `"all" is reserved`,
		`[" ALL "]`:             "is reserved",
		`["ok", "  "]`:          "empty prompt",
	} {
		in := `{"name": "m", "prompts": ` + prompts + `, "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", "noise_shape": [4]}, "rewards": {"r": {"onnx": "r.onnx", "image_input": "i", "output": "s"}}}`
		_, err := ParseSpec("s.json", []byte(in))
		var se *SpecError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want a spec error with %q", prompts, err, want)
		}
	}
}

// TestPromptCountAgainstTables: the fixture's generator and reward embed 3 prompts; a spec listing
// 4 is refused at load, naming the table. The spec sits in another folder and names the fixture's
// files by absolute paths, which are honoured as absolute.
func TestPromptCountAgainstTables(t *testing.T) {
	be := testutil.Backend(t)
	var spec map[string]any
	data, err := os.ReadFile(fixtureSpec)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata")
	spec["generator"].(map[string]any)["onnx"] = filepath.Join(abs, "gen.onnx")
	spec["rewards"].(map[string]any)["score"].(map[string]any)["onnx"] = filepath.Join(abs, "reward.onnx")
	write := func(prompts []string) string {
		spec["prompts"] = prompts
		b, _ := json.Marshal(spec)
		p := filepath.Join(t.TempDir(), "spec.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := Load(write([]string{"circle", "square", "stripes"}), be); err != nil {
		t.Fatalf("3 prompts, absolute paths: %v", err)
	}
	_, err = Load(write([]string{"circle", "square", "stripes", "dots"}), be)
	var se *SpecError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "lists 4 prompts") || !strings.Contains(err.Error(), "table of 3 rows") {
		t.Fatalf("4 prompts: %v", err)
	}
}

// TestFieldRanges: numeric spec fields outside their documented ranges are spec errors stating
// the range.
func TestFieldRanges(t *testing.T) {
	for gen, want := range map[string]string{
		`"noise_shape": [3, 1000000, 1000]`:            "more than 67108864 values per sample",
		`"noise_shape": [2000000]`:                     "each dimension must be in [1, 1048576]",
		`"noise_shape": [1, 1, 1, 1, 1, 1, 1, 1, 1]`:   "at most 8 are supported",
		`"noise_shape": [4], "range": [-1e308, 1e308]`: "-1e+06 <= lo, hi <= 1e+06",
		`"noise_shape": [4], "range": [0, 1e-9]`:       "hi - lo >= 1e-06",
		`"noise_shape": [4], "range": [1, 0]`:          "hi - lo >= 1e-06",
		`"noise_shape": [4], "range": [0]`:             "must be [lo, hi]",
	} {
		in := `{"name": "m", "generator": {"onnx": "g.onnx", "noise_input": "n", "output": "o", ` + gen + `}, "rewards": {"r": {"onnx": "r.onnx", "image_input": "i", "output": "s"}}}`
		_, err := ParseSpec("s.json", []byte(in))
		var se *SpecError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want a spec error with %q", gen, err, want)
		}
	}
}
