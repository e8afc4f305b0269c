package export_test

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/export"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/internal/testutil"
	_ "github.com/hypernoise/hypernoise/models"
	"github.com/hypernoise/hypernoise/models/onnx/shim"
	"github.com/hypernoise/hypernoise/pipeline"
)

// trained trains a hypernetwork of the given kind for a few steps with a large learning rate (so
// that f_phi is far from zero) and returns its opened folder.
func trained(t *testing.T, be backends.Backend, m *family.Model, reward string, mod infer.ModulatorSpec, tweak func(*pipeline.TrainOptions)) *infer.Folder {
	t.Helper()
	opts := pipeline.DefaultTrainOptions()
	opts.RewardSpec = reward
	opts.Modulator = mod
	opts.OutDir = filepath.Join(t.TempDir(), "hn")
	opts.Train.Steps, opts.Train.BatchSize, opts.Train.WarmupSteps, opts.Train.LR = 6, 4, 1, 3e-2
	opts.Train.CheckpointEvery = 0
	if tweak != nil {
		tweak(&opts)
	}
	if _, _, err := pipeline.Train(be, m, opts, nil); err != nil {
		t.Fatal(err)
	}
	f, err := infer.OpenFolder(opts.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// roundTrip exports f, imports the file back with our ONNX importer, runs it on seeded noise and
// every prompt, and compares its modulated noise with the pipeline's own eps + f_phi(eps, c).
func roundTrip(t *testing.T, be backends.Backend, m *family.Model, f *infer.Folder) {
	t.Helper()
	model, err := export.ONNX(f, m)
	if err != nil {
		t.Fatal(err)
	}
	data, err := model.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hn.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := shim.Load(path)
	if err != nil {
		t.Fatalf("the exported graph does not load: %v", err)
	}

	p, err := pipeline.NewPipeline(be, m, f)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	hn := p.Hypernets()[0]
	const n = 6
	shape := append([]int{n}, m.Generator.NoiseShape()...)
	eps := tensors.FromShape(shapes.Make(dtypes.Float32, shape...))
	tensors.MustMutableFlatData(eps, func(v []float32) {
		for i := range v {
			v[i] = float32(math.Sin(float64(i)*0.37) * 1.3)
		}
	})
	ids32, ids64 := make([]int32, n), make([]int64, n)
	for i := range n {
		ids32[i] = int32(i % m.NumPrompts())
		ids64[i] = int64(ids32[i])
	}
	s, err := hypernet.NewSampler(be, m.Context, m.Generator, hn.Modulator)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Finalize()
	_, want, _, err := s.Sample(eps, tensors.FromValue(ids32))
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.New()
	g.CreateVariables(ctx)
	conditional := len(m.Generator.Prompts()) > 0
	exec := context.MustNewExec(be, ctx, func(ctx *context.Context, eps, prompts *Node) *Node {
		in := map[string]*Node{export.InputNoise: eps}
		if conditional {
			in[export.InputPrompt] = prompts
		}
		return g.Call(ctx, eps.Graph(), in, export.Output)[0]
	})
	got := exec.MustExec(eps, tensors.FromValue(ids64))[0]
	w, gv, e := tensors.MustCopyFlatData[float32](want), tensors.MustCopyFlatData[float32](got), tensors.MustCopyFlatData[float32](eps)
	if len(w) != len(gv) {
		t.Fatalf("exported output has %d values, want %d", len(gv), len(w))
	}
	var maxDiff, maxF float64
	for i := range w {
		maxDiff = max(maxDiff, math.Abs(float64(w[i]-gv[i])))
		maxF = max(maxF, math.Abs(float64(w[i]-e[i])))
	}
	t.Logf("%s: max |f_phi| %.4g, max |exported - ours| %.3g (%d bytes)", f.Config.Modulator.Kind, maxF, maxDiff, len(data))
	if maxF < 1e-3 {
		t.Fatalf("the trained residual is too small (%g) for the comparison to mean anything", maxF)
	}
	if maxDiff > 1e-5*max(1, maxF) {
		t.Errorf("exported modulated noise differs from ours by %g (residual scale %g)", maxDiff, maxF)
	}
	checkORT(t, path, shape, e, ids64, conditional, w, maxF)
}

// checkORT runs the exported file with onnxruntime (scripts/ort_run.js) when node and npm's
// onnxruntime-node (in .ort/, see scripts/ort_bench.js) are installed, and compares with ours.
func checkORT(t *testing.T, path string, shape []int, eps []float32, ids []int64, conditional bool, want []float32, scale float64) {
	t.Helper()
	node, err := exec.LookPath("node")
	ortDir := filepath.Join("..", ".ort", "node_modules", "onnxruntime-node")
	if d := os.Getenv("HYPERNOISE_ORT_DIR"); d != "" {
		ortDir = filepath.Join(d, "node_modules", "onnxruntime-node")
	}
	if _, serr := os.Stat(ortDir); err != nil || serr != nil {
		t.Logf("onnxruntime check not run: needs node and npm's onnxruntime-node in .ort/ (ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix .ort onnxruntime-node)")
		return
	}
	type feed struct {
		Dims []int `json:"dims"`
		Data any   `json:"data"`
	}
	cfg := map[string]any{"model": path, "output": export.Output,
		"float32": map[string]feed{export.InputNoise: {shape, eps}}}
	if conditional {
		cfg["int64"] = map[string]feed{export.InputPrompt: {[]int{len(ids)}, ids}}
	}
	arg, _ := json.Marshal(cfg)
	out, err := exec.Command(node, filepath.Join("..", "scripts", "ort_run.js"), string(arg)).Output()
	if err != nil {
		t.Fatalf("onnxruntime could not run the exported graph: %v %s", err, exitStderr(err))
	}
	var res struct {
		Dims []int     `json:"dims"`
		Data []float32 `json:"data"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != len(want) {
		t.Fatalf("onnxruntime gave %d values (dims %v), want %d", len(res.Data), res.Dims, len(want))
	}
	var maxDiff float64
	for i := range want {
		maxDiff = max(maxDiff, math.Abs(float64(want[i]-res.Data[i])))
	}
	t.Logf("onnxruntime: max |onnxruntime - ours| %.3g", maxDiff)
	if maxDiff > 1e-5*max(1, scale) {
		t.Errorf("onnxruntime's modulated noise differs from ours by %g", maxDiff)
	}
}

func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

func load(t *testing.T, be backends.Backend, ref string) *family.Model {
	m, err := family.Load(ref, be)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestExportLoRAConv: the paper's LoRA hypernetwork on the convolutional ONNX fixture (prompt ids
// fed to the generator), adapters folded into three convolutions, the output layer reduced to its
// LoRA term.
func TestExportLoRAConv(t *testing.T) {
	be := testutil.Backend(t)
	m := load(t, be, "onnx:../models/onnx/testdata/spec.json")
	roundTrip(t, be, m, trained(t, be, m, "score=1", infer.ModulatorSpec{Kind: infer.KindLoRA, Rank: 4}, nil))
}

// TestExportLoRAText: the LoRA hypernetwork on the tiny text-to-image fixture (attention blocks
// whose MatMul and Gemm weights take adapters, text embeddings looked up from the spec's table).
func TestExportLoRAText(t *testing.T) {
	be := testutil.Backend(t)
	m := load(t, be, "onnx:../models/onnx/testdata/t2i_emb.json")
	roundTrip(t, be, m, trained(t, be, m, "clip=1", infer.ModulatorSpec{Kind: infer.KindLoRA, Rank: 4}, nil))
}

// TestExportMLP: the MLP modulator on an imported model and on the embedded default.
func TestExportMLP(t *testing.T) {
	be := testutil.Backend(t)
	m := load(t, be, "onnx:../models/onnx/testdata/spec.json")
	roundTrip(t, be, m, trained(t, be, m, "score=1", infer.ModulatorSpec{Kind: infer.KindMLP, Hidden: 32, Layers: 2}, nil))
	fm := load(t, be, "fashion")
	roundTrip(t, be, fm, trained(t, be, fm, "align=1", infer.ModulatorSpec{Kind: infer.KindMLP, Hidden: 32, Layers: 1}, nil))
}

// TestExportDial: a tilt dial is exported at the beta it serves by default, its beta features
// folded into the biases.
func TestExportDial(t *testing.T) {
	be := testutil.Backend(t)
	m := load(t, be, "onnx:../models/onnx/testdata/spec.json")
	f := trained(t, be, m, "score=1", infer.ModulatorSpec{Kind: infer.KindDial, Hidden: 32, Layers: 2, BetaRange: [2]float64{0.1, 2}},
		func(o *pipeline.TrainOptions) { o.Reg, o.Beta = hypernet.RegKL, 0.5 })
	roundTrip(t, be, m, f)
}

// TestExportRefusesLoRAOnEmbedded: the embedded generator is Go code, not an ONNX graph, so its
// LoRA hypernetwork cannot be exported; the error says which hypernetworks can.
func TestExportRefusesLoRAOnEmbedded(t *testing.T) {
	be := testutil.Backend(t)
	fm := load(t, be, "fashion")
	f := trained(t, be, fm, "align=1", infer.ModulatorSpec{Kind: infer.KindLoRA, Rank: 2}, func(o *pipeline.TrainOptions) { o.Train.Steps = 1 })
	_, err := export.ONNX(f, fm)
	if err == nil || !regexp.MustCompile(`not an ONNX graph.*--modulator mlp`).MatchString(err.Error()) {
		t.Fatalf("err = %v", err)
	}
	other := load(t, be, "onnx:../models/onnx/testdata/spec.json")
	if _, err := export.ONNX(f, other); err == nil || !strings.Contains(err.Error(), "was trained for generator") {
		t.Fatalf("exporting against another model: err = %v", err)
	}
}
