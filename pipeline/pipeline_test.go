package pipeline

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/models/fashion"
)

func setup(t *testing.T) (backends.Backend, *fashion.Model) {
	t.Helper()
	backend := testutil.Backend(t)
	m, err := fashion.Default()
	if err != nil {
		t.Fatalf("embedded model: %v", err)
	}
	if err := m.Need(fashion.ScopeStudent, fashion.ScopeAutoencoder, fashion.ScopeClassifier); err != nil {
		t.Fatal(err)
	}
	return backend, m
}

// tinyOptions trains for a handful of steps, enough to move the hypernetwork.
func tinyOptions(dir string, steps int) TrainOptions {
	o := DefaultTrainOptions()
	o.OutDir = dir
	o.Train.Steps = steps
	o.Train.BatchSize = 8
	o.Train.WarmupSteps = 2
	o.Train.CheckpointEvery = 0
	o.Train.LR = 0.01
	return o
}

func TestStepZeroIsBase(t *testing.T) {
	backend, m := setup(t)
	mod, err := infer.ModulatorSpec{Kind: infer.KindLoRA, Rank: 4}.Build(m, infer.SavedScope)
	if err != nil {
		t.Fatal(err)
	}
	eps := hypernet.NoiseTensor(3, 0, 6, m.NoiseShape())
	prompts := tensors.FromValue([]int32{0, 1, 2, 7, 8, 9})
	base, err := hypernet.NewSampler(backend, m.Context(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Finalize()
	withMod, err := hypernet.NewSampler(backend, m.Context(), m, mod)
	if err != nil {
		t.Fatal(err)
	}
	defer withMod.Finalize()
	xb, _, _, err := base.Sample(eps, prompts)
	if err != nil {
		t.Fatal(err)
	}
	xm, epsPrime, cost, err := withMod.Sample(eps, prompts)
	if err != nil {
		t.Fatal(err)
	}
	a, b := tensors.MustCopyFlatData[float32](xb), tensors.MustCopyFlatData[float32](xm)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("image value %d: base %g, untrained hypernetwork %g: must be identical at step 0", i, a[i], b[i])
		}
	}
	e0, e1 := tensors.MustCopyFlatData[float32](eps), tensors.MustCopyFlatData[float32](epsPrime)
	for i := range e0 {
		if e0[i] != e1[i] {
			t.Fatalf("modulated noise differs from eps at %d at step 0", i)
		}
	}
	if cost.Forward != 2 {
		t.Errorf("hypernoise forward evaluations = %g, want 2", cost.Forward)
	}
}

func TestTrainSaveLoadRoundTrip(t *testing.T) {
	backend, m := setup(t)
	dir := t.TempDir()
	hn, res, err := Train(backend, fashion.ModelOf(m), tinyOptions(dir, 6), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 6 {
		t.Errorf("steps = %d", res.Steps)
	}
	for _, f := range []string{infer.WeightsFile, infer.ConfigFile, infer.CurveFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	eps := hypernet.NoiseTensor(5, 0, 4, m.NoiseShape())
	prompts := tensors.FromValue([]int32{1, 3, 5, 9})
	want := runSampler(t, backend, m, hn.Modulator, eps, prompts)
	base := runSampler(t, backend, m, nil, eps, prompts)
	if maxDiff(want, base) == 0 {
		t.Fatal("training changed nothing: the trained hypernetwork samples exactly the base images")
	}

	m2, err := fashion.Default()
	if err != nil {
		t.Fatal(err)
	}
	p2, err := openPipeline(backend, fashion.ModelOf(m2), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	hn2 := p2.Hypernets()[0]
	if hn2.Config.RewardSpec != "align=1" || hn2.Config.Modulator.Kind != infer.KindLoRA || hn2.Name != filepath.Base(dir) {
		t.Errorf("config after reload: %+v", hn2.Config)
	}
	got := runSampler(t, backend, m2, hn2.Modulator, eps, prompts)
	if d := maxDiff(want, got); d > 1e-6 {
		t.Errorf("reloaded hypernetwork differs from the trained one by %g", d)
	}

	// Other generator weights: refused.
	m3, _ := fashion.Default()
	var v *context.Variable
	for vv := range m3.Context().IterVariables() {
		if strings.HasPrefix(vv.Scope(), "/student") {
			v = vv
			break
		}
	}
	val := tensors.MustCopyFlatData[float32](v.MustValue())
	val[0] += 1
	v.MustSetValue(tensors.FromFlatDataAndDimensions(val, v.Shape().Dimensions...))
	if _, err := openPipeline(backend, fashion.ModelOf(m3), dir); err == nil || !strings.Contains(err.Error(), "other fashion weights") {
		t.Errorf("loading onto other weights: err = %v", err)
	}
	// A damaged weights file: a clear error naming it.
	if err := os.WriteFile(filepath.Join(dir, infer.WeightsFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	m4, _ := fashion.Default()
	if _, err := openPipeline(backend, fashion.ModelOf(m4), dir); err == nil || !strings.Contains(err.Error(), infer.WeightsFile) {
		t.Errorf("damaged weights: err = %v", err)
	}
	if _, err := openPipeline(backend, fashion.ModelOf(m4), t.TempDir()); err == nil || !strings.Contains(err.Error(), infer.ConfigFile) {
		t.Errorf("empty folder: err = %v", err)
	}
}

func runSampler(t *testing.T, backend backends.Backend, m *fashion.Model, mod hypernoise.Modulator, eps, prompts *tensors.Tensor) []float32 {
	t.Helper()
	s, err := hypernet.NewSampler(backend, m.Context(), m, mod)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Finalize()
	x, _, _, err := s.Sample(eps, prompts)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](x)
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestParseRewardErrors(t *testing.T) {
	_, m := setup(t)
	if _, err := fashion.Rewards(m).Parse("align=1,realism=0.5"); err != nil {
		t.Errorf("valid spec: %v", err)
	}
	if _, err := fashion.Rewards(m).Parse("aesthetic=1"); err == nil || !strings.Contains(err.Error(), "align, brightness, contrast, realism") {
		t.Errorf("unknown reward: err = %v", err)
	}
	if err := (infer.ModulatorSpec{Kind: "unet"}).Validate(); err == nil || !strings.Contains(err.Error(), "lora, mlp") {
		t.Errorf("unknown modulator: err = %v", err)
	}
	if err := (infer.ModulatorSpec{Kind: infer.KindLoRA, Rank: 0}).Validate(); err == nil {
		t.Error("rank 0 accepted")
	}
}

// TestTinyEndToEnd trains a hypernetwork and a fine-tune for a few steps and evaluates every
// method on 2 seeds per prompt with 2 ReNO steps: the figures must be complete and consistent.
func TestTinyEndToEnd(t *testing.T) {
	backend, m := setup(t)
	dir := t.TempDir()
	if _, _, err := Train(backend, fashion.ModelOf(m), tinyOptions(dir, 4), nil); err != nil {
		t.Fatal(err)
	}
	o := EvalOptions{SeedsPerPrompt: 2, Seed: 1, RenoSteps: 2, WarmRenoSteps: 1, SmallN: 2,
		FinetuneSteps: 2, FinetuneRank: 2, GridSeeds: 2, Batch: 20}
	p, err := openPipeline(backend, fashion.ModelOf(m), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rep, err := Evaluate(p, p.Hypernets()[0], dir, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantNFE := map[string]float64{"base": 1, "best-of-2": 2, "best-of-4": 4, "reno": 4,
		"hypernoise": 2, "hypernoise-reno": 2 + 2, "finetune": 1}
	for name, nfe := range wantNFE {
		r, ok := rep.Methods[name]
		if !ok {
			t.Errorf("method %s missing from the report", name)
			continue
		}
		if r.NFEPerImage != nfe {
			t.Errorf("%s: nfe_per_image = %g, want %g", name, r.NFEPerImage, nfe)
		}
		for k, v := range map[string]float64{"reward": r.Reward, "fd": float64(r.FD), "diversity": r.Diversity, "align": float64(r.HeldoutAlignment)} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s: %s = %g", name, k, v)
			}
		}
		if r.HeldoutAlignment < 0 || r.HeldoutAlignment > 1 || r.SecondsPerImage <= 0 {
			t.Errorf("%s: alignment %g, seconds %g", name, r.HeldoutAlignment, r.SecondsPerImage)
		}
	}
	// best-of-N keeps candidate 0 = the base noise when it is best, so its reward is >= base's.
	if rep.Methods["best-of-2"].Reward < rep.Methods[MethodBase].Reward-1e-6 {
		t.Errorf("best-of-2 reward %g below base %g", rep.Methods["best-of-2"].Reward, rep.Methods[MethodBase].Reward)
	}
	if rep.Methods[MethodReno].Reward < rep.Methods[MethodBase].Reward-1e-6 {
		t.Errorf("ReNO (keep best) reward %g below base %g", rep.Methods[MethodReno].Reward, rep.Methods[MethodBase].Reward)
	}
	if _, err := os.Stat(filepath.Join(dir, infer.FinetuneFile)); err != nil {
		t.Errorf("fine-tune adapters not cached: %v", err)
	}
	out := t.TempDir()
	if err := WriteDemoReport(out, &DemoResult{Align: rep}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"metrics.json", "index.html", "reward_vs_seconds.png", "align_base.png", "align_hypernoise.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("report lacks %s", f)
		}
	}
}

func TestSampleMethods(t *testing.T) {
	backend, m := setup(t)
	eps := hypernoise.NoiseFlat(9, 4, m.NoiseShape())
	prompts := []int32{0, 2, 4, 6}
	base, cost, err := Sample(backend, fashion.ModelOf(m), eps, prompts, SampleOptions{Method: "base"})
	if err != nil || cost.NFE() != 1 || len(base) != 4*784 {
		t.Fatalf("base: %d values, cost %+v, err %v", len(base), cost, err)
	}
	bon, cost, err := Sample(backend, fashion.ModelOf(m), eps, prompts, SampleOptions{Method: "best-of-n", N: 3})
	if err != nil || cost.NFE() != 3 {
		t.Fatalf("best-of-3: cost %+v, err %v", cost, err)
	}
	if len(bon) != len(base) {
		t.Errorf("best-of-3 returned %d values", len(bon))
	}
	for _, c := range []struct {
		o    SampleOptions
		want string
	}{
		{SampleOptions{Method: "magic"}, "methods: base, best-of-n, reno, finetune, hypernoise, hypernoise-reno"},
		{SampleOptions{Method: "hypernoise"}, "needs --hypernet"},
		{SampleOptions{Method: "best-of-n", N: 10001}, "N in [1, 10000], got 10001"},
		{SampleOptions{Method: "reno", Steps: -1}, "steps in [1, 1000]"},
	} {
		if _, _, err := Sample(backend, fashion.ModelOf(m), eps, prompts, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("options %+v: err = %v, want one containing %q", c.o, err, c.want)
		}
	}
}

// openPipeline opens the hypernetwork folders dirs and loads them into a pipeline over m.
func openPipeline(backend backends.Backend, m *family.Model, dirs ...string) (*infer.Pipeline, error) {
	folders, err := infer.OpenFolders(dirs...)
	if err != nil {
		return nil, err
	}
	return NewPipeline(backend, m, folders...)
}
