package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/serve"
)

// TestSampleModelNoiseMatchesServe: `sample --model SPEC --prompt all --n N --seed S` draws image k
// of prompt p from noise p*N+k, so its grid row p is exactly what the server returns for prompt p,
// n N and seed S (up to the last bit of the 8-bit PNG rounding). Before the model seam, sample
// --model gave every prompt the noises 0..N-1, and row p > 0 differed from the server's images.
func TestSampleModelNoiseMatchesServe(t *testing.T) {
	spec := filepath.Join(fixtureDir, "spec.json")
	const n, seed = 2, 5
	gridPath := filepath.Join(t.TempDir(), "g.png")
	if code, _, msg := run("sample", "--model", spec, "--prompt", "all", "--n", fmt.Sprint(n), "--seed", fmt.Sprint(seed),
		"--scale", "1", "--out", gridPath); code != 0 {
		t.Fatalf("sample: exit %d: %s", code, msg)
	}
	data, err := os.ReadFile(gridPath)
	if err != nil {
		t.Fatal(err)
	}
	grid, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	m, srv := testServer(t, spec)
	const pad = 2
	for pi, prompt := range m.Generator.Prompts() {
		body := fmt.Sprintf(`{"prompt": %q, "method": "base", "n": %d, "seed": %d}`, prompt, n, seed)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, localRequest("POST", "/v1/generate", strings.NewReader(body)))
		var resp serve.GenerateResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Images) != n {
			t.Fatalf("serve %s: status %d, %v: %s", prompt, rec.Code, err, rec.Body.String())
		}
		for k, b64 := range resp.Images {
			raw, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			w, h := img.Bounds().Dx(), img.Bounds().Dy()
			x0, y0 := pad+k*(w+pad), pad+pi*(h+pad)
			if d := maxLevelDiff(img, grid, x0, y0); d > 1 {
				t.Errorf("prompt %s image %d: sample's grid and the server differ by %d levels", prompt, k, d)
			}
		}
	}
}

// maxLevelDiff is the largest difference of an 8-bit channel between img and the cell of grid
// whose top-left corner is (x0, y0).
func maxLevelDiff(img, grid image.Image, x0, y0 int) int {
	worst := 0
	b := img.Bounds()
	for y := range b.Dy() {
		for x := range b.Dx() {
			a := color.RGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.RGBA)
			g := color.RGBAModel.Convert(grid.At(x0+x, y0+y)).(color.RGBA)
			for _, d := range []int{int(a.R) - int(g.R), int(a.G) - int(g.G), int(a.B) - int(g.B)} {
				worst = max(worst, d, -d)
			}
		}
	}
	return worst
}

// TestRewardIsTheModels: every command that takes --reward checks it against the model's own
// rewards (here the fixture spec's "score"), not the embedded model's; and a reward the model
// lacks is a usage error naming the model's. Before the model seam, sample --model SPEC --reward
// score=1 answered `unknown reward "score" ... available rewards: align, brightness, ...`.
func TestRewardIsTheModels(t *testing.T) {
	spec := filepath.Join(fixtureDir, "spec.json")
	dir := t.TempDir()
	for _, args := range [][]string{
		{"sample", "--model", spec, "--prompt", "circle", "--n", "1", "--method", "reno", "--reno-steps", "1",
			"--reward", "score=1", "--out", filepath.Join(dir, "g.png")},
		{"sample", "--model", spec, "--prompt", "circle", "--n", "1", "--method", "best-of-n", "--best-of", "2",
			"--reward", "score=1", "--out", filepath.Join(dir, "g.png")},
		{"train", "--model", spec, "--reward", "score=1", "--steps", "1", "--batch", "2", "--quiet", "--out", filepath.Join(dir, "hn")},
		{"tilt", "--model", spec, "--reward", "score=1", "--pool", "2", "--seeds", "2", "--beta", "1", "--quiet", "--json"},
		{"bench", "--model", spec, "--reward", "score=1", "--batch", "2", "--rank", "2", "--steps", "1", "--json"},
	} {
		if code, _, msg := run(args...); code != 0 {
			t.Errorf("%s: exit %d: %s", strings.Join(args[:1], " "), code, msg)
		}
		bad := append([]string(nil), args...)
		for i := range bad {
			if bad[i] == "score=1" {
				bad[i] = "align=1"
			}
		}
		if bad[0] == "train" {
			bad[len(bad)-1] += "-bad"
		}
		if code, _, msg := run(bad...); code != 2 || !strings.Contains(msg, "available rewards: score") {
			t.Errorf("%s with align=1: exit %d, %q; want exit 2 naming the model's rewards", bad[0], code, msg)
		}
	}
}

// testServer is the server `hypernoise serve --model ref --hypernet dir...` builds: the model
// resolved the command's way (from the first folder when ref is empty), the folders loaded.
func testServer(t *testing.T, ref string, dirs ...string) (*family.Model, *serve.Server) {
	t.Helper()
	backend := testutil.Backend(t)
	folders, err := openHypernets(dirs...)
	if err != nil {
		t.Fatal(err)
	}
	var first *infer.Folder
	if len(folders) > 0 {
		first = folders[0]
	}
	m, err := loadModel(ref, first, backend)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.NewPipeline(backend, m, folders...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	srv, err := serve.New(p, serve.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return m, srv
}
