package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/pipeline/hntest"
	"github.com/hypernoise/hypernoise/serve/batch"
)

var folders = sync.OnceValues(func() ([]string, error) {
	root, err := os.MkdirTemp("", "serve-test")
	if err != nil {
		return nil, err
	}
	var out []string
	var ferr error
	func() {
		defer func() {
			if v := recover(); v != nil {
				ferr = fmt.Errorf("%v", v)
			}
		}()
		out = append(out, hntest.Folder(panicTB{}, root, "align", "align=1", 1))
	}()
	return out, ferr
})

type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// newServer returns a server over the embedded generator with one hypernetwork named "align".
func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	dirs, err := folders()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(hntest.Pipeline(t, dirs...), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func decodeImages(t *testing.T, r GenerateResponse) {
	t.Helper()
	for i, b := range r.Images {
		raw, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		if b := img.Bounds(); b.Dx() != fashion.Side || b.Dy() != fashion.Side {
			t.Errorf("image %d is %v", i, b)
		}
	}
}

func TestGenerateGood(t *testing.T) {
	s := newServer(t, DefaultConfig())
	h := s.Handler()
	gen := func(body string) GenerateResponse {
		t.Helper()
		code, out := do(t, h, "POST", "/v1/generate", body)
		if code != 200 {
			t.Fatalf("%s: status %d: %s", body, code, out)
		}
		var r GenerateResponse
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	base := gen(`{"prompt": "Sneaker", "method": "base", "n": 3, "seed": 7}`)
	if base.Method != "base" || base.Prompt != "sneaker" || len(base.Images) != 3 || len(base.Rewards) != 3 ||
		base.NFEPerImage != 1 || base.RewardSpec != "align=1" || base.Seconds <= 0 {
		t.Errorf("base answer: %+v", base)
	}
	decodeImages(t, base)
	again := gen(`{"prompt": "sneaker", "method": "base", "n": 3, "seed": 7}`)
	for i := range base.Images {
		if again.Images[i] != base.Images[i] {
			t.Errorf("image %d differs between two requests with seed 7", i)
		}
	}
	other := gen(`{"prompt": "sneaker", "method": "base", "n": 1, "seed": 8}`)
	if other.Images[0] == base.Images[0] {
		t.Error("seeds 7 and 8 give the same first image")
	}
	hn := gen(`{"prompt": "sneaker", "method": "hypernoise", "n": 3, "seed": 7}`)
	if hn.Method != "hypernoise" || hn.Hypernet != "align" || hn.NFEPerImage != 2 || len(hn.Images) != 3 {
		t.Errorf("hypernoise answer: %+v", hn)
	}
	if hn.Images[0] == base.Images[0] {
		t.Error("the hypernetwork returned the base image")
	}
	bon := gen(`{"prompt": "sneaker", "method": "best-of-n", "n": 2, "seed": 7}`)
	if bon.Method != "best-of-16" || bon.NFEPerImage != 16 {
		t.Errorf("best-of-n answer: method %s, nfe %g", bon.Method, bon.NFEPerImage)
	}
	// Candidate 0 is the base noise, so best-of-N's reward is at least base's on the same seed.
	for i := range bon.Rewards {
		if bon.Rewards[i] < base.Rewards[i]-1e-5 {
			t.Errorf("best-of-16 reward %g below the base's %g for image %d", bon.Rewards[i], base.Rewards[i], i)
		}
	}
	decodeImages(t, bon)

	code, out := do(t, h, "GET", "/v1/models", "")
	var m Models
	if code != 200 || json.Unmarshal(out, &m) != nil {
		t.Fatalf("models: %d %s", code, out)
	}
	var names []string
	for _, x := range m.Methods {
		names = append(names, x.Name)
	}
	if m.Generator != "fashion" || len(m.Prompts) != 10 || !strings.HasPrefix(strings.Join(names, ","), "base,best-of-n,reno,hypernoise,hypernoise-reno") ||
		len(m.Hypernets) != 1 || m.Hypernets[0].Name != "align" || m.Hypernets[0].RewardSpec != "align=1" || m.Limits.MaxN != 16 {
		t.Errorf("models: %s", out)
	}
	if code, out := do(t, h, "GET", "/healthz", ""); code != 200 || !strings.Contains(string(out), `"ok"`) {
		t.Errorf("healthz: %d %s", code, out)
	}
	if code, out := do(t, h, "GET", "/", ""); code != 200 || !strings.Contains(string(out), "<title>hypernoise serve</title>") {
		t.Errorf("page: %d", code)
	}
}

func TestGenerateBad(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBody = 256
	h := newServer(t, cfg).Handler()
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/generate", `{"prompt": "sneakr", "method": "base"}`, 400, `unknown prompt \"sneakr\"; prompts: t-shirt, trouser`},
		{"POST", "/v1/generate", `{"method": "base"}`, 400, "prompt is required; prompts: t-shirt"},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "magic"}`, 400, `unknown method \"magic\"; methods: base, best-of-n, reno, hypernoise, hypernoise-reno`},
		{"POST", "/v1/generate", `{"prompt": "bag"}`, 400, "method is required; methods: base"},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "finetune"}`, 400, `unknown method \"finetune\"`},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "hypernoise", "hypernet": "x"}`, 400, `unknown hypernetwork \"x\"; loaded: align`},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base", "n": 0}`, 400, "n must be in [1, 16], got 0"},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base", "n": 17}`, 400, "n must be in [1, 16], got 17"},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base", "n": 1e30}`, 400, `field \"n\" must be an integer`},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base", "n": 2.5}`, 400, `field \"n\" must be an integer`},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base", "seed": -1}`, 400, "seed must be in [0, 9007199254740991], got -1"},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base", "seed": 9007199254740992}`, 400, "seed must be in [0, 9007199254740991]"},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "hypernoise", "beta": 2}`, 400, "--beta needs a tilt dial"},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base", "beta": 2}`, 400, "beta applies to the hypernetwork methods only"},
		{"POST", "/v1/generate", `{"prompt": 3, "method": "base"}`, 400, `field \"prompt\" must be a string`},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base", "x": 1}`, 400, `unknown field \"x\"; fields: prompt, method, hypernet, n, seed, beta`},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base"} {}`, 400, "data after the JSON object"},
		{"POST", "/v1/generate", `{"prompt": "bag", "method": "base"} x`, 400, "after the JSON object"},
		{"POST", "/v1/generate", `[1, 2]`, 400, "body must be a JSON object, got a JSON array"},
		{"POST", "/v1/generate", `{"prompt": "bag"`, 400, "not a JSON object"},
		{"POST", "/v1/generate", ``, 400, "empty body"},
		{"POST", "/v1/generate", `{"prompt": "` + strings.Repeat("a", 300) + `"}`, 413, "larger than 256 bytes"},
		{"GET", "/v1/generate", ``, 405, "GET /v1/generate is not allowed; use POST"},
		{"POST", "/v1/models", ``, 405, "use GET or HEAD"},
		{"GET", "/nope", ``, 404, `no such path \"/nope\"`},
	} {
		code, out := do(t, h, c.method, c.path, c.body)
		if code != c.status || !strings.Contains(string(out), c.want) {
			t.Errorf("%s %s %.60q: %d %s, want %d with %q", c.method, c.path, c.body, code, out, c.status, c.want)
		}
		var e APIError
		if err := json.Unmarshal(out, &e); err != nil || e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
			t.Errorf("%s %s %.60q: answer is not a JSON error: %s", c.method, c.path, c.body, out)
		}
	}
}

// TestLimits blocks the only batch worker: a request admitted to the queue times out with a 503
// (and is dropped, never run), a request beyond the queue gets 429, and once the worker is free
// again requests are answered.
func TestLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Concurrency, cfg.Queue, cfg.Timeout = 1, 1, 200*time.Millisecond
	s := newServer(t, cfg)
	h := s.Handler()
	body := `{"prompt": "bag", "method": "base"}`
	release, started := make(chan struct{}), make(chan struct{})
	var baseRows atomic.Int64
	s.batcher.Close()
	var err error
	s.batcher, err = batch.New(batch.Config{MaxRows: 32, Workers: 1}, func(req infer.Request, eps []float32, prompts []int32) (*batch.Rows, error) {
		if req.Method == "reno" {
			close(started)
			<-release
		}
		if req.Method == "base" {
			baseRows.Add(int64(len(prompts)))
		}
		return s.runRows(req, eps, prompts)
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = s.batcher.Do(batch.Job{Ctx: context.Background(), Req: infer.Request{Method: "reno", Steps: 1}, Eps: make([]float32, 196), Prompts: []int32{0}})
	}()
	<-started
	code, out := do(t, h, "POST", "/v1/generate", body) // admitted to the queue, then times out
	if code != 503 || !strings.Contains(string(out), "did not finish within 200ms") {
		t.Errorf("waiting past the timeout: %d %s", code, out)
	}
	s.admit <- struct{}{} // the queue is full (one place running, one waiting)
	s.admit <- struct{}{}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/generate", strings.NewReader(body))
	req.Host = "localhost"
	h.ServeHTTP(rec, req)
	if rec.Code != 429 || !strings.Contains(rec.Body.String(), "server busy") || rec.Header().Get("Retry-After") == "" {
		t.Errorf("queue full: %d %s", rec.Code, rec.Body.String())
	}
	<-s.admit
	<-s.admit
	close(release)
	if code, out := do(t, h, "POST", "/v1/generate", body); code != 200 {
		t.Errorf("after the worker freed: %d %s", code, out)
	}
	if n := baseRows.Load(); n != 1 {
		t.Errorf("%d base rows ran, want 1: the request that timed out while queued was not dropped", n)
	}
}

// TestConcurrentRequests sends valid and invalid requests from many clients at once through a
// real listener; every request is answered (200, 400 or 429), and each 200 equals the answer to
// the same request made alone. Run with -race to check the server's and pipeline's locking.
func TestConcurrentRequests(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Concurrency, cfg.Queue = 2, 4
	s := newServer(t, cfg)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	bodies := []string{
		`{"prompt": "bag", "method": "base", "n": 2, "seed": 1}`,
		`{"prompt": "coat", "method": "hypernoise", "n": 1, "seed": 2}`,
		`{"prompt": "nope", "method": "base"}`,
		`{"prompt": "dress", "method": "best-of-n", "n": 1, "seed": 3}`,
		`{"prompt": "bag", "method": "base", "n": 99}`,
		`not json`,
	}
	const clients = 12
	codes := make([]int, clients)
	outs := make([][]byte, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(srv.URL+"/v1/generate", "application/json", strings.NewReader(bodies[i%len(bodies)]))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			outs[i], _ = io.ReadAll(resp.Body)
		}()
	}
	wg.Wait()
	for i := range clients {
		b := bodies[i%len(bodies)]
		switch codes[i] {
		case 200:
			code, want := do(t, s.Handler(), "POST", "/v1/generate", b)
			var a, w GenerateResponse
			_ = json.Unmarshal(outs[i], &a)
			_ = json.Unmarshal(want, &w)
			if code != 200 || strings.Join(a.Images, ",") != strings.Join(w.Images, ",") {
				t.Errorf("client %d (%s): concurrent answer differs from the answer alone", i, b)
			}
		case 400:
			if !strings.Contains(b, "nope") && !strings.Contains(b, "99") && !strings.Contains(b, "not json") {
				t.Errorf("client %d (%s): 400 for a valid request: %s", i, b, outs[i])
			}
		case 429:
		default:
			t.Errorf("client %d (%s): status %d %s", i, b, codes[i], outs[i])
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.MaxN = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "max n must be in [1, 1024]") {
		t.Errorf("max n 0: %v", err)
	}
	if _, err := New(nil, DefaultConfig()); err == nil {
		t.Error("nil pipeline accepted")
	}
	_ = infer.Request{}
}
