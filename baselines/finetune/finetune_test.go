package finetune

import (
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

func snapshot(ctx *context.Context, prefix string, under bool) map[string][]float32 {
	out := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if v.DType().IsFloat() && strings.HasPrefix(v.Scope(), prefix) == under {
			out[v.ScopeAndName()] = tensors.MustCopyFlatData[float32](v.MustValue())
		}
	}
	return out
}

// TestFinetune: at initialization the fine-tuned generator equals the base; training raises the
// reward, touches only the adapters under /finetune, and leaves the base weights as they were.
func TestFinetune(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(3)
	gen := testgen.MLP{}
	ft, err := New(gen, 4, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 256
	eps := hypernet.NoiseTensor(5, 1, n, []int{2})
	prompts := tensors.FromFlatDataAndDimensions(make([]int32, n), n)
	sample := func(g interface{ Name() string }) []float32 {
		s, err := hypernet.NewSampler(b, ctx, ft.Base, nil)
		if g != nil {
			s, err = hypernet.NewSampler(b, ctx, ft, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		x, _, cost, err := s.Sample(eps, prompts)
		if err != nil {
			t.Fatal(err)
		}
		if cost.Forward != 1 {
			t.Errorf("fine-tune sampling cost %+v, want 1 forward pass", cost)
		}
		return tensors.MustCopyFlatData[float32](x)
	}
	base := sample(nil)
	if !slices.Equal(sample(ft), base) {
		t.Fatal("fine-tuned generator differs from the base at initialization")
	}
	frozen := snapshot(ctx, "/finetune", false)
	p, err := ft.Problem(testgen.Linear(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := hypernet.DefaultAdamW()
	cfg.Steps, cfg.BatchSize, cfg.LR, cfg.WarmupSteps = 60, 64, 1e-2, 5
	if _, err := hypernet.Train(b, ctx, p, cfg, nil); err != nil {
		t.Fatal(err)
	}
	after := sample(ft)
	meanX0 := func(x []float32) float64 {
		s := 0.0
		for i := 0; i < len(x); i += 2 {
			s += float64(x[i])
		}
		return s / float64(len(x)/2)
	}
	if meanX0(after) < meanX0(base)+0.5 {
		t.Errorf("mean reward %.3f after fine-tuning, %.3f before: expected a clear increase", meanX0(after), meanX0(base))
	}
	for name, v := range snapshot(ctx, "/finetune", false) {
		if old, ok := frozen[name]; ok && !slices.Equal(old, v) && !strings.Contains(name, "#") {
			t.Errorf("base variable %s changed", name)
		}
	}
	if len(snapshot(ctx, "/finetune/", true)) == 0 {
		t.Error("no adapters under /finetune")
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(testgen.MLP{}, 0, 0, ""); err == nil || !strings.Contains(err.Error(), "rank must be positive") {
		t.Errorf("rank 0: %v", err)
	}
	if _, err := New(nil, 4, 0, ""); err == nil {
		t.Error("nil generator accepted")
	}
	ft, _ := New(testgen.MLP{}, 4, 0, "")
	if _, err := ft.Problem(nil); err == nil {
		t.Error("nil reward accepted")
	}
}
