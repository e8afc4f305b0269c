package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
)

// TestBetaAndLogDetBadInput: --beta outside a dial's trained range, --beta on a hypernetwork that
// is not a dial, probes or terms < 1, and a dial with a regularizer that has no beta are each one
// line with exit code 2, before any work starts.
func TestBetaAndLogDetBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, js string) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		// A complete, valid config (js over a base one) with a well-formed weights hash: the folder
		// opens (infer.OpenFolder), and the flag checks run before any weights are read.
		cfg := infer.Config{Format: infer.ConfigFormat, Generator: "fashion", BaseHash: strings.Repeat("cd", 32),
			RewardSpec: "align=1", Train: hypernet.DefaultAdamW()}
		if err := json.Unmarshal([]byte(js), &cfg); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte("{"), []byte(`{"weights_sha256":"`+strings.Repeat("ab", 32)+`",`), 1)
		if err := os.WriteFile(filepath.Join(d, "hypernet.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	dial := write("dial", `{"format":1,"modulator":{"kind":"dial","hidden":8,"layers":1,"beta_range":[0.25,4]},"regularizer":"logdet","beta":1}`)
	plain := write("plain", `{"format":1,"modulator":{"kind":"lora","rank":8},"regularizer":"kl","beta":0.2}`)
	meansq := write("meansq", `{"format":1,"modulator":{"kind":"lora","rank":8},"regularizer":"mean-sq","reg_weight":0.5}`)
	checkUsageErrors(t, nil, []usageCase{
		{[]string{"sample", "--hypernet", dial, "--prompt", "bag", "--beta", "10"}, "outside the range this tilt dial was trained on, [0.25, 4]"},
		{[]string{"eval", "--hypernet", dial, "--beta", "0.1"}, "outside the range this tilt dial was trained on, [0.25, 4]"},
		{[]string{"sample", "--hypernet", plain, "--prompt", "bag", "--beta", "1"}, "trained for beta 0.2 only; --beta needs a tilt dial"},
		{[]string{"eval", "--hypernet", meansq, "--beta", "1"}, "mean-sq regularizer, which has no beta"},
		{[]string{"sample", "--prompt", "bag", "--beta", "1"}, "--beta needs --hypernet"},
		{[]string{"sample", "--hypernet", dial, "--prompt", "bag", "--beta", "-1"}, "--beta must be in [1e-06, 1e+06], got -1"},
		{[]string{"train", "--out", dir, "--reg", "logdet", "--probes", "0"}, "--probes must be in [1, 64], got 0"},
		{[]string{"train", "--out", dir, "--reg", "logdet", "--terms", "0"}, "--terms must be in [1, 32], got 0"},
		{[]string{"train", "--out", dir, "--modulator", "dial"}, "needs a beta-tempered regularizer (--reg kl, exact-kl or logdet), not mean-sq"},
		{[]string{"train", "--out", dir, "--modulator", "dial", "--reg", "kl", "--beta-range", "3,1"}, "beta range must satisfy 1e-06 <= lo < hi <= 1e+06, got [3, 1]"},
		{[]string{"train", "--out", dir, "--modulator", "dial", "--reg", "kl", "--beta-range", "1e-9,1e9"}, "beta range must satisfy 1e-06 <= lo < hi <= 1e+06, got [1e-09, 1e+09]"},
		{[]string{"train", "--out", dir, "--reg", "exact-kl"}, "exact KL regularizer needs noise of 1 or 2 elements"},
		{[]string{"tilt", "--beta", "0,1"}, "--beta must be in [1e-06, 1e+06], got 0"},
		{[]string{"tilt", "--beta", "1e-300"}, "--beta must be in [1e-06, 1e+06], got 1e-300"},
		{[]string{"tilt", "--beta", "0.2,1e300"}, "--beta must be in [1e-06, 1e+06], got 1e+300"},
		{[]string{"tilt", "--beta", "nan"}, "--beta must be a finite number, got NaN"},
		{[]string{"tilt", "--beta", "0.2,x"}, `--beta must be numbers separated by commas, got "0.2,x"`},
		{[]string{"tilt", "--pool", "1"}, "--pool must be in"},
		{[]string{"tilt", "--sampler", "mh"}, `unknown --sampler "mh" (want sir or smc)`},
		{[]string{"tilt", "--sampler", "smc", "--moves", "0"}, "--moves must be in [1, 1000], got 0"},
	})
}
