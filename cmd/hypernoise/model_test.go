package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/infer"
)

const fixtureDir = "../../models/onnx/testdata"

// copyFixture copies the ONNX fixture files into a temporary folder and writes spec (JSON text)
// there; it returns the spec's path.
func copyFixture(t *testing.T, spec string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"gen.onnx", "reward.onnx"} {
		data, err := os.ReadFile(filepath.Join(fixtureDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errw bytes.Buffer
	code = cli.Main("hypernoise", about, commands, args, &out, &errw)
	return code, out.String(), errw.String()
}

// usageCase is a command line (after a common prefix) that must be refused as a usage error
// whose one line mentions want.
type usageCase struct {
	args []string
	want string
}

// checkUsageErrors runs prefix followed by each case's arguments and checks that the command exits
// with code 2 (cli.ExitUsage) and writes one line on stderr that contains the case's want.
func checkUsageErrors(t *testing.T, prefix []string, cases []usageCase) {
	t.Helper()
	for _, c := range cases {
		args := append(slices.Clone(prefix), c.args...)
		code, _, msg := run(args...)
		if code != cli.ExitUsage || !strings.Contains(msg, c.want) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line mentioning %q", args, code, msg, c.want)
		}
	}
}

// TestModelBadInput: a spec mistake is one line with exit code 2, a file problem one line with exit
// code 1, on every command that takes --model.
func TestModelBadInput(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(fixtureDir, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	badField := copyFixture(t, strings.Replace(string(good), `"noise_input"`, `"noise_inpt"`, 1))
	badName := copyFixture(t, strings.Replace(string(good), `"output": "score"`, `"output": "scores"`, 1))
	missingFile := copyFixture(t, strings.Replace(string(good), `"gen.onnx"`, `"absent.onnx"`, 1))
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sample", "--model", badField, "--prompt", "all"}, cli.ExitUsage, `"noise_inpt": unknown field`},
		{[]string{"train", "--model", badName, "--out", t.TempDir()}, cli.ExitUsage, `"rewards.score.output": no tensor "scores"`},
		{[]string{"eval", "--model", badField, "--hypernet", t.TempDir()}, cli.ExitUsage, `"noise_inpt"`},
		{[]string{"serve", "--model", badName, "--addr", "127.0.0.1:0"}, cli.ExitUsage, `"rewards.score.output"`},
		{[]string{"sample", "--model", missingFile, "--prompt", "all"}, cli.ExitFailure, "absent.onnx"},
		{[]string{"sample", "--model", filepath.Join(t.TempDir(), "none.json"), "--prompt", "all"}, cli.ExitFailure, "none.json"},
		{[]string{"sample", "--model", filepath.Join(fixtureDir, "spec.json"), "--prompt", "triangle"}, cli.ExitUsage, "the model's prompts: circle, square, stripes"},
		{[]string{"train", "--model", filepath.Join(fixtureDir, "spec.json"), "--out", t.TempDir(), "--reward", "align=1"}, cli.ExitUsage, "available rewards: score"},
	} {
		code, _, msg := run(c.args...)
		if code != c.code || !strings.Contains(msg, c.want) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line mentioning %q", c.args, code, msg, c.code, c.want)
		}
	}
}

// TestModelTrainSampleEval runs the commands end to end on the imported fixture: train a LoRA
// hypernetwork for a few steps, sample a grid with it, and evaluate two methods as JSON with the
// held-out metrics null.
func TestModelTrainSampleEval(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	spec := filepath.Join(fixtureDir, "spec.json")
	dir := t.TempDir()
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", spec, "--modulator", "lora", "--reward", "score=1", "--out", hn, "--steps", "3", "--batch", "4", "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	grid := filepath.Join(dir, "grid.png")
	if code, _, msg := run("sample", "--model", spec, "--hypernet", hn, "--prompt", "all", "--n", "2", "--out", grid); code != 0 {
		t.Fatalf("sample: exit %d: %s", code, msg)
	}
	if data, err := os.ReadFile(grid); err != nil || !bytes.HasPrefix(data, []byte("\x89PNG")) {
		t.Fatalf("sample wrote no PNG: %v", err)
	}
	code, out, msg := run("eval", "--model", spec, "--hypernet", hn, "--seeds", "2", "--methods", "base,hypernoise", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, msg)
	}
	var rep struct {
		Methods map[string]map[string]any `json:"methods"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"base", "hypernoise"} {
		row, ok := rep.Methods[m]
		if !ok {
			t.Fatalf("eval JSON has no methods.%s: %s", m, out)
		}
		if _, ok := row["reward"].(float64); !ok {
			t.Errorf("methods.%s.reward is not a number: %v", m, row["reward"])
		}
		for _, k := range []string{"heldout_alignment", "fd"} {
			if v, present := row[k]; !present || v != nil {
				t.Errorf("methods.%s.%s = %v, want null", m, k, v)
			}
		}
	}
}

// TestModelUnconditional: a generator and reward without prompt inputs: sample needs no --prompt,
// the MLP hypernetwork trains and eval runs.
func TestModelUnconditional(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	spec := filepath.Join(fixtureDir, "spec_uncond.json")
	dir := t.TempDir()
	if code, out, msg := run("sample", "--model", spec, "--n", "3", "--out", filepath.Join(dir, "g.png")); code != 0 || !strings.Contains(out, "unconditional") {
		t.Fatalf("sample: exit %d: %s %s", code, out, msg)
	}
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", spec, "--modulator", "mlp", "--out", hn, "--steps", "2", "--batch", "4", "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	if code, out, msg := run("eval", "--model", spec, "--hypernet", hn, "--seeds", "2", "--methods", "base,hypernoise", "--quiet"); code != 0 || !strings.Contains(out, "hypernoise") {
		t.Fatalf("eval: exit %d: %s %s", code, out, msg)
	}
}

// TestTrainDefaultModulator: without --modulator, train builds the model's default hypernetwork:
// the MLP on an imported model, the LoRA copy there when --rank or --alpha is given or --modulator
// names it, and the LoRA copy on the embedded model; hypernet.json records what was built.
func TestTrainDefaultModulator(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	spec := filepath.Join(fixtureDir, "spec.json")
	dir := t.TempDir()
	for i, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--model", spec}, "mlp"},
		{[]string{"--model", spec, "--rank", "4"}, "lora"},
		{[]string{"--model", spec, "--alpha", "8"}, "lora"},
		{[]string{"--model", spec, "--modulator", "lora"}, "lora"},
		{nil, "lora"},
	} {
		out := filepath.Join(dir, fmt.Sprint(i))
		args := append([]string{"train", "--out", out, "--steps", "2", "--batch", "4", "--quiet"}, c.args...)
		if code, _, msg := run(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, msg)
		}
		f, err := infer.OpenFolder(out)
		if err != nil {
			t.Fatal(err)
		}
		if f.Config.Modulator.Kind != c.want {
			t.Errorf("%v: built a %q hypernetwork, want %q", c.args, f.Config.Modulator.Kind, c.want)
		}
	}
}
