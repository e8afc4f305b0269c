package onnx_test

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/internal/testutil"
	_ "github.com/hypernoise/hypernoise/methods"
	"github.com/hypernoise/hypernoise/models/onnx"
	"github.com/hypernoise/hypernoise/pipeline"
)

// TestT2IEveryMethod runs every method end to end on the tiny text-to-image fixture of make_t2i.py
// (the spec whose generator and CLIP-like reward read their text embeddings from safetensors files):
// a HyperNoise training of a few steps on the CLIP-like reward, then the evaluation of base,
// best-of-N, ReNO, fine-tune, HyperNoise and HyperNoise + ReNO on held-out noises. HyperNoise must
// raise the CLIP-like reward over the base's, every reward must be finite, and ReNO after the
// hypernetwork must change its images (not return the hypernetwork's).
func TestT2IEveryMethod(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	be := testutil.Backend(t)
	m, err := onnx.Load("testdata/t2i_emb.json", be)
	if err != nil {
		t.Fatal(err)
	}
	im := onnx.ModelOf(m)
	dir := t.TempDir()
	opts := pipeline.DefaultTrainOptions()
	opts.RewardSpec = "clip=1"
	opts.OutDir = filepath.Join(dir, "hn")
	opts.Modulator.Rank = 4
	opts.Train.Steps, opts.Train.BatchSize, opts.Train.WarmupSteps, opts.Train.LR = 8, 4, 1, 1e-2
	opts.Train.CheckpointEvery = 0
	hn, res, err := pipeline.Train(be, im, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trained %d steps (%d skipped) in %.1f s", res.Steps, res.Skipped, res.Seconds)
	folder, err := infer.OpenFolder(opts.OutDir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.NewPipeline(be, im, folder)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	eo := pipeline.EvalOptions{SeedsPerPrompt: 2, Seed: 7, RenoSteps: 2, WarmRenoSteps: 2, SmallN: 2,
		FinetuneSteps: 2, FinetuneRank: 2, Batch: 6}
	rep, err := pipeline.Evaluate(p, hn, filepath.Join(dir, "eval"), eo, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"base", "best-of-2", "best-of-4", "reno", "finetune", "hypernoise", "hypernoise-reno"} {
		r, ok := rep.Methods[name]
		if !ok {
			t.Fatalf("no %q row in the evaluation (rows %v)", name, rep.Order)
		}
		if math.IsNaN(r.Reward) || math.IsInf(r.Reward, 0) || r.NFEPerImage <= 0 {
			t.Errorf("%s: reward %g, %g network evaluations per image", name, r.Reward, r.NFEPerImage)
		}
		t.Logf("%-16s clip reward %8.3f  diversity %.4f  NFE %.0f", name, r.Reward, r.Diversity, r.NFEPerImage)
	}
	base, hyper, warm := rep.Methods["base"], rep.Methods["hypernoise"], rep.Methods["hypernoise-reno"]
	if !(hyper.Reward > base.Reward) {
		t.Errorf("HyperNoise did not raise the CLIP-like reward on held-out noises: base %.3f, hypernoise %.3f", base.Reward, hyper.Reward)
	}
	if warm.Reward == hyper.Reward && warm.Diversity == hyper.Diversity {
		t.Errorf("hypernoise-reno gives exactly hypernoise's reward and diversity (%.6f, %.6f): ReNO did nothing", warm.Reward, warm.Diversity)
	}
	if !slices.Contains(rep.Order, "finetune") {
		t.Errorf("rows %v", rep.Order)
	}
}
