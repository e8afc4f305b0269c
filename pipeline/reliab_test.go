package pipeline

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// copyDir copies the files of a hypernetwork folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	var obj map[string]any
	if err := ckpt.ReadJSON(path, &obj); err != nil {
		t.Fatal(err)
	}
	edit(obj)
	if err := ckpt.WriteJSON(path, obj); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedWeightsRefused is issue 12 case 1: damaged or foreign weights loaded silently (black
// images, exit 0), an edited alpha gave garbage, and a hypernetwork file holding a /student tensor
// overwrote the base generator.
func TestDamagedWeightsRefused(t *testing.T) {
	backend, m := setup(t)
	dir := t.TempDir()
	if _, _, err := Train(backend, fashion.ModelOf(m), tinyOptions(dir, 3), nil); err != nil {
		t.Fatal(err)
	}
	load := func(d string) (*fashion.Model, error) {
		m2, err := fashion.Default()
		if err != nil {
			t.Fatal(err)
		}
		p, err := openPipeline(backend, fashion.ModelOf(m2), d)
		if err == nil {
			p.Close()
		}
		return m2, err
	}
	if _, err := load(dir); err != nil {
		t.Fatalf("intact folder refused: %v", err)
	}
	weights := func(d string) string { return filepath.Join(d, infer.WeightsFile) }
	cfgPath := func(d string) string { return filepath.Join(d, infer.ConfigFile) }

	// 64 flipped bytes in the middle of the tensor file.
	d := copyDir(t, dir)
	data, _ := os.ReadFile(weights(d))
	for i := len(data) / 2; i < len(data)/2+64; i++ {
		data[i] ^= 0x5a
	}
	_ = os.WriteFile(weights(d), data, 0o644)
	if _, err := load(d); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("flipped bytes: err = %v", err)
	}
	// NaN bytes over the last tensor values.
	d = copyDir(t, dir)
	data, _ = os.ReadFile(weights(d))
	for i := len(data) - 64; i < len(data); i += 4 {
		copy(data[i:], []byte{0, 0, 0xc0, 0x7f})
	}
	_ = os.WriteFile(weights(d), data, 0o644)
	if _, err := load(d); err == nil {
		t.Error("NaN bytes loaded")
	}
	// alpha edited in the JSON: out of range, and in range but not what was trained.
	for _, c := range []struct {
		alpha float64
		want  string
	}{{1e6, "LoRA alpha"}, {17, "modulator.alpha"}} {
		d = copyDir(t, dir)
		editJSON(t, cfgPath(d), func(o map[string]any) { o["modulator"].(map[string]any)["alpha"] = c.alpha })
		if _, err := load(d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("alpha %g: err = %v, want one naming %q", c.alpha, err, c.want)
		}
	}
	// A consistent pair (valid hashes) whose tensor file also holds a base-model tensor.
	d = copyDir(t, dir)
	var cfg infer.Config
	if _, err := ckpt.ReadConfig(cfgPath(d), &cfg); err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	raw, _ := os.ReadFile(weights(d))
	if _, err := ckpt.Decode(ctx, raw); err != nil {
		t.Fatal(err)
	}
	var student *context.Variable
	for v := range m.Context().IterVariables() {
		if strings.HasPrefix(v.Scope(), "/"+fashion.ScopeStudent+"/") && v.DType().IsFloat() {
			student = v
			break
		}
	}
	zeros := tensors.FromShape(student.Shape())
	ctx.InAbsPath(student.Scope()).VariableWithValue(student.Name(), zeros)
	if err := ckpt.SaveWithConfig(ctx, "/", weights(d), cfgPath(d), cfg); err != nil {
		t.Fatal(err)
	}
	// A consistent pair whose tensor has another shape than the architecture's.
	d2 := copyDir(t, dir)
	ctx2 := context.New()
	if _, err := ckpt.Decode(ctx2, raw); err != nil {
		t.Fatal(err)
	}
	var victim *context.Variable
	for v := range ctx2.IterVariables() {
		if v.Shape().Rank() == 2 {
			victim = v
			break
		}
	}
	dims := append([]int(nil), victim.Shape().Dimensions...)
	dims[0]++
	victim.MustSetValue(tensors.FromShape(shapes.Make(victim.DType(), dims...)))
	if err := ckpt.SaveWithConfig(ctx2, "/", weights(d2), cfgPath(d2), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := load(d2); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong-shaped tensor %s: err = %v", victim.ScopeAndName(), err)
	} else {
		t.Logf("wrong-shaped tensor: %v", err)
	}
	m2, err := load(d)
	if err == nil || !strings.Contains(err.Error(), student.ScopeAndName()) {
		t.Errorf("foreign tensor: err = %v, want one naming %s", err, student.ScopeAndName())
	}
	if fashion.ModelOf(m2).Hash != fashion.ModelOf(m).Hash {
		t.Error("a refused hypernetwork file changed the base generator")
	}
}

// TestResumeRules is issue 12 case 2 at the pipeline level.
func TestResumeRules(t *testing.T) {
	backend, m := setup(t)
	dir := t.TempDir()
	o := tinyOptions(dir, 4)
	o.Train.CheckpointEvery = 2
	if _, _, err := Train(backend, fashion.ModelOf(m), o, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, infer.ConfigFile))
	fresh := func() *fashion.Model {
		m2, err := fashion.Default()
		if err != nil {
			t.Fatal(err)
		}
		return m2
	}
	// Resuming with another reward, regularizer weight or modulator is refused, naming it.
	for _, c := range []struct {
		mod  func(*TrainOptions)
		want string
	}{
		{func(o *TrainOptions) { o.RewardSpec = "brightness=1" }, "reward_spec: align=1 -> brightness=1"},
		{func(o *TrainOptions) { o.RegWeight = 0.1 }, "reg_weight: 0.5 -> 0.1"},
		{func(o *TrainOptions) { o.Modulator.Rank = 4 }, "modulator"},
		{func(o *TrainOptions) { o.Train.Seed = 99 }, "seed"},
	} {
		r := o
		r.Resume, r.Train.Steps = true, 6
		c.mod(&r)
		if _, _, err := Train(backend, fashion.ModelOf(fresh()), r, nil); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, infer.ErrRunFolder) {
			t.Errorf("resume: err = %v, want a run-folder refusal naming %q", err, c.want)
		}
	}
	// Resuming the finished run leaves it intact.
	r := o
	r.Resume = true
	if _, res, err := Train(backend, fashion.ModelOf(fresh()), r, nil); err != nil || res.StartStep != 4 {
		t.Fatalf("resume of a finished run: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, infer.ConfigFile))
	if string(before) != string(after) {
		t.Errorf("resuming a finished run rewrote its config:\n%s\n->\n%s", before, after)
	}
	// A fresh run into the folder is refused without --force.
	if _, _, err := Train(backend, fashion.ModelOf(fresh()), o, nil); !errors.Is(err, infer.ErrRunFolder) {
		t.Errorf("fresh run over a finished one: err = %v", err)
	}
	// Resume in an empty folder is refused.
	e := o
	e.OutDir, e.Resume = t.TempDir(), true
	if _, _, err := Train(backend, fashion.ModelOf(fresh()), e, nil); !errors.Is(err, infer.ErrRunFolder) {
		t.Errorf("resume without a checkpoint: err = %v", err)
	}
	// Continuing to 6 steps: the result covers all 6 (the reward of the first steps is the
	// first run's, not 0).
	r.Train.Steps = 6
	hn, res, err := Train(backend, fashion.ModelOf(fresh()), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	var first infer.Config
	_ = json.Unmarshal(before, &first)
	if res.StartStep != 4 || len(res.Loss) != 6 || hn.Config.Result.Steps != 6 ||
		math.Abs(hn.Config.Result.RewardFirst-first.Result.RewardFirst) > 1e-9 {
		t.Errorf("after resume: start %d, %d losses, result %+v; first run's result %+v", res.StartStep, len(res.Loss), hn.Config.Result, first.Result)
	}
	if hypernet.CheckpointExists(dir) == false {
		t.Error("checkpoint gone")
	}
}
