package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/models/onnx/shim"
)

// TestExportCommand: `hypernoise export` writes an ONNX file that our importer reads back with the
// documented inputs and output (the numerical round trip is export's own test); usage mistakes are
// one line and exit 2, a folder it cannot export exit 1.
func TestExportCommand(t *testing.T) {
	spec := filepath.Join(fixtureDir, "spec.json")
	dir := t.TempDir()
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", spec, "--modulator", "lora", "--reward", "score=1", "--out", hn, "--steps", "2", "--batch", "2", "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	out := filepath.Join(dir, "hn.onnx")
	code, stdout, msg := run("export", "--hypernet", hn, "--out", out)
	if code != 0 || !strings.Contains(stdout, "wrote "+out+" (lora hypernetwork") || !strings.Contains(stdout, "noise float32 [N, 4, 8, 8], prompt int64 [N]") {
		t.Fatalf("export: exit %d, stdout %q, stderr %q", code, stdout, msg)
	}
	g, err := shim.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	var ins []string
	for _, v := range g.Inputs {
		ins = append(ins, v.Name)
	}
	if strings.Join(ins, ",") != "noise,prompt" || len(g.Outputs) != 1 || g.Outputs[0].Name != "modulated_noise" {
		t.Errorf("inputs %v, outputs %v", ins, g.Outputs)
	}

	fashionHN := filepath.Join(dir, "fashion-hn")
	if code, _, msg := run("train", "--out", fashionHN, "--steps", "1", "--batch", "2", "--quiet"); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"export", "--out", out}, cli.ExitUsage, "--hypernet DIR is required"},
		{[]string{"export", "--hypernet", hn}, cli.ExitUsage, "--out FILE is required"},
		{[]string{"export", "--hypernet", hn, "--format", "tflite", "--out", out}, cli.ExitUsage, `unknown --format "tflite"; available: onnx`},
		{[]string{"export", "--hypernet", hn, "--out", "/dev/null"}, cli.ExitUsage, "refusing to replace it"},
		{[]string{"export", "--hypernet", filepath.Join(dir, "none"), "--out", out}, 1, "no such file or directory"},
		{[]string{"export", "--hypernet", fashionHN, "--out", filepath.Join(dir, "f.onnx")}, 1, `LoRA copy of the fashion generator, which is not an ONNX graph.*--modulator mlp`},
	} {
		code, _, msg := run(c.args...)
		if code != c.code || !regexp.MustCompile(c.want).MatchString(msg) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line matching %q", c.args, code, msg, c.code, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "f.onnx")); !os.IsNotExist(err) {
		t.Errorf("a failed export left a file behind (stat: %v)", err)
	}
}
