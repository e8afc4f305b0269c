package hypernoise_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	_ "github.com/hypernoise/hypernoise/methods"
)

// TestPromptNoise: prompt p's n noises are noises p*n .. p*n+n-1 of the seed, the layout of an
// evaluation with n seeds per prompt; seeds differ; the stream is N(0, 1) to first order.
func TestPromptNoise(t *testing.T) {
	shape := []int{7, 7, 4}
	all := tensors.MustCopyFlatData[float32](hypernoise.Noise(5, 30, shape))
	d := 7 * 7 * 4
	for p := range 3 {
		got := hypernoise.PromptNoise(5, p, 10, shape)
		if !slices.Equal(got, all[p*10*d:(p+1)*10*d]) {
			t.Errorf("prompt %d: PromptNoise differs from its slice of Noise", p)
		}
	}
	if slices.Equal(hypernoise.NoiseFlat(5, 2, shape), hypernoise.NoiseFlat(6, 2, shape)) {
		t.Error("seeds 5 and 6 give the same noise")
	}
	var m, v float64
	for _, x := range all {
		m += float64(x) / float64(len(all))
	}
	for _, x := range all {
		v += (float64(x) - m) * (float64(x) - m) / float64(len(all))
	}
	if m*m > 0.01*0.01*25 || v < 0.95 || v > 1.05 { // 5880 draws: sd of the mean 0.013
		t.Errorf("noise mean %g, variance %g", m, v)
	}
}

func TestRegistry(t *testing.T) {
	names := hypernoise.MethodNames()
	if !slices.Equal(names[:6], []string{"base", "best-of-n", "reno", "finetune", "hypernoise", "hypernoise-reno"}) {
		t.Errorf("registered methods %v", names)
	}
	if _, err := hypernoise.LookupMethod("magic"); err == nil || !strings.Contains(err.Error(), `unknown method "magic"; methods: base, best-of-n`) {
		t.Errorf("unknown method: %v", err)
	}
	info, _ := hypernoise.LookupMethod("hypernoise-reno")
	for _, c := range []struct {
		env  hypernoise.MethodEnv
		want string
	}{
		{hypernoise.MethodEnv{}, "needs a backend, a context and a generator"},
	} {
		if err := info.CheckEnv(c.env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckEnv: %v, want %q", err, c.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	hypernoise.RegisterMethod(info)
}

// TestSettleLayersKnobs: a method's knobs come from its registry defaults, overridden by the
// model's, overridden by the request's; knobs it does not need are zero; values outside
// [1, Max] are refused with the method's name and range.
func TestSettleLayersKnobs(t *testing.T) {
	info := hypernoise.MethodInfo{Name: "m", Needs: hypernoise.NeedsN,
		Defaults: hypernoise.Knobs{N: 16}, Max: hypernoise.Knobs{N: 100}}
	for _, c := range []struct {
		model, req hypernoise.Knobs
		want       int
	}{
		{hypernoise.Knobs{}, hypernoise.Knobs{}, 16},
		{hypernoise.Knobs{N: 8}, hypernoise.Knobs{}, 8},
		{hypernoise.Knobs{N: 8}, hypernoise.Knobs{N: 3}, 3},
		{hypernoise.Knobs{}, hypernoise.Knobs{N: 5, Steps: 7}, 5},
	} {
		k, err := info.Settle(c.model, c.req)
		if err != nil || k.N != c.want || k.Steps != 0 {
			t.Errorf("Settle(%+v, %+v) = %+v, %v; want N %d, Steps 0", c.model, c.req, k, err, c.want)
		}
	}
	for _, req := range []hypernoise.Knobs{{N: -1}, {N: 101}} {
		if _, err := info.Settle(hypernoise.Knobs{}, req); err == nil || !strings.Contains(err.Error(), "m needs N in [1, 100]") {
			t.Errorf("Settle(%+v): err = %v", req, err)
		}
	}
	// Every registered method with a knob has a default inside its limits.
	for _, name := range hypernoise.MethodNames() {
		info, _ := hypernoise.LookupMethod(name)
		if _, err := info.Settle(hypernoise.Knobs{}, hypernoise.Knobs{}); err != nil {
			t.Errorf("%s: its defaults are refused: %v", name, err)
		}
	}
}
