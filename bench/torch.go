package bench

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hypernoise/hypernoise/models/fashion"
)

// DefaultPython is the interpreter the PyTorch scripts run with (Debian's python3-torch lives there).
const DefaultPython = "/usr/bin/python3"

// Script names in the PyTorch folder.
const (
	TorchStepsScript    = "torch_steps.py"
	TorchHypernetScript = "torch_hypernoise_step.py"
)

// torchHypernetV2 is the PyTorch twin of the HyperNoise step on the v2 embedded default (the shared
// folder's TorchHypernetScript times v1's MLP student); the bench runs it from a temporary file.
//
//go:embed torch/torch_hypernoise_step_v2.py
var torchHypernetV2 []byte

// hypernetScript returns the path of the PyTorch HyperNoise-step script for the student
// architecture arch ("v1": the folder's TorchHypernetScript; "v2": the embedded twin, written to a
// temporary file that cleanup removes).
func hypernetScript(dir, arch string) (path string, cleanup func(), err error) {
	if arch != fashion.ArchV2 {
		return filepath.Join(dir, TorchHypernetScript), func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "hypernoise-bench-")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(tmp, "torch_hypernoise_step_v2.py")
	if err := os.WriteFile(path, torchHypernetV2, 0o644); err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	return path, func() { os.RemoveAll(tmp) }, nil
}

// FindTorchDir returns the PyTorch scripts' folder: ../shared/bench next to the repository holding the
// working directory (or next to any folder above it), or "" when there is none.
func FindTorchDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		cand := filepath.Join(dir, "..", "shared", "bench")
		if _, err := os.Stat(filepath.Join(cand, TorchStepsScript)); err == nil {
			if abs, err := filepath.Abs(cand); err == nil {
				return abs
			}
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// torchTimeout bounds each script's run.
const torchTimeout = 10 * time.Minute

// RunTorch runs the PyTorch scripts in dir with python (DefaultPython if empty) and parses their
// figures; the HyperNoise step is timed on the student architecture arch (see hypernetScript). The
// error says what is missing (the folder, the interpreter, torch) or which output did not parse.
func RunTorch(dir, python, arch string) (*Figures, error) {
	if python == "" {
		python = DefaultPython
	}
	need := []string{TorchStepsScript}
	if arch != fashion.ArchV2 {
		need = append(need, TorchHypernetScript)
	}
	for _, s := range need {
		if _, err := os.Stat(filepath.Join(dir, s)); err != nil {
			return nil, fmt.Errorf("PyTorch script %s not found in %s", s, dir)
		}
	}
	if out, err := runPython(python, "-c", "import torch"); err != nil {
		return nil, fmt.Errorf("%s cannot import torch (install python3-torch): %s", python, firstLine(out, err))
	}
	f := &Figures{}
	out, err := runPython(python, filepath.Join(dir, TorchStepsScript))
	if err != nil {
		return nil, fmt.Errorf("%s: %s", TorchStepsScript, firstLine(out, err))
	}
	if f.MatmulGFLOPS, err = parseFloat(out, `matmul 1024\^3: [0-9.]+ ms, ([0-9.]+) GFLOP/s`); err != nil {
		return nil, fmt.Errorf("%s: %w", TorchStepsScript, err)
	}
	if f.MLPStepMS, err = parseFloat(out, `MLP [^:]*: ([0-9.]+) ms`); err != nil {
		return nil, fmt.Errorf("%s: %w", TorchStepsScript, err)
	}
	if f.ConvStepMS, err = parseFloat(out, `conv net [^:]*: ([0-9.]+) ms`); err != nil {
		return nil, fmt.Errorf("%s: %w", TorchStepsScript, err)
	}
	script, cleanup, err := hypernetScript(dir, arch)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	out, err = runPython(python, script, strconv.Itoa(hnBatch), "2")
	if err != nil {
		return nil, fmt.Errorf("%s: %s", TorchHypernetScript, firstLine(out, err))
	}
	if f.HypernetStepMS, err = parseFloat(out, `torch hypernoise step b[0-9]+: ([0-9.]+) ms`); err != nil {
		return nil, fmt.Errorf("%s: %w", TorchHypernetScript, err)
	}
	return f, nil
}

func runPython(python string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), torchTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

func firstLine(out string, err error) string {
	out = strings.TrimSpace(out)
	if i := strings.LastIndex(out, "\n"); i >= 0 {
		out = out[i+1:] // a Python traceback ends with the exception
	}
	if out == "" {
		return err.Error()
	}
	return out + " (" + err.Error() + ")"
}

func parseFloat(out, pattern string) (*float64, error) {
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("no line matching %q in its output", pattern)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return nil, err
	}
	return &v, nil
}
