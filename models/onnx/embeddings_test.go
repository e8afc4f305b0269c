package onnx

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/nlpodyssey/safetensors"
)

// t2iSpec reads one of make_t2i.py's tiny specs as a JSON map.
func t2iSpec(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// writeT2ISpec writes spec in a new folder whose ONNX paths lead back to testdata; extra files
// (name -> bytes) are written beside it.
func writeT2ISpec(t *testing.T, spec map[string]any, extra map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	abs, _ := filepath.Abs("testdata")
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		t.Fatal(err)
	}
	g := gen(spec)
	g["onnx"] = filepath.Join(rel, g["onnx"].(string))
	for _, r := range spec["rewards"].(map[string]any) {
		r.(map[string]any)["onnx"] = filepath.Join(rel, r.(map[string]any)["onnx"].(string))
	}
	for name, data := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := json.Marshal(spec)
	p := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// stFile serializes float32 tensors (name -> dims, values) with metadata.
func stFile(t *testing.T, tensors map[string][]float32, dims map[string][]int, meta map[string]string) []byte {
	t.Helper()
	views := map[string]safetensors.TensorView{}
	for name, v := range tensors {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		shape := make([]uint64, len(dims[name]))
		for i, d := range dims[name] {
			shape[i] = uint64(d)
		}
		tv, err := safetensors.NewTensorView(safetensors.F32, shape, b)
		if err != nil {
			t.Fatal(err)
		}
		views[name] = tv
	}
	data, err := safetensors.Serialize(views, meta)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestEmbeddingsAsData: the spec whose generator and clip reward take text embeddings from files
// (one tensor per prompt, and one table with the prompt list) gives exactly the images and scores
// of the spec with the same embeddings baked into the exports as tables.
func TestEmbeddingsAsData(t *testing.T) {
	be := testutil.Backend(t)
	baked, err := Load("testdata/t2i_bmm.json", be)
	if err != nil {
		t.Fatal(err)
	}
	asData, err := Load("testdata/t2i_emb.json", be)
	if err != nil {
		t.Fatal(err)
	}
	eps := make([]float32, 3*4*8*8)
	for i := range eps {
		eps[i] = float32(math.Sin(float64(i) * 0.37))
	}
	ids := []int32{2, 0, 1}
	run := func(m *Model) ([]float32, []float32) {
		out := execIn(t, be, m.Context(), func(ctx *context.Context, e, p *Node) []*Node {
			x := m.Generate(ctx, e, p)
			rw, _ := m.Reward("clip")
			return []*Node{x, rw.Score(ctx, x, p)}
		}, tensors.FromFlatDataAndDimensions(eps, 3, 4, 8, 8), ids)
		return tensors.MustCopyFlatData[float32](out[0]), tensors.MustCopyFlatData[float32](out[1])
	}
	x1, s1 := run(baked)
	x2, s2 := run(asData)
	for i := range x1 {
		if math.Abs(float64(x1[i]-x2[i])) > 1e-6 {
			t.Fatalf("pixel %d: %g with baked embeddings, %g with embeddings as data", i, x1[i], x2[i])
		}
	}
	for i := range s1 {
		if math.Abs(float64(s1[i]-s2[i])) > 1e-4*math.Max(1, math.Abs(float64(s1[i]))) {
			t.Fatalf("clip score %d: %g with baked embeddings, %g with embeddings as data", i, s1[i], s2[i])
		}
	}
	t.Logf("clip scores %v (baked) and %v (as data)", s1, s2)
}

// TestEmbeddingsBadInput: an embeddings file lacking a prompt, with the wrong width, with a
// non-finite value, or a table without its prompt list is a one-line *SpecError naming the problem;
// a missing file is a *FileError.
func TestEmbeddingsBadInput(t *testing.T) {
	spec := t2iSpec(t, "t2i_emb.json")
	prompts := spec["prompts"].([]any)
	perPrompt := func(width int, skip string, bad float32) []byte {
		ts, dims := map[string][]float32{}, map[string][]int{}
		for k, p := range prompts {
			if p == skip {
				continue
			}
			v := make([]float32, 77*width)
			for i := range v {
				v[i] = float32(math.Cos(float64(i+k) * 0.1))
			}
			v[5] = bad
			ts[p.(string)], dims[p.(string)] = v, []int{77, width}
		}
		return stFile(t, ts, dims, nil)
	}
	table := stFile(t, map[string][]float32{"embeddings": make([]float32, 2*32)}, map[string][]int{"embeddings": {2, 32}},
		map[string]string{"prompts": `["a red apple", "a blue car"]`})
	for _, c := range []struct {
		name, file string
		data       []byte
		wantSpec   bool
		want       string
	}{
		{"lacks a prompt", "e.safetensors", perPrompt(32, "a blue car", 0), true, `no embedding for prompt "a blue car"`},
		{"wrong width", "e.safetensors", perPrompt(48, "", 0), true, "embeddings are [77 48] per prompt, but input \"text\""},
		{"NaN", "e.safetensors", perPrompt(32, "", float32(math.NaN())), true, "non-finite value"},
		{"Inf", "e.safetensors", perPrompt(32, "", float32(math.Inf(1))), true, "non-finite value"},
		{"table lacks a prompt", "e.safetensors", table, true, `no embedding for prompt "a green forest"`},
		{"not safetensors", "e.safetensors", []byte("hello"), true, "not a valid safetensors file"},
		{"missing file", "", nil, false, "no such file"},
	} {
		s := t2iSpec(t, "t2i_emb.json")
		extra := map[string][]byte{}
		if c.file != "" {
			extra[c.file] = c.data
			gen(s)["prompt_embeddings"] = map[string]any{"file": c.file}
		} else {
			gen(s)["prompt_embeddings"] = map[string]any{"file": "absent.safetensors"}
		}
		_, err := Load(writeT2ISpec(t, s, extra), testutil.Backend(t))
		checkLoadError(t, c.name, err, c.wantSpec, c.want)
	}
	// The same refusals for a reward's embeddings (the clip reward's table, [prompts, 32]).
	clip := func(s map[string]any) map[string]any { return s["rewards"].(map[string]any)["clip"].(map[string]any) }
	tableOf := func(rows, width int, prompts string, bad float32) []byte {
		v := make([]float32, rows*width)
		for i := range v {
			v[i] = float32(math.Sin(float64(i) * 0.3))
		}
		v[3] = bad
		return stFile(t, map[string][]float32{"embeddings": v}, map[string][]int{"embeddings": {rows, width}}, map[string]string{"prompts": prompts})
	}
	all := `["a red apple", "a blue car", "a green forest"]`
	for _, c := range []struct {
		name     string
		data     []byte
		wantSpec bool
		want     string
	}{
		{"reward table lacks a prompt", tableOf(2, 32, `["a red apple", "a blue car"]`, 0), true, `no embedding for prompt "a green forest"`},
		{"reward table of the wrong width", tableOf(3, 48, all, 0), true, "48"},
		{"reward table with NaN", tableOf(3, 32, all, float32(math.NaN())), true, "non-finite value"},
		{"reward table not safetensors", []byte("hello"), true, "not a valid safetensors file"},
		{"reward table missing", nil, false, "no such file"},
	} {
		s := t2iSpec(t, "t2i_emb.json")
		genFile, _ := filepath.Abs(filepath.Join("testdata", "t2i_text.safetensors")) // the generator's own, valid
		gen(s)["prompt_embeddings"] = map[string]any{"file": genFile}
		extra := map[string][]byte{}
		if c.data != nil {
			extra["r.safetensors"] = c.data
			clip(s)["prompt_embeddings"] = map[string]any{"file": "r.safetensors"}
		} else {
			clip(s)["prompt_embeddings"] = map[string]any{"file": "absent.safetensors"}
		}
		_, err := Load(writeT2ISpec(t, s, extra), testutil.Backend(t))
		checkLoadError(t, c.name, err, c.wantSpec, c.want)
		if err != nil && c.wantSpec && !strings.Contains(err.Error(), "rewards.clip") {
			t.Errorf("%s: %q does not name rewards.clip", c.name, err)
		}
	}
	s := t2iSpec(t, "t2i_emb.json")
	delete(gen(s), "prompt_input")
	data, _ := json.Marshal(s)
	if _, err := ParseSpec("spec.json", data); err == nil || !strings.Contains(err.Error(), "needs prompt_input") {
		t.Errorf("prompt_embeddings without prompt_input: %v", err)
	}
}

// checkLoadError checks that a load failed with one line containing want, a *SpecError when
// wantSpec (a mistake in the spec or its data), else a *FileError.
func checkLoadError(t *testing.T, name string, err error, wantSpec bool, want string) {
	t.Helper()
	var se *SpecError
	var fe *FileError
	switch {
	case err == nil:
		t.Errorf("%s: loaded", name)
	case wantSpec && !errors.As(err, &se):
		t.Errorf("%s: %T %v, want a *SpecError", name, err, err)
	case !wantSpec && !errors.As(err, &fe):
		t.Errorf("%s: %T %v, want a *FileError", name, err, err)
	case !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n"):
		t.Errorf("%s: %q, want one line containing %q", name, err, want)
	}
}
