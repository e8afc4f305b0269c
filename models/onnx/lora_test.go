package onnx

import (
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// loadT2I loads a tiny T2I spec after edit changes its JSON map.
func loadT2I(t *testing.T, edit func(s map[string]any)) *Model {
	t.Helper()
	s := t2iSpec(t, "t2i_bmm.json")
	if edit != nil {
		edit(s)
	}
	m, err := Load(writeT2ISpec(t, s, nil), testutil.Backend(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestT2ILoRAPlacement: on the T2I UNet the adapters go on the attention projections, the
// feed-forward and projection MatMuls, the time-embedding Gemms and the convolutions (not on the
// attention's activation products); lora_layers narrows them; a filter matching nothing or not a
// regular expression is a spec error.
func TestT2ILoRAPlacement(t *testing.T) {
	m := loadT2I(t, nil)
	all := m.gen.AdaptableLayers()
	has := func(names []string, sub string) bool {
		for _, n := range names {
			if strings.Contains(n, sub) {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"attn1/to_q/MatMul", "attn1/to_k/MatMul", "attn1/to_v/MatMul", "attn1/to_out/MatMul",
		"attn2/to_k/MatMul", "ff/ff.0/MatMul", "ff/ff.2/MatMul", "time.0/Gemm", "conv_in/Conv", "conv_out/Conv"} {
		if !has(all, want) {
			t.Errorf("no adapter on %s (adapted: %v)", want, all)
		}
	}
	for _, n := range all {
		if strings.HasSuffix(n, "attn1/MatMul") || strings.HasSuffix(n, "attn1/MatMul_1") {
			t.Errorf("adapter on an activation product %s", n)
		}
	}
	if _, err := m.gen.SetLoRALayers("/attn[12]/to_"); err != nil {
		t.Fatal(err)
	}
	some := m.gen.AdaptableLayers()
	if len(some) != 8 {
		t.Errorf("filter /attn[12]/to_ gives %d layers, want the 8 projections: %v", len(some), some)
	}
	for _, n := range some {
		if !strings.Contains(n, "/to_") {
			t.Errorf("filter let %s through", n)
		}
	}
	for _, bad := range []string{"(", "no-such-layer"} {
		s := t2iSpec(t, "t2i_bmm.json")
		gen(s)["lora_layers"] = bad
		_, err := Load(writeT2ISpec(t, s, nil), testutil.Backend(t))
		var se *SpecError
		if err == nil || !asSpecError(err, &se) || se.Field != "generator.lora_layers" || strings.Contains(err.Error(), "\n") {
			t.Errorf("lora_layers %q: %v, want a one-line spec error on generator.lora_layers", bad, err)
		} else {
			t.Logf("lora_layers %q: %v", bad, err)
		}
	}
}

func asSpecError(err error, se **SpecError) bool {
	e, ok := err.(*SpecError)
	*se = e
	return ok
}

// TestT2IResidualBackbone: the LoRA hypernetwork on both backbone shapes of the T2I generator,
// the UNet's own output eps_hat (a Conv) and the scheduler's x0 = (x_T - s eps_hat) / c (a residual
// sum of the noise and a scaled layer output). f = 0 exactly at initialization for both; with the
// same non-zero adapters f(x0) = -(s/c) f(eps_hat) element by element: the trace through the
// residual drops the noise and keeps the scaling, so f is the output conv's LoRA branch carried to
// x0's scale. With a layer filter that excludes the output conv, it keeps its adapter.
func TestT2IResidualBackbone(t *testing.T) {
	m := loadT2I(t, func(s map[string]any) { gen(s)["lora_layers"] = "attn" })
	be := testutil.Backend(t)
	noise := make([]float32, 2*4*8*8)
	for i := range noise {
		noise[i] = float32(math.Sin(float64(i) * 0.7))
	}
	mod := func(backbone string) hypernoise.Modulator {
		m.Spec.Generator.BackboneOutput = backbone
		if err := m.CheckLoRA(); err != nil {
			t.Fatalf("%s: %v", backbone, err)
		}
		l, err := hypernet.NewLoRA(m.Generator().(hypernoise.Backbone), 2, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	run := func(backbone string) []float32 {
		md := mod(backbone)
		out := execIn(t, be, m.Context(), func(ctx *context.Context, eps, p *Node) []*Node {
			return []*Node{md.Residual(ctx, eps, p)}
		}, tensors.FromFlatDataAndDimensions(noise, 2, 4, 8, 8), []int32{0, 2})
		return tensors.MustCopyFlatData[float32](out[0])
	}
	for _, bb := range []string{"eps", "latent"} {
		for _, v := range run(bb) {
			if v != 0 {
				t.Fatalf("backbone %s: f is %g at initialization, want 0", bb, v)
			}
		}
	}
	set := 0
	for v := range m.Context().IterVariables() {
		if v.Name() == "lora_b" {
			val, _ := v.Value()
			x := make([]float32, val.Shape().Size())
			for i := range x {
				x[i] = 0.01 * float32(math.Cos(float64(i)))
			}
			v.MustSetValue(tensors.FromFlatDataAndDimensions(x, val.Shape().Dimensions...))
			set++
		}
	}
	if set == 0 {
		t.Fatal("no LoRA factors were created")
	}
	fe, fl := run("eps"), run("latent")
	abar := 1.0
	for i := range 1000 {
		b := math.Sqrt(0.00085) + (math.Sqrt(0.012)-math.Sqrt(0.00085))*float64(i)/999
		abar *= 1 - b*b
	}
	ratio := -math.Sqrt(1-abar) / math.Sqrt(abar)
	nonZero := 0
	for i := range fe {
		if fe[i] != 0 {
			nonZero++
		}
		if d := math.Abs(float64(fl[i]) - ratio*float64(fe[i])); d > 1e-4*math.Abs(ratio*float64(fe[i]))+1e-6 {
			t.Fatalf("element %d: f(x0) = %g, want -(s/c) f(eps_hat) = %g (ratio %.4f)", i, fl[i], ratio*float64(fe[i]), ratio)
		}
	}
	if nonZero == 0 {
		t.Fatal("f stays zero with non-zero adapters (the output conv lost its adapter to the filter?)")
	}
	t.Logf("f(x0) = %.4f f(eps_hat) on %d elements", ratio, len(fe))
}
