package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/serve/batch"
)

const testKey = "sk-test-0123456789"

// call sends a request with optional headers to h and returns the status and body.
func call(h http.Handler, method, path, body string, hdr ...string) (int, []byte, http.Header) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes(), rec.Header()
}

// TestImagesGenerations: OpenAI's request shape gets OpenAI's answer shape, with the same images
// as /v1/generate for the same model, prompt, n and seed; /v1/models is OpenAI's list.
func TestImagesGenerations(t *testing.T) {
	s := newServer(t, DefaultConfig())
	h := s.Handler()
	code, out, _ := call(h, "POST", "/v1/images/generations", `{"prompt": "sneaker", "model": "align", "n": 2, "size": "28x28", "response_format": "b64_json", "seed": 7}`)
	var r ImagesResponse
	if err := json.Unmarshal(out, &r); code != 200 || err != nil || len(r.Data) != 2 || r.Created == 0 || r.Size != "28x28" {
		t.Fatalf("%d %.300s", code, out)
	}
	_, gout, _ := call(h, "POST", "/v1/generate", `{"prompt": "sneaker", "method": "hypernoise", "hypernet": "align", "n": 2, "seed": 7}`)
	var g GenerateResponse
	_ = json.Unmarshal(gout, &g)
	decodeImages(t, g)
	for i := range g.Images {
		if r.Data[i].B64JSON != g.Images[i] {
			t.Errorf("image %d differs between the two endpoints", i)
		}
	}
	if r.Hypernoise.Method != "hypernoise" || r.Hypernoise.Hypernet != "align" || len(r.Hypernoise.Rewards) != 2 || r.Hypernoise.NFEPerImage <= 0 {
		t.Errorf("extension: %+v", r.Hypernoise)
	}
	code, out, _ = call(h, "POST", "/v1/images/generations", `{"prompt": "bag", "model": "best-of-n"}`)
	if err := json.Unmarshal(out, &r); code != 200 || err != nil || len(r.Data) != 1 || !strings.HasPrefix(r.Hypernoise.Method, "best-of-") {
		t.Errorf("model best-of-n: %d %.300s", code, out)
	}
	code, out, _ = call(h, "GET", "/v1/models", "")
	var m Models
	if err := json.Unmarshal(out, &m); code != 200 || err != nil || m.Object != "list" {
		t.Fatalf("models: %d %s", code, out)
	}
	var ids []string
	for _, d := range m.Data {
		ids = append(ids, d.ID)
		if d.Object != "model" || d.OwnedBy == "" || d.Created == 0 {
			t.Errorf("model entry %+v", d)
		}
	}
	for _, want := range []string{"align", "base", "hypernoise", "best-of-n"} {
		if !slices.Contains(ids, want) {
			t.Errorf("models %v lack %s", ids, want)
		}
	}
}

// TestBadInput: each bad request of the list is one clear 4xx in OpenAI's error shape,
// and no log line holds a key.
func TestBadInput(t *testing.T) {
	var logs bytes.Buffer
	cfg := DefaultConfig()
	cfg.MaxBody, cfg.Keys = 256, []string{testKey, "second-key-abcdef"}
	cfg.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	h := newServer(t, cfg).Handler()
	auth := []string{"Authorization", "Bearer " + testKey}
	for _, c := range []struct {
		path, body string
		hdr        []string
		status     int
		typ, code  string
		param      string
		want       string
	}{
		{"/v1/images/generations", `{"prompt": "bag"}`, nil, 401, "authentication_error", "invalid_api_key", "", "missing API key"},
		{"/v1/images/generations", `{"prompt": "bag"}`, []string{"Authorization", "Bearer wrong-key-123"}, 401, "authentication_error", "invalid_api_key", "", "invalid API key"},
		{"/v1/images/generations", `{"prompt": "bag"}`, []string{"X-Api-Key", "wrong-key-123"}, 401, "authentication_error", "invalid_api_key", "", "invalid API key"},
		{"/v1/images/generations", `{"prompt": "bag"}`, []string{"Authorization", "Basic " + testKey}, 401, "authentication_error", "invalid_api_key", "", "missing API key"},
		{"/v1/images/generations?api_key=" + testKey, `{"prompt": "bag"}`, auth, 400, "invalid_request_error", "api_key_in_query", "api_key", "not accepted in the URL"},
		{"/v1/models?key=" + testKey, ``, nil, 400, "invalid_request_error", "api_key_in_query", "key", "not accepted in the URL"},
		{"/v1/images/generations", `{"prompt": "` + strings.Repeat("a", 300) + `"}`, auth, 413, "invalid_request_error", "body_too_large", "", "larger than 256 bytes"},
		{"/v1/images/generations", `{"prompt": "bag", "size": "1024x1024"}`, auth, 400, "invalid_request_error", "", "size", `size \"1024x1024\" cannot be made: this model makes 28x28 images only`},
		{"/v1/images/generations", `{"prompt": "bag", "n": 17}`, auth, 400, "invalid_request_error", "", "n", "n must be in [1, 16], got 17"},
		{"/v1/images/generations", `{"prompt": "bag", "model": "dall-e-3"}`, auth, 404, "invalid_request_error", "model_not_found", "model", `the model \"dall-e-3\" does not exist; models: align, base`},
		{"/v1/images/generations", `{"prompt": "bag", "response_format": "url"}`, auth, 400, "invalid_request_error", "", "response_format", `use \"b64_json\"`},
		{"/v1/images/generations", `{"prompt": "bag", "output_format": "jpeg"}`, auth, 400, "invalid_request_error", "", "output_format", `use \"png\"`},
		{"/v1/images/generations", `{"prompt": "sneakr"}`, auth, 400, "invalid_request_error", "", "prompt", `unknown prompt \"sneakr\"; prompts: t-shirt`},
		{"/v1/images/generations", `{"prompt": "bag", "style": "vivid"}`, auth, 400, "invalid_request_error", "", "style", `unknown field \"style\"`},
		{"/v1/images/generations", `{"prompt": "bag"}`, append([]string{"Origin", "https://evil.example"}, auth...), 403, "permission_error", "origin_not_allowed", "", "web origin"},
		{"/v1/images/generations", `{"prompt": "bag"}`, append([]string{"Origin", "null"}, auth...), 403, "permission_error", "origin_not_allowed", "", "web origin"},
		{"/v1/images/generations", `{"prompt": "bag"}`, append([]string{"Host", "evil.example"}, auth...), 403, "permission_error", "host_not_allowed", "", "Host header"},
		{"/metrics", ``, nil, 401, "authentication_error", "invalid_api_key", "", "missing API key"},
	} {
		method := "POST"
		if c.body == "" {
			method = "GET"
		}
		code, out, hdr := call(h, method, c.path, c.body, c.hdr...)
		var e APIError
		err := json.Unmarshal(out, &e)
		if code != c.status || err != nil || e.Error.Type != c.typ || !strings.Contains(string(out), c.want) ||
			(c.code != "" && (e.Error.Code == nil || *e.Error.Code != c.code)) || (c.param != "" && (e.Error.Param == nil || *e.Error.Param != c.param)) {
			t.Errorf("%s %.50q %v: %d %s\nwant %d %s/%s/%s with %q", c.path, c.body, c.hdr, code, out, c.status, c.typ, c.code, c.param, c.want)
		}
		if code == 401 && hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.path)
		}
	}
	for _, c := range [][]string{{"X-Api-Key", "second-key-abcdef"}, auth, {"Authorization", "bearer " + testKey}} {
		if code, out, _ := call(h, "GET", "/v1/models", "", c...); code != 200 {
			t.Errorf("%v: %d %s", c, code, out)
		}
	}
	for _, p := range []string{"/healthz", "/"} {
		if code, out, _ := call(h, "GET", p, ""); code != 200 {
			t.Errorf("%s without a key: %d %.100s", p, code, out)
		}
	}
	if strings.Contains(logs.String(), testKey) || strings.Contains(logs.String(), "wrong-key") || strings.Count(logs.String(), "\n") < 20 {
		t.Errorf("log lines hold a key, or a request was not logged:\n%s", logs.String())
	}
}

// TestOriginAndHost: the page's own origin, an --allow-origin (with its CORS preflight) and an
// --allow-host pass; foreign ones do not.
func TestOriginAndHost(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowOrigins, cfg.AllowHosts = []string{"https://app.example"}, []string{"gen.example"}
	h := newServer(t, cfg).Handler()
	body := `{"prompt": "bag", "model": "base"}`
	for _, c := range []struct {
		method string
		hdr    []string
		status int
	}{
		{"POST", []string{"Origin", "http://127.0.0.1:8080"}, 200},
		{"POST", []string{"Origin", "https://app.example"}, 200},
		{"OPTIONS", []string{"Origin", "https://app.example"}, 204},
		{"OPTIONS", []string{"Origin", "https://evil.example"}, 403},
		{"POST", []string{"Origin", "https://app.example.evil.example"}, 403},
		{"POST", []string{"Host", "gen.example:443"}, 200},
		{"POST", []string{"Host", "localhost:8080"}, 200},
		{"POST", []string{"Host", "[::1]:8080"}, 200},
		{"POST", []string{"Host", "gen.example.evil.example"}, 403},
		{"POST", []string{"Host", ""}, 403},
	} {
		code, out, hdr := call(h, c.method, "/v1/images/generations", body, c.hdr...)
		if code != c.status {
			t.Errorf("%s %v: %d %.200s, want %d", c.method, c.hdr, code, out, c.status)
		}
		if c.status == 204 && hdr.Get("Access-Control-Allow-Origin") != "https://app.example" {
			t.Errorf("preflight of an allowed origin without CORS headers: %v", hdr)
		}
	}
	bad := DefaultConfig()
	for _, c := range []func(*Config){
		func(c *Config) { c.Keys = []string{"short"} },
		func(c *Config) { c.Keys = []string{"has a space in it"} },
		func(c *Config) { c.AllowOrigins = []string{"app.example"} },
		func(c *Config) { c.AllowHosts = []string{"http://gen.example"} },
	} {
		cc := bad
		c(&cc)
		if err := cc.Validate(); err == nil {
			t.Errorf("%+v accepted", cc)
		}
	}
}

// TestBatchedEqualsAlone sends requests of several seeds, prompts and sizes at once to a server
// with a long batch window: they run as one batch and each answer's images equal, bit for bit,
// those of the same request answered alone by a server that does not batch (its rewards to 1e-5).
func TestBatchedEqualsAlone(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BatchWindow, cfg.Concurrency = 500*time.Millisecond, 1
	batched := newServer(t, cfg).Handler()
	alone := DefaultConfig()
	alone.BatchWindow, alone.MaxBatch = 0, 1
	single := newServer(t, alone).Handler()
	for _, model := range []string{"align", "base"} {
		bodies := []string{}
		for i, c := range []struct {
			prompt string
			n      int
		}{{"sneaker", 1}, {"bag", 3}, {"sneaker", 2}, {"coat", 1}} {
			bodies = append(bodies, fmt.Sprintf(`{"prompt": %q, "model": %q, "n": %d, "seed": %d}`, c.prompt, model, c.n, 11+i))
		}
		got := make([]ImagesResponse, len(bodies))
		var wg sync.WaitGroup
		for i, b := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, out, _ := call(batched, "POST", "/v1/images/generations", b)
				if err := json.Unmarshal(out, &got[i]); code != 200 || err != nil {
					t.Errorf("%s: %d %.200s", b, code, out)
				}
			}()
		}
		wg.Wait()
		for i, b := range bodies {
			if got[i].Hypernoise.BatchReqs != len(bodies) || got[i].Hypernoise.BatchImages != 7 {
				t.Errorf("%s ran in a batch of %d requests and %d images, want %d and 7", b, got[i].Hypernoise.BatchReqs, got[i].Hypernoise.BatchImages, len(bodies))
			}
			code, out, _ := call(single, "POST", "/v1/images/generations", b)
			var want ImagesResponse
			if err := json.Unmarshal(out, &want); code != 200 || err != nil || want.Hypernoise.BatchReqs != 1 {
				t.Fatalf("alone %s: %d %.200s", b, code, out)
			}
			for k := range want.Data {
				if got[i].Data[k].B64JSON != want.Data[k].B64JSON {
					t.Errorf("%s: image %d batched differs from alone", b, k)
				}
				// The rewards are float32 figures of the float samples, which differ in their last
				// bits with a row's place in the batch (the backend's kernels are not
				// batch-invariant: a 1-row graph and row 0 of a 2-row graph already differ).
				if ra, rb := got[i].Hypernoise.Rewards[k], want.Hypernoise.Rewards[k]; math.Abs(float64(ra-rb)) > 1e-5*max(1, math.Abs(float64(rb))) {
					t.Errorf("%s: reward %d batched %g, alone %g", b, k, got[i].Hypernoise.Rewards[k], want.Hypernoise.Rewards[k])
				}
			}
		}
	}
}

// TestMetrics: /metrics answers Prometheus' text format with the request, batch, image and
// network-evaluation series after a generation.
func TestMetrics(t *testing.T) {
	h := newServer(t, DefaultConfig()).Handler()
	if code, out, _ := call(h, "POST", "/v1/images/generations", `{"prompt": "bag", "model": "base", "n": 3}`); code != 200 {
		t.Fatalf("%d %.200s", code, out)
	}
	_, _, _ = call(h, "POST", "/v1/images/generations", `{"prompt": "nope"}`)
	code, out, _ := call(h, "GET", "/metrics", "")
	text := string(out)
	for _, want := range []string{
		`hypernoise_http_requests_total{code="200",endpoint="/v1/images/generations"} 1`,
		`hypernoise_http_requests_total{code="400",endpoint="/v1/images/generations"} 1`,
		`hypernoise_images_generated_total{method="base"} 3`,
		`hypernoise_network_evaluations_total{method="base"} 3`,
		`hypernoise_batch_images_count`, `hypernoise_http_request_duration_seconds_bucket`,
		`hypernoise_queue_depth 0`, `process_resident_memory_bytes`,
	} {
		if code != 200 || !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%.3000s", want, text)
		}
	}
}

// TestOpenAIClientRequest replays the request OpenAI's Python client (openai 1.x,
// client.images.generate(model="align", prompt="sneaker", n=2, size="28x28",
// response_format="b64_json")) sends, headers included, and checks the answer against what the
// client's ImagesResponse model reads: an integer created and data[].b64_json; without the key
// the client gets a 401 whose body has error.message.
func TestOpenAIClientRequest(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Keys = []string{testKey}
	h := newServer(t, cfg).Handler()
	body := `{"model":"align","prompt":"sneaker","n":2,"response_format":"b64_json","size":"28x28"}`
	hdr := []string{"Accept", "application/json", "Content-Type", "application/json", "User-Agent", "OpenAI/Python 1.54.0",
		"X-Stainless-Lang", "python", "X-Stainless-Package-Version", "1.54.0", "X-Stainless-Os", "Linux",
		"X-Stainless-Arch", "x64", "X-Stainless-Runtime", "CPython", "X-Stainless-Runtime-Version", "3.11.2",
		"X-Stainless-Retry-Count", "0", "Accept-Encoding", "gzip, deflate"}
	code, out, _ := call(h, "POST", "/v1/images/generations", body, append(hdr, "Authorization", "Bearer "+testKey)...)
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); code != 200 || err != nil {
		t.Fatalf("%d %.300s", code, out)
	}
	created, ok := raw["created"].(float64)
	data, _ := raw["data"].([]any)
	if !ok || created != float64(int64(created)) || len(data) != 2 {
		t.Fatalf("answer lacks an integer created or two data entries: %.300s", out)
	}
	for i, d := range data {
		b64, _ := d.(map[string]any)["b64_json"].(string)
		decodeImages(t, GenerateResponse{Images: []string{b64}})
		if b64 == "" {
			t.Errorf("data[%d] has no b64_json", i)
		}
	}
	code, out, _ = call(h, "POST", "/v1/images/generations", body, hdr...)
	var e APIError
	if err := json.Unmarshal(out, &e); code != 401 || err != nil || e.Error.Message == "" {
		t.Errorf("without the key: %d %s", code, out)
	}
}

// TestNonFiniteReward: a model that scores a sample NaN gets a 500 with an error body, never a
// 200 with an empty or partial body; a value that cannot be encoded is answered the same way.
func TestNonFiniteReward(t *testing.T) {
	s := newServer(t, DefaultConfig())
	s.batcher.Close()
	var err error
	s.batcher, err = batch.New(batch.Config{MaxRows: 32, Workers: 1}, func(req infer.Request, eps []float32, prompts []int32) (*batch.Rows, error) {
		out, err := s.runRows(req, eps, prompts)
		if err == nil {
			out.Rewards[0] = float32(math.NaN())
		}
		return out, err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/generate", "/v1/images/generations"} {
		body := map[string]string{"/v1/generate": `{"prompt": "bag", "method": "base"}`,
			"/v1/images/generations": `{"prompt": "bag", "model": "base"}`}[p]
		code, out, _ := call(s.Handler(), "POST", p, body)
		var e APIError
		if err := json.Unmarshal(out, &e); code != 500 || err != nil || !strings.Contains(e.Error.Message, "non-finite reward") {
			t.Errorf("%s: %d %s", p, code, out)
		}
	}
	rec := httptest.NewRecorder()
	writeJSON(rec, 200, map[string]float64{"x": math.Inf(1)})
	var e APIError
	if err := json.Unmarshal(rec.Body.Bytes(), &e); rec.Code != 500 || err != nil || e.Error.Type != "server_error" {
		t.Errorf("unencodable value: %d %s", rec.Code, rec.Body.String())
	}
}
