package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/onnx"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/rewards"
	"github.com/hypernoise/hypernoise/rewards/imagerewards"
	"github.com/hypernoise/hypernoise/serve"
)

// tinyGen is a Go-native test generator: 4x4 grey images x = sigmoid(eps/2 + b_c), b a learned
// bias per prompt ("dark", "light"), noise [4, 4, 1].
type tinyGen struct{}

func (tinyGen) Name() string      { return "tiny" }
func (tinyGen) NoiseShape() []int { return []int{4, 4, 1} }
func (tinyGen) Prompts() []string { return []string{"dark", "light"} }
func (tinyGen) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	b := ctx.InAbsPath(context.ScopeSeparator+"tiny").Checked(false).VariableWithValue("bias", []float32{-1, 1}).ValueGraph(eps.Graph())
	bc := Reshape(Gather(b, ExpandAxes(prompts, -1)), -1, 1, 1, 1)
	return Sigmoid(Add(MulScalar(eps, 0.5), ConvertDType(bc, eps.DType())))
}

// tinyFamily is the whole family: a package would export this value and add one line to
// models/models.go; here a test registers it.
var tinyFamily = family.Family{Name: "tiny", Summary: "a 4x4 test generator",
	Load: func(_ string, _ backends.Backend) (*family.Model, error) {
		ctx := context.New()
		ctx.In("tiny").VariableWithValue("bias", []float32{-1, 1}).SetTrainable(false)
		reg := rewards.NewRegistry()
		if err := imagerewards.Pixel(reg); err != nil {
			return nil, err
		}
		// flat scores every image 0: a reward with zero spread under the base model.
		if err := reg.Register("flat", "0 for every image", func() (hypernoise.Reward, error) {
			return rewards.Func{RewardName: "flat", Fn: func(_ *context.Context, x, _ *Node) *Node {
				return ReduceSum(MulScalar(x, 0), 1, 2, 3)
			}}, nil
		}); err != nil {
			return nil, err
		}
		return &family.Model{Generator: tinyGen{}, Context: ctx, Rewards: reg, DefaultReward: "brightness=1",
			Hash: family.HashScopes(ctx, "tiny"),
			Grid: func(x []float32, n, cols, scale, pad int) ([]byte, error) {
				return onnx.GridPNG(x, n, 4, 4, 1, cols, scale, pad)
			}}, nil
	}}

func init() { family.Register(tinyFamily) }

// TestNewFamilyThroughEveryCommand: a family registered with one call runs through train (an MLP
// hypernetwork; hypernet.json records the family), sample, eval and serve (each finding the model
// from the hypernetwork folder alone), tilt and bench.
func TestNewFamilyThroughEveryCommand(t *testing.T) {
	dir := t.TempDir()
	hn := filepath.Join(dir, "hn")
	if code, _, msg := run("train", "--model", "tiny", "--modulator", "mlp", "--hidden", "8", "--layers", "1",
		"--steps", "3", "--batch", "4", "--quiet", "--out", hn); code != 0 {
		t.Fatalf("train: exit %d: %s", code, msg)
	}
	hf, err := infer.OpenFolder(hn)
	if err != nil || hf.Config.Model != "tiny" || hf.Config.RewardSpec != "brightness=1" {
		t.Fatalf("hypernet.json: %+v, %v; want model tiny, the family's default reward", hf, err)
	}
	grid := filepath.Join(dir, "g.png")
	if code, out, msg := run("sample", "--hypernet", hn, "--prompt", "all", "--n", "2", "--out", grid); code != 0 || !strings.Contains(out, "tiny") {
		t.Fatalf("sample: exit %d: %s %s", code, out, msg)
	}
	if data, err := os.ReadFile(grid); err != nil || !strings.HasPrefix(string(data), "\x89PNG") {
		t.Fatalf("sample wrote no PNG: %v", err)
	}
	code, out, msg := run("eval", "--hypernet", hn, "--seeds", "2", "--methods", "base,hypernoise", "--json", "--quiet")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, msg)
	}
	var rep pipeline.EvalReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Generator != "tiny" || len(rep.Methods) != 2 {
		t.Fatalf("eval JSON: %v: %s", err, out)
	}
	if r := rep.Methods["base"]; r.HeldoutAlignment.Valid() || !(r.Reward > 0 && r.Reward < 1) {
		t.Errorf("eval base row: held-out %v (want null: the family has no evaluator), reward %g (a brightness)", r.HeldoutAlignment, r.Reward)
	}
	if code, out, msg := run("tilt", "--model", "tiny", "--pool", "4", "--seeds", "2", "--beta", "1", "--json", "--quiet"); code != 0 || !strings.Contains(out, "brightness=1") {
		t.Fatalf("tilt: exit %d: %s %s", code, out, msg)
	}
	// As a table: the figures the family cannot give (no held-out classifier) are dashes, not NaN.
	if code, out, msg := run("tilt", "--model", "tiny", "--pool", "4", "--seeds", "2", "--beta", "1", "--quiet"); code != 0 ||
		strings.Contains(out, "NaN") || !strings.Contains(out, "        -") {
		t.Fatalf("tilt table: exit %d: %s %s; want dashes for held-out alignment and FD", code, out, msg)
	}
	// The SMC reference: its particles are the tilt's samples, so the ESS is the particle count.
	code, out, msg = run("tilt", "--model", "tiny", "--sampler", "smc", "--pool", "8", "--moves", "2", "--seeds", "2", "--beta", "0.05", "--json", "--quiet")
	var tr struct {
		Sampler string `json:"sampler"`
		Rows    []struct {
			Beta   float64 `json:"beta"`
			ESSMin float64 `json:"ess_min"`
			Reward float64 `json:"reward"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &tr); code != 0 || err != nil || tr.Sampler != "smc" || len(tr.Rows) != 2 || tr.Rows[1].ESSMin != 8 || !(tr.Rows[1].Reward > tr.Rows[0].Reward) {
		t.Fatalf("tilt --sampler smc: exit %d, %v: %+v %s", code, err, tr, msg)
	}
	serveTiny(t, hn)
	if code, out, msg := run("bench", "--model", "tiny", "--no-torch", "--steps", "1", "--json"); code != 0 || !strings.Contains(out, "hypernet_step_ms") {
		t.Fatalf("bench: exit %d: %s %s", code, out, msg)
	}
}

// serveTiny builds the server the way `hypernoise serve --hypernet DIR` does (the model from the
// folder) and generates with the hypernetwork.
func serveTiny(t *testing.T, hn string) {
	t.Helper()
	_, srv := testServer(t, "", hn)
	rec := httptest.NewRecorder()
	body := `{"prompt": "light", "method": "hypernoise", "n": 2, "seed": 3}`
	srv.Handler().ServeHTTP(rec, localRequest("POST", "/v1/generate", strings.NewReader(body)))
	var resp serve.GenerateResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || rec.Code != 200 || len(resp.Images) != 2 {
		t.Fatalf("serve: status %d, %v: %s", rec.Code, err, rec.Body.String())
	}
}
