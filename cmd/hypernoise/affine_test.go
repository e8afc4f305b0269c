package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/rewards"
	"github.com/hypernoise/hypernoise/rewards/imagerewards"
)

// wideGen is a test generator with 96x96 noise, past the affine modulator's D x D bound.
type wideGen struct{}

func (wideGen) Name() string      { return "wide" }
func (wideGen) NoiseShape() []int { return []int{96, 96, 1} }
func (wideGen) Prompts() []string { return nil }
func (wideGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return Sigmoid(eps)
}

func init() {
	family.Register(family.Family{Name: "wide", Summary: "a 96x96 test generator",
		Load: func(_ string, _ backends.Backend) (*family.Model, error) {
			reg := rewards.NewRegistry()
			if err := imagerewards.Pixel(reg); err != nil {
				return nil, err
			}
			return &family.Model{Generator: wideGen{}, Context: context.New(), Rewards: reg, DefaultReward: "brightness=1"}, nil
		}})
}

// TestAffineModulator: `train --modulator affine` records the affine map and its shift scale, trains
// with SGD at lr 0.02 unless --optimizer or --lr says otherwise, and sample and eval run the
// folder; export refuses it by name; noise too large for a D x D matrix, and a run without an
// explicit --beta (the default 1/D has no bounded optimum for it), are refused up front with exit 2.
func TestAffineModulator(t *testing.T) {
	dir := t.TempDir()
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", "tiny", "--modulator", "affine", "--beta", "0.5", "--steps", "3", "--batch", "4", "--quiet", "--out", hn); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	hf, err := infer.OpenFolder(hn)
	if err != nil {
		t.Fatal(err)
	}
	c := hf.Config
	if c.Modulator != (infer.ModulatorSpec{Kind: infer.KindAffine, ShiftScale: hypernet.DefaultAffineShiftScale}) || c.Train.Optimizer != hypernet.SGD || c.Train.LR != AffineLR || c.Train.Momentum != 0.9 {
		t.Fatalf("hypernet.json: modulator %+v, optimizer %s lr %g momentum %g; want affine with its shift scale, sgd 0.02 0.9", c.Modulator, c.Train.Optimizer, c.Train.LR, c.Train.Momentum)
	}
	if code, out, msg := run("sample", "--hypernet", hn, "--prompt", "all", "--n", "2", "--out", filepath.Join(dir, "g.png")); code != 0 {
		t.Fatalf("sample: exit %d: %s %s", code, out, msg)
	}
	if code, _, msg := run("eval", "--hypernet", hn, "--seeds", "2", "--methods", "base,hypernoise", "--json", "--quiet"); code != 0 {
		t.Fatalf("eval: exit %d: %s", code, msg)
	}
	if code, _, msg := run("export", "--hypernet", hn, "--out", filepath.Join(dir, "hn.onnx")); code == 0 || !strings.Contains(msg, `modulator "affine" cannot be exported`) {
		t.Errorf("export of an affine hypernetwork: exit %d, %q; want a refusal naming the modulator", code, msg)
	}
	hn2 := filepath.Join(dir, "hn2")
	if code, _, msg := run("train", "--model", "tiny", "--modulator", "affine", "--beta", "0.5", "--optimizer", "adamw", "--lr", "0.001", "--steps", "2", "--batch", "4", "--quiet", "--out", hn2); code != 0 {
		t.Fatalf("train --optimizer adamw: exit %d: %s", code, msg)
	}
	if hf, err := infer.OpenFolder(hn2); err != nil || hf.Config.Train.Optimizer != hypernet.AdamW || hf.Config.Train.LR != 0.001 {
		t.Fatalf("train --optimizer adamw --lr 0.001: %v, %+v", err, hf.Config.Train)
	}
	checkUsageErrors(t, []string{"train", "--out", filepath.Join(dir, "hn3"), "--modulator", "affine"}, []usageCase{
		{[]string{"--model", "wide", "--beta", "1"}, "use --modulator mlp"},
		{[]string{"--model", "tiny"}, "--modulator affine needs --beta (or --reg-weight)"},
	})
	// A hypernet.json's shift scale is checked on load.
	for _, s := range []float64{0, -1, 2000} {
		if err := (infer.ModulatorSpec{Kind: infer.KindAffine, ShiftScale: s}).Validate(); err == nil || !strings.Contains(err.Error(), "shift scale") {
			t.Errorf("affine shift scale %g: %v, want a refusal naming the shift scale", s, err)
		}
	}
	if !strings.Contains(infer.ModulatorSpec{Kind: "nope"}.Validate().Error(), infer.KindAffine) {
		t.Error("the unknown-modulator error does not list affine")
	}
}

// TestGaussianModulator: `train --modulator gaussian` trains on the exact KL (its log-determinant is
// exact) with SGD unless flags say otherwise, --reg overrides the objective, sample and eval run
// the folder, export refuses it, and it shares the affine map's refusals (size, missing --beta).
func TestGaussianModulator(t *testing.T) {
	dir := t.TempDir()
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", "tiny", "--modulator", "gaussian", "--beta", "0.5", "--steps", "3", "--batch", "4", "--quiet", "--out", hn); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	hf, err := infer.OpenFolder(hn)
	if err != nil {
		t.Fatal(err)
	}
	c := hf.Config
	if c.Modulator != (infer.ModulatorSpec{Kind: infer.KindGaussian, ShiftScale: hypernet.DefaultAffineShiftScale}) || c.Reg != hypernet.RegExactKL || c.Beta != 0.5 || c.Train.Optimizer != hypernet.SGD || c.Train.LR != AffineLR {
		t.Fatalf("hypernet.json: modulator %+v, reg %s beta %g, optimizer %s lr %g; want gaussian on exact-kl at 0.5, sgd 0.02", c.Modulator, c.Reg, c.Beta, c.Train.Optimizer, c.Train.LR)
	}
	if code, out, msg := run("sample", "--hypernet", hn, "--prompt", "all", "--n", "2", "--out", filepath.Join(dir, "g.png")); code != 0 {
		t.Fatalf("sample: exit %d: %s %s", code, out, msg)
	}
	if code, _, msg := run("eval", "--hypernet", hn, "--seeds", "2", "--methods", "base,hypernoise", "--json", "--quiet"); code != 0 {
		t.Fatalf("eval: exit %d: %s", code, msg)
	}
	if code, _, msg := run("export", "--hypernet", hn, "--out", filepath.Join(dir, "hn.onnx")); code == 0 || !strings.Contains(msg, `modulator "gaussian" cannot be exported`) {
		t.Errorf("export of a gaussian hypernetwork: exit %d, %q; want a refusal naming the modulator", code, msg)
	}
	hn2 := filepath.Join(dir, "hn2")
	if code, _, msg := run("train", "--model", "tiny", "--modulator", "gaussian", "--reg", "kl", "--beta", "0.5", "--steps", "2", "--batch", "4", "--quiet", "--out", hn2); code != 0 {
		t.Fatalf("train --reg kl: exit %d: %s", code, msg)
	}
	if hf, err := infer.OpenFolder(hn2); err != nil || hf.Config.Reg != hypernet.RegKL {
		t.Fatalf("train --modulator gaussian --reg kl: %v, %+v", err, hf.Config)
	}
	checkUsageErrors(t, []string{"train", "--out", filepath.Join(dir, "hn3"), "--modulator", "gaussian"}, []usageCase{
		{[]string{"--model", "wide", "--beta", "1"}, "use --modulator mlp"},
		{[]string{"--model", "tiny"}, "--modulator gaussian needs --beta (or --reg-weight)"},
	})
	if err := (infer.ModulatorSpec{Kind: infer.KindGaussian, ShiftScale: 0}).Validate(); err == nil || !strings.Contains(err.Error(), "gaussian shift scale") {
		t.Errorf("gaussian shift scale 0: %v, want a refusal naming it", err)
	}
}
