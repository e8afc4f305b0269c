// Package serve is `hypernoise serve`: an HTTP JSON API and an embedded web page over one
// inference pipeline (package infer), bounded in request size, images per request, time per
// request and concurrent generations.
//
//	GET  /             the web page (embedded, no external resources)
//	POST /v1/generate  {"prompt": "sneaker", "method": "hypernoise", "hypernet": "NAME", "n": 4, "seed": 7}
//	                   -> {"images": ["<base64 PNG>", ...], "rewards": [...], "method": "...",
//	                       "nfe_per_image": N, "seconds": S, ...}
//	GET  /v1/models    the generator, its prompts, the methods, the hypernetworks with their rewards
//	GET  /healthz      {"status": "ok"}
//
// Bad input (malformed JSON, unknown prompt, method or hypernetwork, n or seed out of range) is a
// 400 with a JSON error naming what is allowed; a body over the size limit is a 413; when every
// generation slot and queue place is taken the answer is 429. A request that waits or runs longer
// than the timeout gets a 503 (its generation, if started, finishes in the background and keeps
// its slot, so the concurrency bound holds).
package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/serve/batch"
)

//go:embed index.html
var indexHTML []byte

// MaxSeed is the largest seed accepted: 2^53-1, the largest integer a JavaScript number holds exactly.
const MaxSeed = 1<<53 - 1

// Config holds the server's limits, batching, access rules and method settings.
type Config struct {
	MaxN        int           `json:"max_n"`          // most images per request
	MaxBody     int64         `json:"max_body_bytes"` // largest request body
	Timeout     time.Duration `json:"-"`              // per request, queueing included
	Concurrency int           `json:"concurrency"`    // generation batches at once
	Queue       int           `json:"queue"`          // requests waiting for a batch beyond those; more get 429
	// The methods' knobs the server applies to every request (within the method registry's
	// limits; DefaultConfig takes the registry's defaults).
	BestOfN   int `json:"best_of_n"`       // N of best-of-n
	RenoSteps int `json:"reno_steps"`      // iterations of reno
	WarmSteps int `json:"warm_reno_steps"` // iterations of hypernoise-reno
	// BatchWindow is how long a request waits for others with the same settings to join its
	// batch; requests that wait for a busy worker are merged without it.
	BatchWindow time.Duration `json:"-"`
	MaxBatch    int           `json:"max_batch_rows"` // most images (noise rows) in one batch

	// Access: API keys (none: open), extra allowed browser origins and Host names. Never exposed.
	Keys         []string `json:"-"`
	AllowOrigins []string `json:"-"`
	AllowHosts   []string `json:"-"`
	// Log receives one line per request (nil: none).
	Log *slog.Logger `json:"-"`
}

// DefaultConfig: 16 images per request, 4 KiB bodies, 60 s per request, 2 batches at once with
// 64 requests waiting, batches of up to 32 images gathered for 2 ms, the method registry's default
// knobs (best-of-16, ReNO with 50 steps, 10 warm-start steps: hypernoise.MethodInfo.Defaults); no
// keys.
func DefaultConfig() Config {
	return Config{MaxN: 16, MaxBody: 4096, Timeout: 60 * time.Second, Concurrency: 2, Queue: 64,
		BestOfN: knobs(bestofn.Name).N, RenoSteps: knobs(reno.Name).Steps, WarmSteps: knobs(reno.WarmName).Steps,
		BatchWindow: 2 * time.Millisecond, MaxBatch: 32}
}

// knobs are a registered method's default knobs.
func knobs(method string) hypernoise.Knobs {
	info, _ := hypernoise.LookupMethod(method)
	return info.Defaults
}

// checkKnobs checks the configured knobs against the method registry's limits.
func (c Config) checkKnobs() error {
	for _, k := range []struct {
		method string
		knobs  hypernoise.Knobs
	}{{bestofn.Name, hypernoise.Knobs{N: c.BestOfN}}, {reno.Name, hypernoise.Knobs{Steps: c.RenoSteps}},
		{reno.WarmName, hypernoise.Knobs{Steps: c.WarmSteps}}} {
		if err := hypernoise.CheckKnobs(k.method, k.knobs); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.MaxN < 1 || c.MaxN > 1024:
		return fmt.Errorf("max n must be in [1, 1024], got %d", c.MaxN)
	case c.MaxBody < 64 || c.MaxBody > 1<<20:
		return fmt.Errorf("max body must be in [64, 1048576] bytes, got %d", c.MaxBody)
	case c.Timeout <= 0:
		return fmt.Errorf("timeout must be positive, got %s", c.Timeout)
	case c.Concurrency < 1 || c.Concurrency > 256:
		return fmt.Errorf("concurrency must be in [1, 256], got %d", c.Concurrency)
	case c.Queue < 0 || c.Queue > 10000:
		return fmt.Errorf("queue must be in [0, 10000], got %d", c.Queue)
	case c.BatchWindow < 0 || c.BatchWindow > time.Second:
		return fmt.Errorf("batch window must be in [0, 1s], got %s", c.BatchWindow)
	case c.MaxBatch < 1 || c.MaxBatch > 4096:
		return fmt.Errorf("max batch must be in [1, 4096] images, got %d", c.MaxBatch)
	}
	if err := c.checkKnobs(); err != nil {
		return err
	}
	return checkAccess(c)
}

// Server answers the API over a pipeline. It is safe for concurrent use.
type Server struct {
	p       *infer.Pipeline
	cfg     Config
	admit   chan struct{} // capacity Concurrency+Queue: requests admitted (running or waiting)
	batcher *batch.Batcher
	keys    [][sha256.Size]byte
	metrics *metrics
	created int64 // Unix time the server started (the models' "created")
	mux     *http.ServeMux
	shape   func() ([]int, error) // the shape of one sample, from a first generation
}

// New returns a server over p (with its hypernetworks already loaded). Close stops its batcher.
func New(p *infer.Pipeline, cfg Config) (*Server, error) {
	if p == nil {
		return nil, fmt.Errorf("serve: nil pipeline")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{p: p, cfg: cfg, admit: make(chan struct{}, cfg.Concurrency+cfg.Queue),
		mux: http.NewServeMux(), created: time.Now().Unix(), keys: hashKeys(cfg.Keys)}
	s.metrics = newMetrics(s)
	var err error
	s.batcher, err = batch.New(batch.Config{Window: cfg.BatchWindow, MaxRows: cfg.MaxBatch, Workers: cfg.Concurrency,
		OnRun: s.metrics.observeRun}, s.runRows)
	if err != nil {
		return nil, err
	}
	s.shape = sync.OnceValues(s.sampleShape)
	s.mux.HandleFunc("/", s.index)
	s.mux.HandleFunc("/v1/generate", s.generate)
	s.mux.HandleFunc("/v1/images/generations", s.imagesGenerations)
	s.mux.HandleFunc("/v1/models", s.models)
	s.mux.HandleFunc("/healthz", s.healthz)
	s.mux.Handle("/metrics", s.metrics.handler())
	return s, nil
}

// Close stops the batcher after the batches running; requests still waiting fail.
func (s *Server) Close() { s.batcher.Close() }

// Handler is the server's HTTP handler: the access checks (Host, Origin, API key), one log line
// and the metrics of each request, and the API; a panic in a handler is answered with a 500,
// never a crash.
func (s *Server) Handler() http.Handler {
	return s.observe(s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				writeError(w, fmt.Errorf("internal error: %v", v))
			}
		}()
		s.mux.ServeHTTP(w, r)
	})))
}

// paths are the server's endpoints.
var paths = []string{"/", "/v1/images/generations", "/v1/generate", "/v1/models", "/healthz", "/metrics"}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, &BadRequest{Status: http.StatusMethodNotAllowed, Msg: fmt.Sprintf("%s %s is not allowed; use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")),
		Allowed: methods, Code: "method_not_allowed"})
	return false
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		writeError(w, &BadRequest{Status: http.StatusNotFound, Msg: fmt.Sprintf("no such path %q; paths: %s", r.URL.Path, strings.Join(paths, ", ")),
			Allowed: paths, Code: "not_found"})
		return
	}
	if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	_, _ = w.Write(indexHTML)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// MethodInfo describes a method the server offers.
type MethodInfo struct {
	Name          string `json:"name"`
	Summary       string `json:"summary"`
	NeedsHypernet bool   `json:"needs_hypernet"`
}

// HypernetInfo describes a loaded hypernetwork.
type HypernetInfo struct {
	Name       string     `json:"name"`
	RewardSpec string     `json:"reward_spec"`
	Modulator  string     `json:"modulator"`
	Beta       float64    `json:"beta,omitempty"`
	BetaRange  [2]float64 `json:"beta_range,omitzero"`
}

// Models is the answer of GET /v1/models.
type Models struct {
	Object string       `json:"object"` // "list", as OpenAI's
	Data   []ModelEntry `json:"data"`   // the model names /v1/images/generations accepts
	// The rest describes the server for its own page and clients.
	Generator     string         `json:"generator"`
	Prompts       []string       `json:"prompts"`
	Methods       []MethodInfo   `json:"methods"`
	Hypernets     []HypernetInfo `json:"hypernets"`
	DefaultReward string         `json:"default_reward"`
	Limits        Config         `json:"limits"`
	TimeoutSec    float64        `json:"timeout_seconds"`
	MaxSeed       int64          `json:"max_seed"`
}

// offered lists the methods the server can run: every registered method whose needs it can meet
// (a fine-tuned generator is not served; hypernetwork methods need one loaded).
func (s *Server) offered() []MethodInfo {
	var out []MethodInfo
	hasHN := len(s.p.Hypernets()) > 0
	for _, name := range hypernoise.MethodNames() {
		info, err := hypernoise.LookupMethod(name)
		if err != nil || info.Needs.Has(hypernoise.NeedsFinetuned) {
			continue
		}
		needs := info.Needs.Has(hypernoise.NeedsModulator)
		if needs && !hasHN {
			continue
		}
		out = append(out, MethodInfo{Name: name, Summary: info.Summary, NeedsHypernet: needs})
	}
	return out
}

// ModelsInfo is what GET /v1/models answers.
func (s *Server) ModelsInfo() Models {
	m := Models{Generator: s.p.Model().Generator.Name(), Prompts: s.p.Model().Generator.Prompts(),
		Methods: s.offered(), DefaultReward: s.p.Model().DefaultReward, Limits: s.cfg,
		TimeoutSec: s.cfg.Timeout.Seconds(), MaxSeed: MaxSeed, Hypernets: []HypernetInfo{},
		Object: "list", Data: s.modelEntries()}
	if m.Prompts == nil {
		m.Prompts = []string{}
	}
	for _, h := range s.p.Hypernets() {
		m.Hypernets = append(m.Hypernets, HypernetInfo{Name: h.Name, RewardSpec: h.Config.RewardSpec,
			Modulator: h.Config.Modulator.Kind, Beta: h.Config.Beta, BetaRange: h.Config.Modulator.BetaRange})
	}
	return m
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writeJSON(w, http.StatusOK, s.ModelsInfo())
}

// job is a validated request.
type job struct {
	req     infer.Request
	prompt  string
	promptI int32
	n       int
	seed    uint64
}

// check validates a decoded request against the pipeline and the limits.
func (s *Server) check(g GenerateRequest) (job, error) {
	var j job
	gen := s.p.Model().Generator
	prompts := gen.Prompts()
	if len(prompts) > 0 {
		want := strings.ToLower(strings.Join(strings.Fields(g.Prompt), " "))
		i := slices.IndexFunc(prompts, func(p string) bool { return strings.ToLower(p) == want })
		if i < 0 {
			if g.Prompt == "" {
				return j, badp("prompt", prompts, "prompt is required; prompts: %s", strings.Join(prompts, ", "))
			}
			return j, badp("prompt", prompts, "unknown prompt %q; prompts: %s", g.Prompt, strings.Join(prompts, ", "))
		}
		j.prompt, j.promptI = prompts[i], int32(i)
	} else if g.Prompt != "" {
		return j, badp("prompt", nil, "generator %s is unconditional; omit the prompt", gen.Name())
	}
	var names []string
	var info *MethodInfo
	offered := s.offered()
	for i, m := range offered {
		names = append(names, m.Name)
		if m.Name == g.Method {
			info = &offered[i]
		}
	}
	if info == nil {
		if g.Method == "" {
			return j, badp("method", names, "method is required; methods: %s", strings.Join(names, ", "))
		}
		return j, badp("method", names, "unknown method %q; methods: %s", g.Method, strings.Join(names, ", "))
	}
	j.req = infer.Request{Method: g.Method}
	hns := s.p.Hypernets()
	var hnNames []string
	for _, h := range hns {
		hnNames = append(hnNames, h.Name)
	}
	if g.Hypernet != "" || info.NeedsHypernet {
		h, err := s.p.Hypernet(g.Hypernet)
		if err != nil {
			return j, badp("hypernet", hnNames, "%v", err)
		}
		j.req.Hypernet = h.Name
		if g.Beta != nil {
			if !info.NeedsHypernet {
				return j, badp("beta", nil, "beta applies to the hypernetwork methods only, not %s", g.Method)
			}
			if b := *g.Beta; !(b > 0) || math.IsInf(b, 0) {
				return j, badp("beta", nil, "beta must be a positive number, got %g", b)
			}
			if err := h.Config.CheckBeta(*g.Beta); err != nil {
				return j, badp("beta", nil, "%v", err)
			}
			j.req.Beta = *g.Beta
		}
	} else if g.Beta != nil {
		return j, badp("beta", nil, "beta applies to the hypernetwork methods only, not %s", g.Method)
	}
	switch g.Method {
	case bestofn.Name:
		j.req.N = s.cfg.BestOfN
	case reno.Name:
		j.req.Steps = s.cfg.RenoSteps
	case reno.WarmName:
		j.req.Steps = s.cfg.WarmSteps
	}
	j.n = 1
	if g.N != nil {
		j.n = *g.N
	}
	if j.n < 1 || j.n > s.cfg.MaxN {
		return j, badp("n", nil, "n must be in [1, %d], got %d", s.cfg.MaxN, j.n)
	}
	if g.Seed != nil {
		if *g.Seed < 0 || *g.Seed > MaxSeed {
			return j, badp("seed", nil, "seed must be in [0, %d], got %d", int64(MaxSeed), *g.Seed)
		}
		j.seed = uint64(*g.Seed)
	}
	return j, nil
}

// GenerateResponse is the answer of POST /v1/generate.
type GenerateResponse struct {
	Method      string    `json:"method"` // the method's label, e.g. "best-of-16"
	Hypernet    string    `json:"hypernet,omitempty"`
	Prompt      string    `json:"prompt"`
	Seed        uint64    `json:"seed"`
	Images      []string  `json:"images"` // base64 PNGs
	Rewards     []float32 `json:"rewards"`
	RewardSpec  string    `json:"reward_spec"`
	NFEPerImage float64   `json:"nfe_per_image"`
	Seconds     float64   `json:"seconds"`    // wall time of the generation (queueing excluded)
	BatchRows   int       `json:"batch_rows"` // images in the batch it ran in (its own included)
	BatchReqs   int       `json:"batch_requests"`
}

var errBusy = &BadRequest{Status: http.StatusTooManyRequests, Msg: "server busy: every generation slot and queue place is taken; retry later", Code: "server_busy"}

func (s *Server) generate(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	g, err := DecodeRequest(r.Body, s.cfg.MaxBody)
	if err != nil {
		writeError(w, err)
		return
	}
	j, err := s.check(g)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.Generate(r.Context(), j)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// Generate runs a validated job within the server's limits, batched with concurrent jobs of the
// same settings.
func (s *Server) Generate(ctx context.Context, j job) (*GenerateResponse, error) {
	select {
	case s.admit <- struct{}{}:
	default:
		return nil, errBusy
	}
	defer func() { <-s.admit }()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	prompts := make([]int32, j.n)
	for i := range prompts {
		prompts[i] = j.promptI
	}
	eps := hypernoise.PromptNoise(j.seed, int(j.promptI), j.n, s.p.Model().Generator.NoiseShape())
	res, err := s.batcher.Do(batch.Job{Ctx: ctx, Req: j.req, Eps: eps, Prompts: prompts})
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, &BadRequest{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("generation did not finish within %s", s.cfg.Timeout), Code: "timeout"}
	}
	if err != nil {
		return nil, err
	}
	for i, v := range res.Rewards {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("the model gave image %d a non-finite reward (%g) under %s", i, v, res.RewardSpec)
		}
	}
	images, err := encodePNGRows(res.X, append([]int{j.n}, res.SampleShape...))
	if err != nil {
		return nil, err
	}
	noteRun(ctx, j, res)
	return &GenerateResponse{Method: res.Method, Hypernet: j.req.Hypernet, Prompt: j.prompt, Seed: j.seed,
		Images: images, Rewards: res.Rewards, RewardSpec: res.RewardSpec,
		NFEPerImage: res.NFE, Seconds: res.Seconds, BatchRows: res.Batch, BatchReqs: res.Requests}, nil
}

// runRows is the batcher's run function: the pipeline's generation of noise rows.
func (s *Server) runRows(req infer.Request, eps []float32, prompts []int32) (*batch.Rows, error) {
	shape := append([]int{len(prompts)}, s.p.Model().Generator.NoiseShape()...)
	out, err := s.p.Generate(req, tensors.FromFlatDataAndDimensions(eps, shape...), tensors.FromValue(prompts))
	if err != nil {
		return nil, err
	}
	x, err := tensors.CopyFlatData[float32](out.X)
	if err != nil {
		return nil, err
	}
	return &batch.Rows{X: x, SampleShape: out.X.Shape().Dimensions[1:], Rewards: out.Rewards, Method: out.Method,
		RewardSpec: out.RewardSpec, NFE: out.Cost.NFE()}, nil
}

// sampleShape is the shape of one sample, from a base generation of one row.
func (s *Server) sampleShape() ([]int, error) {
	d := 1
	for _, v := range s.p.Model().Generator.NoiseShape() {
		d *= v
	}
	out, err := s.runRows(infer.Request{Method: "base"}, make([]float32, d), []int32{0})
	if err != nil {
		return nil, err
	}
	return out.SampleShape, nil
}

// EncodePNGs encodes samples x [B, H, W, C] (C = 1 grey or 3 RGB, values in [0, 1], clamped) as
// base64 PNGs.
func EncodePNGs(x *tensors.Tensor) ([]string, error) {
	flat, err := tensors.CopyFlatData[float32](x)
	if err != nil {
		return nil, err
	}
	return encodePNGRows(flat, x.Shape().Dimensions)
}

// encodePNGRows is EncodePNGs of row-major samples flat with dimensions dims.
func encodePNGRows(flat []float32, dims []int) ([]string, error) {
	if len(dims) != 4 || (dims[3] != 1 && dims[3] != 3) {
		return nil, fmt.Errorf("the generator's samples %v are not images [B, H, W, 1 or 3]", dims)
	}
	b, h, wd, c := dims[0], dims[1], dims[2], dims[3]
	out := make([]string, b)
	px := func(v float32) uint8 {
		if v != v || v <= 0 {
			return 0
		}
		if v >= 1 {
			return 255
		}
		return uint8(math.Round(float64(v) * 255))
	}
	for i := range b {
		var img image.Image
		base := flat[i*h*wd*c:]
		if c == 1 {
			g := image.NewGray(image.Rect(0, 0, wd, h))
			for k := range h * wd {
				g.Pix[k] = px(base[k])
			}
			img = g
		} else {
			rgb := image.NewRGBA(image.Rect(0, 0, wd, h))
			for k := range h * wd {
				rgb.SetRGBA(k%wd, k/wd, color.RGBA{px(base[3*k]), px(base[3*k+1]), px(base[3*k+2]), 255})
			}
			img = rgb
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return nil, err
		}
		out[i] = base64.StdEncoding.EncodeToString(buf.Bytes())
	}
	return out, nil
}
