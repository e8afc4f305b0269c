package shim

import (
	"bytes"
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
	"github.com/hypernoise/hypernoise/nn"
)

// TestUnsupportedAllAtOnce renames two op types in the fixture generator and checks that Load
// names both in one error, before any graph is built.
func TestUnsupportedAllAtOnce(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testdata, "gen.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// same lengths, so the protobuf stays well-formed
	data = bytes.ReplaceAll(data, []byte("Sigmoid"), []byte("Sigmoix"))
	data = bytes.ReplaceAll(data, []byte("ConvTranspose"), []byte("ConvTranspoze"))
	p := filepath.Join(t.TempDir(), "bad.onnx")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p)
	var ue *UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("want an UnsupportedError, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"Sigmoix (5 node(s)", "ConvTranspoze (1 node(s)", "unsupported ONNX operations (2)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

// TestUnsupportedConfiguration checks that an op we support in some configurations is refused at
// load, with the configuration named, in the others (libonnx-testdata's Resize with
// tf_crop_and_resize coordinates, which torch never exports).
func TestUnsupportedConfiguration(t *testing.T) {
	p := filepath.Join(conformanceDir, "test_resize_tf_crop_and_resize", "model.onnx")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("ONNX conformance tests not installed (%v): apt-get install libonnx-testdata", err)
	}
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "coordinate_transformation_mode=tf_crop_and_resize") {
		t.Fatalf("want an error naming Resize(coordinate_transformation_mode=tf_crop_and_resize), got %v", err)
	}
}

// runOp builds one of our ops on float32 inputs and returns its first output.
func runOp(t *testing.T, n *node, inputs ...*tensors.Tensor) []float32 {
	t.Helper()
	be := testutil.Backend(t)
	out := MustExecOnceN(be, func(ps []*Node) []*Node {
		b := &builder{g: &Model{}, ctx: context.New(), gr: ps[0].Graph(), cur: ps[0].Graph(),
			vals: map[string]*Node{}, consts: map[*Node]*tensors.Tensor{}}
		return ours[n.op].fn(b, n, ps)[:1]
	}, toAny(inputs)...)
	return tensors.MustCopyFlatData[float32](out[0])
}

func toAny(ts []*tensors.Tensor) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}

// TestGroupNormalization checks GroupNormalization (opset 18 per-group and opset 21 per-channel
// parameters; not in libonnx-testdata 1.12) against the formula computed here in float64.
func TestGroupNormalization(t *testing.T) {
	const n, c, hw, groups = 2, 4, 3, 2
	x := make([]float32, n*c*hw)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*1.3) * float64(1+i%5))
	}
	for _, perGroup := range []bool{false, true} {
		np := c
		if perGroup {
			np = groups
		}
		scale, bias := make([]float32, np), make([]float32, np)
		for i := range scale {
			scale[i], bias[i] = float32(1+i), float32(i)*0.5-0.2
		}
		nd := &node{op: "GroupNormalization", attrs: map[string]*attr{"num_groups": {i: groups}, "epsilon": {f: 1e-5}}}
		got := runOp(t, nd, tensors.FromFlatDataAndDimensions(x, n, c, hw),
			tensors.FromFlatDataAndDimensions(scale, np), tensors.FromFlatDataAndDimensions(bias, np))
		per := c / groups
		for b := range n {
			for g := range groups {
				var sum, sq float64
				lo := (b*c + g*per) * hw
				for _, v := range x[lo : lo+per*hw] {
					sum += float64(v)
				}
				mean := sum / float64(per*hw)
				for _, v := range x[lo : lo+per*hw] {
					sq += (float64(v) - mean) * (float64(v) - mean)
				}
				sd := math.Sqrt(sq/float64(per*hw) + 1e-5)
				for k := range per * hw {
					ch := g*per + k/hw
					pi := ch
					if perGroup {
						pi = g
					}
					want := (float64(x[lo+k])-mean)/sd*float64(scale[pi]) + float64(bias[pi])
					if d := math.Abs(float64(got[lo+k]) - want); d > 1e-5*math.Max(1, math.Abs(want)) {
						t.Fatalf("perGroup=%v: element %d is %g, want %g", perGroup, lo+k, got[lo+k], want)
					}
				}
			}
		}
	}
}

// TestGelu checks Gelu (opset 20; not in libonnx-testdata 1.12): x Φ(x), and the tanh form.
func TestGelu(t *testing.T) {
	x := []float32{-3, -1, -0.5, 0, 0.3, 1, 2.5}
	for _, approx := range []string{"none", "tanh"} {
		nd := &node{op: "Gelu", attrs: map[string]*attr{"approximate": {s: approx}}}
		got := runOp(t, nd, tensors.FromFlatDataAndDimensions(x, len(x)))
		for i, v := range x {
			f := float64(v)
			want := f * 0.5 * (1 + math.Erf(f/math.Sqrt2))
			if approx == "tanh" {
				want = 0.5 * f * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(f+0.044715*f*f*f)))
			}
			if d := math.Abs(float64(got[i]) - want); d > 1e-6 {
				t.Errorf("%s: gelu(%g) = %g, want %g", approx, f, got[i], want)
			}
		}
	}
}

// TestLoRAOnGemmAndMatMul runs the fixture reward under nn.WithLoRA: every Gemm and MatMul with a
// stored weight gets adapter factors, the outputs are unchanged at initialization (B = 0), and with
// OutputOnly a Gemm output is replaced by its LoRA branch (zero at initialization); an output that
// no layer produces is refused with a message naming the MLP modulator.
func TestLoRAOnGemmAndMatMul(t *testing.T) {
	be := testutil.Backend(t)
	m, err := Load(filepath.Join(testdata, "reward.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	m.CreateVariables(ctx)
	img := make([]float32, 2*3*32*32)
	for i := range img {
		img[i] = float32(i%17) / 17
	}
	const head = "/head/Gemm_output_0"
	run := func(cfg nn.LoRA) []*tensors.Tensor {
		e, err := context.NewExec(be, ctx, func(ctx *context.Context, x, p *Node) []*Node {
			outs := m.Call(ctx, x.Graph(), map[string]*Node{"image": x, "prompt": p}, "score", head)
			lctx, err := nn.WithLoRA(ctx, "lora", cfg)
			if err != nil {
				panic(err)
			}
			names := []string{"score", head}
			if cfg.OutputOnly {
				names = []string{head}
			}
			return append(outs, m.Call(lctx, x.Graph(), map[string]*Node{"image": x, "prompt": p}, names...)...)
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.Exec(tensors.FromFlatDataAndDimensions(img, 2, 3, 32, 32), []int64{0, 2})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := run(nn.LoRA{Rank: 2, Alpha: 4})
	for i, name := range []string{"score", head} {
		a, b := tensors.MustCopyFlatData[float32](out[i]), tensors.MustCopyFlatData[float32](out[2+i])
		for k := range a {
			if a[k] != b[k] {
				t.Fatalf("%s under LoRA differs at initialization: %g vs %g", name, b[k], a[k])
			}
		}
	}
	adapted := map[string]bool{}
	for v := range ctx.IterVariables() {
		if v.Name() == "lora_b" {
			adapted[v.Scope()] = true
		}
	}
	ops := map[string]int{}
	for _, n := range m.nodes {
		if (n.op == "Gemm" || n.op == "MatMul") && m.adaptable(n) {
			ops[n.op]++
			if !adapted["/lora/"+VarName(n.in[1])] {
				t.Errorf("%s has no adapter (adapters: %v)", n, adapted)
			}
		}
	}
	if ops["Gemm"] == 0 || ops["MatMul"] == 0 {
		t.Fatalf("the fixture reward should have adaptable Gemm and MatMul nodes, found %v", ops)
	}
	out = run(nn.LoRA{Rank: 2, Alpha: 4, OutputOnly: true})
	for _, v := range tensors.MustCopyFlatData[float32](out[2]) {
		if v != 0 {
			t.Fatalf("output-only LoRA of %s is not zero at initialization: %g", head, v)
		}
	}
	if err := m.CheckOutputLayer("score"); err == nil || !strings.Contains(err.Error(), "MLP modulator") {
		t.Errorf("score is a sum, not a layer output; want a refusal naming the MLP modulator, got %v", err)
	}
}

// TestExternalDataMissing: a model whose external weights file is absent is a *FileError naming it.
func TestExternalDataMissing(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testdata, "gen_ext.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gen_ext.onnx")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p)
	var fe *FileError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "gen_ext.onnx.data") {
		t.Fatalf("want a FileError naming gen_ext.onnx.data, got %v", err)
	}
}

// TestWeightBytesOf: the weights' memory read from the tensor headers equals the loaded model's
// WeightBytes (half precision widened, external data included) without opening external data
// files.
func TestWeightBytesOf(t *testing.T) {
	for _, name := range []string{"gen.onnx", "gen_fp16.onnx", "gen_bf16.onnx", "gen_ext.onnx", "reward.onnx", "t2i_gen.onnx", "t2i_clip.onnx"} {
		p := filepath.Join(testdata, name)
		m, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := WeightBytesOf(p); err != nil || got != m.WeightBytes() || got == 0 {
			t.Errorf("%s: WeightBytesOf = %d, %v; want the loaded model's %d", name, got, err, m.WeightBytes())
		}
	}
	// Without its external data file: the headers alone give the same figure.
	data, err := os.ReadFile(filepath.Join(testdata, "gen_ext.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gen_ext.onnx")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	full, _ := WeightBytesOf(filepath.Join(testdata, "gen_ext.onnx"))
	if got, err := WeightBytesOf(p); err != nil || got != full {
		t.Errorf("gen_ext.onnx without its data file: %d, %v; want %d", got, err, full)
	}
	var fe *FileError
	if _, err := WeightBytesOf(filepath.Join(t.TempDir(), "absent.onnx")); !errors.As(err, &fe) {
		t.Errorf("an absent file: %v, want a *FileError", err)
	}
	if _, err := WeightBytesOf(p[:len(p)-len("gen_ext.onnx")]); !errors.As(err, &fe) {
		t.Errorf("a directory: %v, want a *FileError", err)
	}
}
