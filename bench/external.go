package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hypernoise/hypernoise/models/onnx"
)

// lastJSONLine runs a command and parses the last line of its standard output that is a JSON
// object; a failure names the command's last line of standard error.
func lastJSONLine(cmd *exec.Cmd) (map[string]any, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		return nil, fmt.Errorf("%s: %v: %s", filepath.Base(cmd.Path), err, lines[len(lines)-1])
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		var v map[string]any
		if json.Unmarshal([]byte(lines[i]), &v) == nil {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%s printed no JSON line", filepath.Base(cmd.Path))
}

// TorchFigures runs a shell command that prints PyTorch's figures as one JSON line (e.g.
// make_t2i.py --bench on the same weights) and returns them.
func TorchFigures(command string) (map[string]any, error) {
	return lastJSONLine(exec.Command("/bin/sh", "-c", command))
}

// ORTFigures times the spec's generator with onnxruntime through scripts/ort_bench.js (node and
// npm's onnxruntime-node, see the script), on as many threads as Go uses.
func ORTFigures(script string, m *onnx.Model, specPath string, batch, warmup, runs int) (map[string]any, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node is not installed")
	}
	g := m.Spec.Generator
	cfg := map[string]any{"model": filepath.Join(filepath.Dir(specPath), g.ONNX), "noise_input": g.NoiseInput,
		"noise_shape": g.NoiseShape, "prompt_input": g.PromptInput, "prompts": len(m.Spec.Prompts),
		"batch": batch, "warmup": warmup, "runs": runs, "threads": runtime.GOMAXPROCS(0)}
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(node, script, string(b))
	cmd.Env = os.Environ()
	return lastJSONLine(cmd)
}

// FindORTScript returns scripts/ort_bench.js above the working directory, or "".
func FindORTScript() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for range 8 {
		p := filepath.Join(dir, "scripts", "ort_bench.js")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		dir = filepath.Dir(dir)
	}
	return ""
}
