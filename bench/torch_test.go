package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseTorchOutput reads the figures from the scripts' output format.
func TestParseTorchOutput(t *testing.T) {
	out := "matmul 1024^3: 11.3 ms, 190.2 GFLOP/s\nMLP 784-1024-1024-784 b256 fwd+bwd+Adam: 61.0 ms\n" +
		"conv net 28x28 b64 train step: 25.5 ms\nthreads 2\n"
	for _, c := range []struct {
		pattern string
		want    float64
	}{
		{`matmul 1024\^3: [0-9.]+ ms, ([0-9.]+) GFLOP/s`, 190.2},
		{`MLP [^:]*: ([0-9.]+) ms`, 61.0},
		{`conv net [^:]*: ([0-9.]+) ms`, 25.5},
	} {
		v, err := parseFloat(out, c.pattern)
		if err != nil || *v != c.want {
			t.Errorf("%s: got %v, %v; want %g", c.pattern, v, err, c.want)
		}
	}
	if _, err := parseFloat("garbage", `MLP [^:]*: ([0-9.]+) ms`); err == nil {
		t.Error("parsing garbage succeeded")
	}
}

// TestRunTorchErrors: a folder without the scripts, or an interpreter without torch, is a clear error.
func TestRunTorchErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := RunTorch(dir, "", "v1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("empty folder: %v", err)
	}
	for _, s := range []string{TorchStepsScript, TorchHypernetScript} {
		if err := os.WriteFile(filepath.Join(dir, s), []byte("print('x')\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := RunTorch(dir, "/nonexistent/python3", "v1"); err == nil || !strings.Contains(err.Error(), "cannot import torch") {
		t.Errorf("missing interpreter: %v", err)
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median(3,1,2) = %g", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median(4,1,2,3) = %g", m)
	}
}

// TestHypernetScript: v1 runs the folder's script; v2 the embedded twin, from a temporary file that
// cleanup removes.
func TestHypernetScript(t *testing.T) {
	dir := t.TempDir()
	p, cleanup, err := hypernetScript(dir, "v1")
	if err != nil || p != filepath.Join(dir, TorchHypernetScript) {
		t.Fatalf("v1: %q, %v", p, err)
	}
	cleanup()
	p, cleanup, err = hypernetScript(dir, "v2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != string(torchHypernetV2) || !strings.Contains(string(got), "class Flow2") {
		t.Fatalf("v2 script at %s: %v (%d bytes)", p, err, len(got))
	}
	cleanup()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("%s still there after cleanup: %v", p, err)
	}
}
