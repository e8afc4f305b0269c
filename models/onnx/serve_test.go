package onnx_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/models/onnx"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/serve"
)

// TestServeImported serves the imported fixture over HTTP: /v1/models lists its prompts, and
// /v1/generate returns RGB PNGs of the generator's size with one reward per image.
func TestServeImported(t *testing.T) {
	be := testutil.Backend(t)
	m, err := onnx.Load("testdata/spec.json", be)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.NewPipeline(be, onnx.ModelOf(m))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := serve.New(p, serve.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var models struct {
		Generator string   `json:"generator"`
		Prompts   []string `json:"prompts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&models); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if models.Generator != "fixture" || len(models.Prompts) != 3 {
		t.Fatalf("/v1/models: %+v", models)
	}

	body := []byte(`{"prompt": "stripes", "method": "best-of-n", "n": 2, "seed": 3}`)
	resp, err = http.Post(srv.URL+"/v1/generate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var e map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&e)
		t.Fatalf("/v1/generate: status %d: %v", resp.StatusCode, e)
	}
	var gen struct {
		Images  []string  `json:"images"`
		Rewards []float32 `json:"rewards"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&gen); err != nil {
		t.Fatal(err)
	}
	if len(gen.Images) != 2 || len(gen.Rewards) != 2 {
		t.Fatalf("want 2 images and 2 rewards, got %d and %d", len(gen.Images), len(gen.Rewards))
	}
	raw, err := base64.StdEncoding.DecodeString(gen.Images[0])
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 32 {
		t.Errorf("image is %v, want 32x32", b)
	}
}
