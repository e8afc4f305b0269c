package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
)

// writeEmbeddings writes a safetensors file of per-prompt float32 tensors [77, width] (value bad at
// one entry of each) for the given prompts, and returns its path.
func writeEmbeddings(t *testing.T, dir string, prompts []string, width int, bad float32) string {
	t.Helper()
	header := map[string]any{}
	var data []byte
	for _, p := range prompts {
		v := make([]float32, 77*width)
		for i := range v {
			v[i] = float32(math.Cos(float64(i) * 0.1))
		}
		v[3] = bad
		start := len(data)
		for _, x := range v {
			data = binary.LittleEndian.AppendUint32(data, math.Float32bits(x))
		}
		header[p] = map[string]any{"dtype": "F32", "shape": []int{77, width}, "data_offsets": []int{start, len(data)}}
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(append(out, h...), data...)
	path := filepath.Join(dir, "emb.safetensors")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEmbeddingsBadInputCLI: a text-to-image spec whose prompt-embeddings file lacks a prompt, has
// the wrong width or holds a non-finite value is refused by the commands in one line, exit 2.
func TestEmbeddingsBadInputCLI(t *testing.T) {
	abs, err := filepath.Abs(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"a red apple", "a blue car", "a green forest"}
	for _, c := range []struct {
		name    string
		prompts []string
		width   int
		bad     float32
		want    string
	}{
		{"lacks a prompt", all[:2], 32, 0, `no embedding for prompt "a green forest"`},
		{"wrong width", all, 48, 0, "embeddings are [77 48] per prompt"},
		{"NaN", all, 32, float32(math.NaN()), "non-finite value"},
		{"Inf", all, 32, float32(math.Inf(-1)), "non-finite value"},
	} {
		dir := t.TempDir()
		emb := writeEmbeddings(t, dir, c.prompts, c.width, c.bad)
		spec := map[string]any{
			"name": "t2i-bad-emb",
			"generator": map[string]any{
				"onnx": filepath.Join(abs, "t2i_gen_emb.onnx"), "noise_input": "noise", "noise_shape": []int{4, 8, 8},
				"prompt_input": "text", "output": "image", "prompt_embeddings": map[string]any{"file": emb},
			},
			"prompts": all,
			"rewards": map[string]any{
				"aesthetic": map[string]any{"onnx": filepath.Join(abs, "t2i_aesthetic.onnx"), "image_input": "image", "output": "score"},
			},
		}
		js, err := json.Marshal(spec)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "spec.json")
		if err := os.WriteFile(path, js, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"sample", "--model", path, "--prompt", "all", "--out", filepath.Join(dir, "g.png")},
			{"train", "--model", path, "--reward", "aesthetic=1", "--steps", "1", "--out", filepath.Join(dir, "hn")},
		} {
			code, _, msg := run(args...)
			if code != cli.ExitUsage || !strings.Contains(msg, c.want) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Errorf("%s, %s: exit %d, stderr %q; want exit 2 and one line mentioning %q", c.name, args[0], code, msg, c.want)
			}
		}
	}
}
