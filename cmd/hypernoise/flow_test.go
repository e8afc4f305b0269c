package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
)

// TestFlowModulatorRoundTrip: `train --modulator flow` trains on the exact KL (hypernet.json
// records the flow, its couplings, exact-kl and the beta given), and sample and eval load the
// folder and run it.
func TestFlowModulatorRoundTrip(t *testing.T) {
	dir := t.TempDir()
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", "tiny", "--modulator", "flow", "--hidden", "8", "--layers", "1",
		"--couplings", "2", "--beta", "0.5", "--steps", "3", "--batch", "4", "--quiet", "--out", hn); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	hf, err := infer.OpenFolder(hn)
	if err != nil {
		t.Fatal(err)
	}
	c := hf.Config
	if c.Modulator != (infer.ModulatorSpec{Kind: infer.KindFlow, Hidden: 8, Layers: 1, Couplings: 2}) || c.Reg != hypernet.RegExactKL || c.Beta != 0.5 || c.RegWeight != 0 {
		t.Fatalf("hypernet.json: modulator %+v, regularizer %s, beta %g; want the flow, exact-kl, 0.5", c.Modulator, c.Reg, c.Beta)
	}
	if code, out, msg := run("sample", "--hypernet", hn, "--prompt", "all", "--n", "2", "--out", filepath.Join(dir, "g.png")); code != 0 {
		t.Fatalf("sample: exit %d: %s %s", code, out, msg)
	}
	if code, _, msg := run("eval", "--hypernet", hn, "--seeds", "2", "--methods", "base,hypernoise", "--json", "--quiet"); code != 0 {
		t.Fatalf("eval: exit %d: %s", code, msg)
	}
	// Without --beta the flow targets the default objective's tilt, 2*reg-weight/D (D = 16 here).
	hn2 := filepath.Join(dir, "hn2")
	if code, _, msg := run("train", "--model", "tiny", "--modulator", "flow", "--hidden", "8", "--layers", "1",
		"--couplings", "2", "--steps", "2", "--batch", "4", "--quiet", "--out", hn2); code != 0 {
		t.Fatalf("train without --beta: exit %d: %s", code, msg)
	}
	if hf, err := infer.OpenFolder(hn2); err != nil || hf.Config.Beta != 2*0.5/16 || hf.Config.Reg != hypernet.RegExactKL {
		t.Fatalf("train without --beta: %v, %+v; want exact-kl at beta 1/16", err, hf)
	}
}

// TestFlowBadInput: bad flow sizes are one line with exit code 2.
func TestFlowBadInput(t *testing.T) {
	dir := t.TempDir()
	checkUsageErrors(t, []string{"train", "--out", dir, "--modulator", "flow"}, []usageCase{
		{[]string{"--couplings", "0"}, "--couplings must be in [1, 64], got 0"},
		{[]string{"--couplings", "65"}, "--couplings must be in [1, 64], got 65"},
		{[]string{"--layers", "0"}, "--layers must be in [1, 16], got 0"},
	})
	if !strings.Contains(infer.ModulatorSpec{Kind: "nope"}.Validate().Error(), infer.KindFlow) {
		t.Error("the unknown-modulator error does not list flow")
	}
}
