package onnx

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/nn"
)

const fixtureSpec = "testdata/spec.json"

// TestLoadFixture loads the fixture spec and checks that the generator, run through the
// hypernoise.Generator interface (int32 prompt ids, as every method passes them), reproduces
// PyTorch's image for the reference noise.
func TestLoadFixture(t *testing.T) {
	be := testutil.Backend(t)
	m, err := Load(fixtureSpec, be)
	if err != nil {
		t.Fatal(err)
	}
	gen := m.Generator()
	if _, ok := gen.(hypernoise.Backbone); !ok {
		t.Fatal("the fixture names a backbone output, but the generator is not a hypernoise.Backbone")
	}
	if err := m.CheckLoRA(); err != nil {
		t.Fatal(err)
	}
	if got := gen.Prompts(); len(got) != 3 || got[2] != "stripes" {
		t.Fatalf("prompts %v", got)
	}
	data, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var refs map[string]struct {
		Inputs  map[string]struct{ Data []float64 }
		Outputs map[string]struct{ Data []float64 }
	}
	if err := json.Unmarshal(data, &refs); err != nil {
		t.Fatal(err)
	}
	ref := refs["gen.onnx"]
	noise := make([]float32, len(ref.Inputs["noise"].Data))
	for i, v := range ref.Inputs["noise"].Data {
		noise[i] = float32(v)
	}
	prompts := []int32{int32(ref.Inputs["prompt"].Data[0]), int32(ref.Inputs["prompt"].Data[1])}
	out := execIn(t, be, m.Context(), func(ctx *context.Context, eps, p *Node) []*Node {
		x := gen.Generate(ctx, eps, p)
		rw, _ := m.Reward("score")
		return []*Node{x, rw.Score(ctx, x, p)}
	}, tensors.FromFlatDataAndDimensions(noise, 2, 4, 8, 8), prompts)
	if d := out[0].Shape().Dimensions; !slices.Equal(d, []int{2, 32, 32, 3}) {
		t.Fatalf("Generate gives %v, want images [2,32,32,3] (NHWC)", d)
	}
	got := tensors.MustCopyFlatData[float32](out[0]) // NHWC; PyTorch's reference is NCHW
	want := ref.Outputs["image"].Data
	worst := 0.0
	for b := range 2 {
		for c := range 3 {
			for y := range 32 {
				for x := range 32 {
					g := got[((b*32+y)*32+x)*3+c]
					w := want[((b*3+c)*32+y)*32+x]
					worst = math.Max(worst, math.Abs(float64(g)-w))
				}
			}
		}
	}
	if worst > 1e-5 {
		t.Errorf("image differs from PyTorch's by %.3g", worst)
	}
	if d := out[1].Shape().Dimensions; len(d) != 1 || d[0] != 2 {
		t.Errorf("reward gives %v, want [2]", d)
	}
}

// writeSpec writes spec (a JSON-able map) next to copies of the fixture files and returns its path.
func writeSpec(t *testing.T, spec map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"gen.onnx", "reward.onnx"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
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

func baseSpec() map[string]any {
	return map[string]any{
		"name": "fixture",
		"generator": map[string]any{"onnx": "gen.onnx", "noise_input": "noise", "noise_shape": []int{4, 8, 8},
			"prompt_input": "prompt", "output": "image", "backbone_output": "latent"},
		"prompts": []string{"circle", "square", "stripes"},
		"rewards": map[string]any{"score": map[string]any{"onnx": "reward.onnx", "image_input": "image",
			"prompt_input": "prompt", "output": "score"}},
	}
}

func gen(s map[string]any) map[string]any { return s["generator"].(map[string]any) }
func rew(s map[string]any) map[string]any {
	return s["rewards"].(map[string]any)["score"].(map[string]any)
}

// TestBadInput checks that each kind of bad input is one clear error of the right kind (spec
// mistake or file problem) naming the field or the operation, never a panic.
func TestBadInput(t *testing.T) {
	be := testutil.Backend(t)
	cases := []struct {
		name     string
		edit     func(s map[string]any, dir string)
		specErr  bool   // *SpecError (exit 2) rather than a file error (exit 1)
		contains string // in the message
	}{
		{"missing generator file", func(s map[string]any, _ string) { gen(s)["onnx"] = "nope.onnx" }, false, "nope.onnx"},
		{"missing field", func(s map[string]any, _ string) { delete(gen(s), "noise_input") }, true, `"generator.noise_input": missing`},
		{"wrong type", func(s map[string]any, _ string) { gen(s)["noise_shape"] = "4x8x8" }, true, `"generator.noise_shape": must be an array`},
		{"wrong element type", func(s map[string]any, _ string) { gen(s)["noise_shape"] = []any{4, "8", 8} }, true, `"generator.noise_shape`},
		{"unknown field", func(s map[string]any, _ string) { gen(s)["noise_inptu"] = "noise" }, true, `"noise_inptu": unknown field`},
		{"tensor not in graph", func(s map[string]any, _ string) { gen(s)["output"] = "picture" }, true, `"generator.output": no tensor "picture"`},
		{"input not in graph", func(s map[string]any, _ string) { rew(s)["prompt_input"] = "text" }, true, `"rewards.score.prompt_input": "text" is not an input`},
		{"noise shape mismatch", func(s map[string]any, _ string) { gen(s)["noise_shape"] = []int{3, 8, 8} }, true, `"generator.noise_shape": [3 8 8] does not match`},
		{"backbone not noise-shaped", func(s map[string]any, _ string) {
			gen(s)["backbone_output"] = "/conv_in/Conv_output_0"
		}, true, `"generator.backbone_output"`},
		{"reward output shape", func(s map[string]any, _ string) {
			rew(s)["output"] = "/head/Gemm_output_0"
		}, true, `"rewards.score.output": "/head/Gemm_output_0" must be one score per sample`},
		{"prompt input without prompts", func(s map[string]any, _ string) { delete(s, "prompts") }, true, `"prompts": missing`},
		{"truncated file", func(s map[string]any, dir string) {
			data, _ := os.ReadFile(filepath.Join(dir, "reward.onnx"))
			_ = os.WriteFile(filepath.Join(dir, "reward.onnx"), data[:len(data)/2], 0o644)
		}, false, "not a valid ONNX model"},
		{"not ONNX", func(s map[string]any, dir string) {
			_ = os.WriteFile(filepath.Join(dir, "gen.onnx"), []byte("hello, I am a text file\n"), 0o644)
		}, false, "not a valid ONNX model"},
		{"fixed batch size", func(s map[string]any, dir string) {
			data, _ := os.ReadFile(filepath.Join("testdata", "gen_static.onnx"))
			_ = os.WriteFile(filepath.Join(dir, "gen.onnx"), data, 0o644)
			delete(gen(s), "prompt_input")
		}, false, `input "noise" has a fixed batch size 2; export it with a dynamic batch axis`},
		{"empty file", func(s map[string]any, dir string) {
			_ = os.WriteFile(filepath.Join(dir, "gen.onnx"), nil, 0o644)
		}, false, "empty file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := baseSpec()
			p := writeSpec(t, s)
			c.edit(s, filepath.Dir(p))
			data, _ := json.Marshal(s)
			_ = os.WriteFile(p, data, 0o644)
			_, err := Load(p, be)
			if err == nil {
				t.Fatal("no error")
			}
			var se *SpecError
			if errors.As(err, &se) != c.specErr {
				t.Errorf("error kind: spec error = %v, want %v: %v", !c.specErr, c.specErr, err)
			}
			if !strings.Contains(err.Error(), c.contains) {
				t.Errorf("error %q does not contain %q", err, c.contains)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "absent.json"), be)
	var fe *FileError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "absent.json") {
		t.Errorf("missing spec file: %v", err)
	}
}

// TestLoRAStartsAtZero checks the imported backbone under nn.WithLoRA(OutputOnly): the output layer
// is replaced by its LoRA branch, so f = 0 exactly before training, and a non-zero B makes it move.
func TestLoRAStartsAtZero(t *testing.T) {
	be := testutil.Backend(t)
	m, err := Load(fixtureSpec, be)
	if err != nil {
		t.Fatal(err)
	}
	bb := m.Generator().(hypernoise.Backbone)
	noise := make([]float32, 2*4*8*8)
	for i := range noise {
		noise[i] = float32(math.Sin(float64(i)))
	}
	run := func() []float32 {
		out := execIn(t, be, m.Context(), func(ctx *context.Context, eps, p *Node) []*Node {
			return []*Node{bb.Backbone(loraCtx(t, ctx), eps, p)}
		}, tensors.FromFlatDataAndDimensions(noise, 2, 4, 8, 8), []int32{0, 1})
		return tensors.MustCopyFlatData[float32](out[0])
	}
	for _, v := range run() {
		if v != 0 {
			t.Fatalf("LoRA output-only backbone is not zero at initialization: %g", v)
		}
	}
	// every adaptable layer got factors; set the output layer's B to ones
	var bs []string
	for v := range m.Context().IterVariables() {
		if strings.HasSuffix(v.Name(), "lora_b") {
			bs = append(bs, v.Scope())
		}
	}
	if len(bs) != 3 {
		t.Fatalf("expected adapters on the 3 convolutions of the backbone, found %v", bs)
	}
	for v := range m.Context().IterVariables() {
		if v.Name() == "lora_b" {
			val, _ := v.Value()
			ones := make([]float32, val.Shape().Size())
			for i := range ones {
				ones[i] = 0.01
			}
			v.MustSetValue(tensors.FromFlatDataAndDimensions(ones, val.Shape().Dimensions...))
		}
	}
	nonZero := 0
	for _, v := range run() {
		if v != 0 {
			nonZero++
		}
	}
	if nonZero == 0 {
		t.Fatal("the LoRA branch stays zero with non-zero B")
	}
}

func loraCtx(t *testing.T, ctx *context.Context) *context.Context {
	t.Helper()
	l, err := nn.WithLoRA(ctx, "hypernet", nn.LoRA{Rank: 2, Alpha: 4, OutputOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// execIn runs fn once in ctx (which holds the imported weights) on the given inputs.
func execIn(t *testing.T, be backends.Backend, ctx *context.Context, fn func(ctx *context.Context, a, b *Node) []*Node, args ...any) []*tensors.Tensor {
	t.Helper()
	e, err := context.NewExec(be, ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
