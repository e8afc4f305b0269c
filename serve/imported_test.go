package serve

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/models/onnx"
	"github.com/hypernoise/hypernoise/pipeline"
)

// TestImagesImported serves the imported ONNX fixture: OpenAI's images API answers with its
// size, and concurrent requests batched together get the images they get alone.
func TestImagesImported(t *testing.T) {
	be := testutil.Backend(t)
	m, err := onnx.Load("../models/onnx/testdata/spec.json", be)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.NewPipeline(be, onnx.ModelOf(m))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := DefaultConfig()
	cfg.BatchWindow, cfg.Concurrency, cfg.Keys = 300e6, 1, []string{testKey}
	s, err := New(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	size, err := s.size()
	if err != nil {
		t.Fatal(err)
	}
	prompts := p.Model().Generator.Prompts()
	got := make([]ImagesResponse, 3)
	var wg sync.WaitGroup
	body := func(i int) string {
		return fmt.Sprintf(`{"prompt": %q, "model": "base", "n": %d, "size": %q, "seed": %d}`, prompts[i%len(prompts)], 1+i, size, i)
	}
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, out, _ := call(h, "POST", "/v1/images/generations", body(i), "x-api-key", testKey)
			if err := json.Unmarshal(out, &got[i]); code != 200 || err != nil {
				t.Errorf("%s: %d %.200s", body(i), code, out)
			}
		}()
	}
	wg.Wait()
	for i := range got {
		if len(got[i].Data) != 1+i || got[i].Size != size || got[i].Hypernoise.BatchReqs != 3 {
			t.Errorf("%s: %d images of %s in a batch of %d requests", body(i), len(got[i].Data), got[i].Size, got[i].Hypernoise.BatchReqs)
		}
		_, out, _ := call(h, "POST", "/v1/images/generations", body(i), "x-api-key", testKey)
		var alone ImagesResponse
		_ = json.Unmarshal(out, &alone)
		for k := range alone.Data {
			if k >= len(got[i].Data) || alone.Data[k].B64JSON != got[i].Data[k].B64JSON {
				t.Errorf("%s: image %d batched differs from alone", body(i), k)
			}
		}
	}
}
