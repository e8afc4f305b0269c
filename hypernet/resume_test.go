package hypernet

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// smallRun trains the linear problem for steps with a checkpoint folder.
func smallRun(t *testing.T, dir string, steps int, mod func(*TrainConfig)) (*context.Context, *TrainResult, error) {
	t.Helper()
	cfg := plainSGD(steps, 0.1)
	cfg.CheckpointDir, cfg.CheckpointEvery = dir, 2
	cfg.Defines = map[string]string{"reward_spec": "align=1", "modulator": "lora rank 8"}
	if mod != nil {
		mod(&cfg)
	}
	ctx := context.New()
	res, err := Train(testutil.Backend(t), ctx, linearProblem(1, []float32{1, 1}, []float32{0, 0}, nil), cfg, nil)
	return ctx, res, err
}

// TestResumeRefusesOtherDefinition is issue 12 case 2: resuming with another reward, regularizer
// or modulator was accepted and labelled the model with the new config.
func TestResumeRefusesOtherDefinition(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := smallRun(t, dir, 4, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := smallRun(t, dir, 8, func(c *TrainConfig) {
		c.Resume = true
		c.Defines = map[string]string{"reward_spec": "brightness=1", "modulator": "lora rank 8"}
	})
	if err == nil || !strings.Contains(err.Error(), "reward_spec: align=1 -> brightness=1") {
		t.Fatalf("resume with another reward: err = %v", err)
	}
	_, _, err = smallRun(t, dir, 8, func(c *TrainConfig) { c.Resume = true; c.Seed = 5 })
	if err == nil || !strings.Contains(err.Error(), "seed") {
		t.Fatalf("resume with another seed: err = %v", err)
	}
	if _, res, err := smallRun(t, dir, 8, func(c *TrainConfig) { c.Resume = true }); err != nil || res.StartStep != 4 || len(res.Loss) != 8 {
		t.Fatalf("resume with the same definition: %v", err)
	}
}

// TestResumeWithoutCheckpoint is issue 12 case 2: --resume with the checkpoint missing silently
// started from step 0.
func TestResumeWithoutCheckpoint(t *testing.T) {
	_, _, err := smallRun(t, t.TempDir(), 4, func(c *TrainConfig) { c.Resume = true })
	if err == nil || !strings.Contains(err.Error(), "holds no checkpoint") {
		t.Fatalf("err = %v", err)
	}
}

// TestNoSilentOverwrite is issue 12 case 2: a fresh run into a folder with a checkpoint silently
// discarded it. It is refused unless forced.
func TestNoSilentOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := smallRun(t, dir, 4, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, CheckpointWeights))
	if _, _, err := smallRun(t, dir, 4, nil); err == nil || !strings.Contains(err.Error(), "already holds a training checkpoint") {
		t.Fatalf("fresh run over a checkpoint: err = %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CheckpointWeights))
	if string(before) != string(after) {
		t.Fatal("refused run changed the checkpoint")
	}
	if _, res, err := smallRun(t, dir, 4, func(c *TrainConfig) { c.Force = true; c.LR = 0.05 }); err != nil || res.StartStep != 0 {
		t.Fatalf("forced fresh start: %v", err)
	}
}

// TestNonFiniteStops is issue 12 case 3: with a loss that stays non-finite, training ran to the
// end and a later resume wrote all-NaN weights. Now it stops with a clear error, and the
// checkpoint on disk holds the last finite weights.
func TestNonFiniteStops(t *testing.T) {
	dir := t.TempDir()
	cfg := plainSGD(200, 0.1)
	cfg.CheckpointDir, cfg.CheckpointEvery, cfg.MaxNonFinite = dir, 2, 10
	// The loss becomes NaN once w0 < -0.5 (after a few steps of descent on w·c).
	p := linearProblem(1, []float32{1, 1}, []float32{0, 0}, nil)
	inner := p.Loss
	p.Loss = func(ctx *context.Context, eps, prompts *Node) (*Node, []Metric) {
		l, m := inner(ctx, eps, prompts)
		w := ctx.InAbsPath("/lin").Checked(false).VariableWithValue("w", []float32{0, 0}).ValueGraph(eps.Graph())
		bad := LessThan(Slice(w, AxisElem(0)), Const(eps.Graph(), []float32{-0.5}))
		nan := Const(eps.Graph(), float32(math.NaN()))
		l = Where(BroadcastToDims(Reshape(bad), l.Shape().Dimensions...), BroadcastToDims(nan, l.Shape().Dimensions...), l)
		return l, m
	}
	ctx := context.New()
	res, err := Train(testutil.Backend(t), ctx, p, cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "not finite for 10 consecutive steps") {
		t.Fatalf("err = %v, want a stop after 10 non-finite steps", err)
	}
	if res == nil || res.Steps >= 200 {
		t.Fatalf("training did not stop early: %+v", res)
	}
	for _, x := range wOf(ctx) {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("weights became non-finite: %v", wOf(ctx))
		}
	}
	// Resuming from what is on disk loads finite weights and stops the same way.
	cfg.Resume = true
	ctx2 := context.New()
	if _, err := Train(testutil.Backend(t), ctx2, p, cfg, nil); err == nil || !strings.Contains(err.Error(), "not finite") {
		t.Fatalf("resume: err = %v", err)
	}
}
