package infer

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/hypernet"
)

func validConfigJSON(t testing.TB) []byte {
	t.Helper()
	tc := hypernet.DefaultAdamW()
	c := Config{Format: ConfigFormat, Generator: "fashion", BaseHash: strings.Repeat("ab", 32), RewardSpec: "align=1",
		Modulator: ModulatorSpec{Kind: KindLoRA, Rank: 8}, Reg: hypernet.RegMeanSquare, RegWeight: 0.5, Train: tc,
		Result: &TrainSummary{Steps: 10, Seconds: 1, RewardFirst: -1, RewardLast: -0.5}}
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	_ = json.Unmarshal(js, &obj)
	obj["weights_sha256"] = strings.Repeat("0", 64)
	out, _ := json.Marshal(obj)
	return out
}

// TestConfigValidation is issue 12 case 1 (alpha edited to 1e6 gave garbage, exit 0) and case 3
// (values that are not finite or out of range reached the model).
func TestConfigValidation(t *testing.T) {
	good := validConfigJSON(t)
	if _, _, err := ParseConfig(good); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, c := range []struct{ from, to, want string }{
		{`"rank":8`, `"rank":8,"alpha":1e6`, "LoRA alpha"},
		{`"rank":8`, `"rank":100000`, "LoRA rank must be positive and at most"},
		{`"reg_weight":0.5`, `"reg_weight":1e300`, "regularizer weight must be in"},
		{`"reward_spec":"align=1"`, `"reward_spec":"align=1e-320"`, "weight magnitude"},
		{`"lr":0.00002`, `"lr":1e300`, "learning rate"},
		{`"format":1`, `"format":7`, "unsupported format"},
		{`"reg_weight":0.5`, `"reg_weight":0.5,"surprise":1`, "unknown field"},
		{`"steps":10`, `"steps":10000000`, "result"},
	} {
		bad := strings.Replace(string(good), c.from, c.to, 1)
		if bad == string(good) {
			t.Fatalf("test edit %q not applied to %s", c.from, good)
		}
		if _, _, err := ParseConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: err = %v, want one mentioning %q", c.from, c.to, err, c.want)
		}
	}
}

// FuzzParseConfig feeds arbitrary bytes to the hypernet.json parser: it never panics, and a config
// it accepts passes Validate, has finite values within the documented bounds, and survives a
// write-and-read round trip unchanged.
func FuzzParseConfig(f *testing.F) {
	f.Add(validConfigJSON(f))
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"weights_sha256":"` + strings.Repeat("f", 64) + `","format":1,"modulator":{"kind":"mlp","hidden":64,"layers":2}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, sha, err := ParseConfig(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
		if len(sha) != 64 {
			t.Fatalf("accepted weights hash %q", sha)
		}
		js, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		var obj map[string]any
		_ = json.Unmarshal(js, &obj)
		obj["weights_sha256"] = sha
		again, _ := json.Marshal(obj)
		c2, sha2, err := ParseConfig(again)
		if err != nil || sha2 != sha {
			t.Fatalf("round trip refused: %v", err)
		}
		j1, _ := json.Marshal(c)
		j2, _ := json.Marshal(c2)
		if string(j1) != string(j2) {
			t.Fatalf("round trip changed the config:\n%s\n%s", j1, j2)
		}
	})
}
