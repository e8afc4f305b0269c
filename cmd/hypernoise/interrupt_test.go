package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
)

// TestRunKept: after an interrupt, train says what its folder holds and the command that
// continues it (with --resume, without --force).
func TestRunKept(t *testing.T) {
	dir := t.TempDir()
	again := []string{"train", "--out", dir, "--force", "--reward", "align=1,brightness=0.1"}
	if m := runKept(dir, 300, again); !strings.Contains(m, "no checkpoint was written yet") || !strings.Contains(m, "--force") {
		t.Errorf("empty folder: %s", m)
	}
	if err := os.WriteFile(filepath.Join(dir, hypernet.CheckpointJSON), []byte(`{"step": 120}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m := runKept(dir, 300, again)
	if !strings.Contains(m, "step 120 of 300") || !strings.HasSuffix(m, "--reward align=1,brightness=0.1 --resume") || strings.Contains(m, "--force") {
		t.Errorf("checkpoint: %s", m)
	}
	if err := os.WriteFile(filepath.Join(dir, infer.WeightsFile), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m := runKept(dir, 300, again); !strings.Contains(m, "trained hypernetwork") {
		t.Errorf("finished: %s", m)
	}
	if got := commandLine([]string{"sample", "--prompt", "ankle boot"}); got != "hypernoise sample --prompt 'ankle boot'" {
		t.Errorf("quoting: %s", got)
	}
}

// TestDemoKept: the demo's message names each hypernetwork's state.
func TestDemoKept(t *testing.T) {
	out := t.TempDir()
	if m := demoKept(out, []string{"--out", out}); !strings.Contains(m, "no training run was kept yet") {
		t.Errorf("empty: %s", m)
	}
	align := filepath.Join(out, "hypernet-align")
	bright := filepath.Join(out, "hypernet-brightness")
	for _, d := range []string{align, bright} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(align, infer.WeightsFile), []byte("x"), 0o644)
	_ = os.WriteFile(filepath.Join(bright, hypernet.CheckpointJSON), []byte(`{"step": 40}`), 0o644)
	m := demoKept(out, []string{"--out", out, "--force"})
	if !strings.Contains(m, "hypernet-align finished, hypernet-brightness at step 40") || strings.Contains(m, "demo --out "+out+" --force") {
		t.Errorf("partial: %s", m)
	}
}
