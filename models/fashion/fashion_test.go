package fashion

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/nn"
)

var (
	testBackendOnce sync.Once
	testBackend     backends.Backend
	testModelOnce   sync.Once
	testModel       *Model
	testModelErr    error
)

func backendForTest(t testing.TB) backends.Backend {
	testBackendOnce.Do(func() { testBackend = testutil.Backend(t) })
	return testBackend
}

// model returns the embedded default (shared by the tests; they do not modify it).
func model(t testing.TB) *Model {
	testModelOnce.Do(func() { testModel, testModelErr = Default() })
	if testModelErr != nil {
		t.Fatal(testModelErr)
	}
	return testModel
}

func needDataset(t *testing.T) *fashionmnist.Set {
	if ok, why := fashionmnist.Installed(fashionmnist.DefaultDir); !ok {
		t.Skipf("Fashion-MNIST not installed (%s); install with: %s", why, fashionmnist.InstallHint)
	}
	s, err := fashionmnist.Load("", fashionmnist.Test)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPromptID(t *testing.T) {
	for name, want := range map[string]int{"ankle boot": 9, "Ankle Boot": 9, "  SNEAKER ": 7, "T-Shirt": 0,
		"t-shirt/top": 0, "bag": 8, "trouser": 1} {
		got, err := PromptID(name)
		if err != nil || got != want {
			t.Errorf("PromptID(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	_, err := PromptID("hat")
	var ue *UnknownPromptError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "ankle boot") || !strings.Contains(err.Error(), "t-shirt") {
		t.Fatalf("unknown prompt error %v should list the prompts", err)
	}
}

func TestEmbeddedModelsLoad(t *testing.T) {
	m := model(t)
	if err := m.Need(Parts...); err != nil {
		t.Fatal(err)
	}
	figs := m.Figures()
	for _, p := range Parts {
		if figs[p] == nil || figs[p].Params <= 0 || len(figs[p].Metrics) == 0 {
			t.Errorf("figures.json lacks %s's figures", p)
		}
	}
	for v := range m.Context().IterVariables() {
		if v.Trainable {
			t.Fatalf("variable %s is trainable in the loaded generator", v.ScopeAndName())
		}
	}
	if got := m.NoiseShape(); len(got) != 3 || got[0]*got[1]*got[2] != LatentDim {
		t.Fatalf("NoiseShape %v", got)
	}
}

// TestBackboneLoRAContract checks what the hypernetwork relies on: the backbone maps eps to a tensor
// of eps's shape, and the same function under nn.WithLoRA(OutputOnly) outputs exactly zero at init.
func TestBackboneLoRAContract(t *testing.T) {
	m := model(t)
	ctx := m.Context()
	eps := Noise(3, 1)
	exec, err := context.NewExec(backendForTest(t), ctx, func(ctx *context.Context, e, c *Node) (*Node, *Node) {
		lctx, err := nn.WithLoRA(ctx, "lora_test", nn.LoRA{Rank: 4, Alpha: 8, OutputOnly: true})
		if err != nil {
			panic(err)
		}
		return m.Backbone(ctx, e, c), m.Backbone(lctx, e, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions(eps, 3, LatentSide, LatentSide, LatentCh),
		tensors.FromFlatDataAndDimensions([]int32{0, 5, 9}, 3))
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Shape().Equal(out[1].Shape()) || out[0].Shape().Size() != 3*LatentDim {
		t.Fatalf("backbone shapes %s, %s", out[0].Shape(), out[1].Shape())
	}
	for _, v := range tensors.MustCopyFlatData[float32](out[1]) {
		if v != 0 {
			t.Fatalf("LoRA OutputOnly backbone is not zero at init: %v", v)
		}
	}
}

func TestSampleReproducible(t *testing.T) {
	m := model(t)
	b := backendForTest(t)
	prompts := []int32{9, 9, 9, 9}
	gen := func(seed uint64) []byte {
		imgs, err := GenerateImages(b, m, Noise(4, seed), prompts, 0)
		if err != nil {
			t.Fatal(err)
		}
		png, err := GridPNG(imgs, 4, 2, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		return png
	}
	a, a2, c := gen(7), gen(7), gen(8)
	if !bytes.Equal(a, a2) {
		t.Fatal("the same seed gave different PNG bytes")
	}
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same PNG")
	}
	if _, err := GenerateImages(b, m, Noise(1, 1), []int32{10}, 0); err == nil {
		t.Fatal("prompt id 10 accepted")
	}
	if _, err := GenerateImages(b, m, Noise(1, 1), []int32{1, 2}, 0); err == nil {
		t.Fatal("noise/prompt count mismatch accepted")
	}
}

// TestStudentAlignment generates 200 one-step samples (20 per prompt) and checks the held-out
// classifier recognises their prompts at the 60% bar, less a sampling tolerance.
func TestStudentAlignment(t *testing.T) {
	m := model(t)
	b := backendForTest(t)
	eps, labels := EvalNoise(200, 99)
	imgs, err := GenerateImages(b, m, eps, labels, 0)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := context.NewExec(b, m.Context(), func(ctx *context.Context, x *Node) *Node {
		l, _ := HeldOut(ctx, x)
		return l
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := forward(exec, 200, 200, func(idx []int) []any {
		return []any{tensors.FromFlatDataAndDimensions(gatherRows(imgs, Side*Side, idx), len(idx), Side, Side, 1)}
	})
	if err != nil {
		t.Fatal(err)
	}
	acc := argmaxAccuracy(outs[0], labels)
	t.Logf("held-out alignment of 200 student samples: %.1f%%", 100*acc)
	if acc < 0.53 {
		t.Fatalf("student alignment %.3f below the 0.60 bar (tolerance 0.07)", acc)
	}
}

// TestClassifiersAccuracy checks both classifiers on 2000 test images against the 90% bar, less a
// sampling tolerance.
func TestClassifiersAccuracy(t *testing.T) {
	test := needDataset(t)
	m := model(t)
	b := backendForTest(t)
	sub := &fashionmnist.Set{N: 2000, Images: test.Images[:2000*Side*Side], Labels: test.Labels[:2000]}
	for name, fn := range map[string]func(ctx *context.Context, x *Node) *Node{
		"classifier": ClassifierLogits,
		"heldout":    func(ctx *context.Context, x *Node) *Node { l, _ := HeldOut(ctx, x); return l },
	} {
		exec, err := context.NewExec(b, m.Context(), fn)
		if err != nil {
			t.Fatal(err)
		}
		acc, err := accuracy(exec, sub)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s accuracy on 2000 test images: %.2f%%", name, 100*acc)
		if acc < 0.885 {
			t.Errorf("%s accuracy %.3f below the 0.90 bar (tolerance 0.015)", name, acc)
		}
	}
}

// TestDiscriminatorSeparates checks the realism critic scores real test images above student samples.
func TestDiscriminatorSeparates(t *testing.T) {
	test := needDataset(t)
	m := model(t)
	b := backendForTest(t)
	eps, labels := EvalNoise(200, 5)
	fakes, err := GenerateImages(b, m, eps, labels, 0)
	if err != nil {
		t.Fatal(err)
	}
	exec, err := context.NewExec(b, m.Context(), DiscriminatorLogits)
	if err != nil {
		t.Fatal(err)
	}
	real, err := exec.Exec(tensors.FromFlatDataAndDimensions(test.Images[:200*Side*Side], 200, Side, Side, 1))
	if err != nil {
		t.Fatal(err)
	}
	fake, err := exec.Exec(tensors.FromFlatDataAndDimensions(fakes, 200, Side, Side, 1))
	if err != nil {
		t.Fatal(err)
	}
	mr, mf := meanF(tensors.MustCopyFlatData[float32](real[0])), meanF(tensors.MustCopyFlatData[float32](fake[0]))
	t.Logf("mean discriminator logit: real %.3f, student %.3f", mr, mf)
	if mr <= mf {
		t.Fatalf("discriminator does not prefer real images: %.3f <= %.3f", mr, mf)
	}
}

func meanF(x []float32) float64 {
	s := 0.0
	for _, v := range x {
		s += float64(v)
	}
	return s / float64(len(x))
}

func TestTeacherSamples(t *testing.T) {
	m := model(t)
	imgs, err := GenerateImages(backendForTest(t), m, Noise(2, 3), []int32{1, 7}, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range imgs {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("teacher pixel %v outside [0,1]", v)
		}
	}
}

func TestFrechetDistance(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n, dim := 4000, 3
	a, b := make([]float32, n*dim), make([]float32, n*dim)
	for i := range a {
		a[i] = float32(r.NormFloat64())
		b[i] = float32(r.NormFloat64()*2 + 1) // N(1, 4 I)
	}
	same, err := FrechetDistance(a, n, a, n, dim)
	if err != nil || math.Abs(same) > 1e-6 {
		t.Fatalf("FD(a, a) = %v, %v; want 0", same, err)
	}
	// Exact: |mu|^2 + tr(I + 4I - 2*2I) = 3 + 3 = 6 per the Gaussians; sampled, within 5%.
	fd, err := FrechetDistance(a, n, b, n, dim)
	if err != nil || math.Abs(fd-6) > 0.3 {
		t.Fatalf("FD = %v, %v; want about 6", fd, err)
	}
	if _, err := FrechetDistance(a[:3], 1, b, n, dim); err == nil {
		t.Fatal("one-row set accepted")
	}
}

func TestGridPNG(t *testing.T) {
	if _, err := GridPNG(make([]float32, 10), 1, 1, 1, 0); err == nil {
		t.Fatal("wrong-size images accepted")
	}
	png, err := GridPNG(make([]float32, 3*Side*Side), 3, 2, 2, 1)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("GridPNG: %v", err)
	}
}

// BenchmarkStudentSample measures one one-step sample: generator forward (student + decoder), batch 1.
func BenchmarkStudentSample(b *testing.B) {
	m := model(b)
	exec, err := context.NewExec(backendForTest(b), m.Context(), m.Generate)
	if err != nil {
		b.Fatal(err)
	}
	eps := tensors.FromFlatDataAndDimensions(Noise(1, 1), 1, LatentSide, LatentSide, LatentCh)
	c := tensors.FromFlatDataAndDimensions([]int32{9}, 1)
	if _, err := exec.Exec(eps, c); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		out, err := exec.Exec(eps, c)
		if err != nil {
			b.Fatal(err)
		}
		out[0].FinalizeAll()
	}
}
