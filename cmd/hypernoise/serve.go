package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/serve"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "serve",
		Summary: "HTTP API and web page: generate with base, best-of-N, ReNO and loaded hypernetworks",
		Run:     runServe,
	})
}

// dirList is a repeatable string flag.
type dirList []string

func (d *dirList) String() string     { return strings.Join(*d, ",") }
func (d *dirList) Set(v string) error { *d = append(*d, v); return nil }

func runServe(env *cli.Env, args []string) error {
	fs := env.FlagSet("serve", `Usage: hypernoise serve [--addr 127.0.0.1:8080] [--hypernet DIR]... [flags]

Serves a model's generator (the embedded one by default, or the one the first --hypernet folder
was trained on) over HTTP: GET / (a web page), POST /v1/images/generations (OpenAI's
images API), POST /v1/generate, GET /v1/models, GET /metrics (Prometheus), GET /healthz. Each
--hypernet DIR loads a trained hypernetwork under its folder's base name. Concurrent requests with
the same settings are batched (--batch-window, --max-batch); --concurrency batches run at once and
--queue requests wait, then 429. With API keys (--api-key-file, $HYPERNOISE_API_KEYS) every path
but / and /healthz needs one; a non-loopback --addr needs keys or --insecure. SIGTERM or Ctrl-C
stops accepting connections and lets the requests in flight finish. See docs/serve.md.`)
	f := addServeFlags(fs)
	modelRef := modelFlag(fs)
	backendName := cli.BackendFlag(fs)
	serveRanges(env, fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	folders, err := openHypernets(f.dirs...)
	if err != nil {
		return err
	}
	var first *infer.Folder
	if len(folders) > 0 {
		first = folders[0] // the model the first hypernetwork was trained on
	}
	m, err := loadModel(*modelRef, first, backend)
	if err != nil {
		return err
	}
	p, err := pipeline.NewPipeline(backend, m, folders...)
	if err != nil {
		return err
	}
	defer p.Close()
	s, err := serve.New(p, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	if *f.warmup {
		runs, sec, err := s.Warmup()
		if err != nil {
			return err
		}
		fmt.Fprint(env.Stderr, warmupLine(runs, sec))
	}
	banner := fmt.Sprintf("serving %s with %d hypernetwork(s)", p.Model().Generator.Name(), len(f.dirs))
	return listenAndDrain(env, s.Handler(), *f.addr, cfg.Timeout, banner)
}

// serveFlags are serve's flags beyond --model and --backend.
type serveFlags struct {
	addr, keyFile, logFormat *string
	dirs, origins, hosts     dirList
	maxN, conc, queue        *int
	bestOf, renoSteps, warm  *int
	maxBatch                 *int
	maxBody                  *int64
	timeout, window          *time.Duration
	insecure, warmup         *bool
}

func addServeFlags(fs *flag.FlagSet) *serveFlags {
	def := serve.DefaultConfig()
	f := &serveFlags{}
	f.addr = fs.String("addr", "127.0.0.1:8080", "listen address")
	fs.Var(&f.dirs, "hypernet", "hypernetwork folder (repeatable)")
	f.maxN = fs.Int("max-n", def.MaxN, "most images per request")
	f.maxBody = fs.Int64("max-body", def.MaxBody, "largest request body in bytes")
	f.timeout = fs.Duration("timeout", def.Timeout, "per-request time limit, queueing included")
	f.conc = fs.Int("concurrency", def.Concurrency, "generations at once")
	f.queue = fs.Int("queue", def.Queue, "requests waiting for a generation slot before 429")
	f.bestOf = fs.Int("best-of", def.BestOfN, "N of the best-of-n method")
	f.renoSteps = fs.Int("reno-steps", def.RenoSteps, "iterations of the reno method")
	f.warm = fs.Int("warm-steps", def.WarmSteps, "ReNO iterations of hypernoise-reno")
	f.window = fs.Duration("batch-window", def.BatchWindow, "how long a request waits for others with the same settings to join its batch")
	f.maxBatch = fs.Int("max-batch", def.MaxBatch, "most images in one batch")
	f.keyFile = fs.String("api-key-file", "", "file of API keys, one per line (also $"+EnvAPIKeys+")")
	f.insecure = fs.Bool("insecure", false, "allow a non-loopback --addr without API keys")
	fs.Var(&f.origins, "allow-origin", "web origin (scheme://host[:port]) allowed to call the API (repeatable)")
	fs.Var(&f.hosts, "allow-host", "host name accepted in the Host header besides IP addresses and localhost (repeatable)")
	f.warmup = fs.Bool("warmup", true, "compile base and each hypernetwork at every batch size before serving")
	f.logFormat = fs.String("log", "text", "one line per request on stderr: text, json or off")
	return f
}

// config is the server's configuration from the flags: the keys read, the listen address checked
// against them, the request logger, the limits validated (a usage error), the folders present.
func (f *serveFlags) config(env *cli.Env) (serve.Config, error) {
	keys, err := loadKeys(*f.keyFile)
	if err != nil {
		return serve.Config{}, err
	}
	listenHost, err := checkListen(*f.addr, len(keys), *f.insecure)
	if err != nil {
		return serve.Config{}, err
	}
	hosts := f.hosts
	if listenHost != "" {
		hosts = append(hosts, listenHost)
	}
	logger, err := requestLogger(*f.logFormat, env.Stderr)
	if err != nil {
		return serve.Config{}, err
	}
	cfg := serve.Config{MaxN: *f.maxN, MaxBody: *f.maxBody, Timeout: *f.timeout, Concurrency: *f.conc, Queue: *f.queue,
		BestOfN: *f.bestOf, RenoSteps: *f.renoSteps, WarmSteps: *f.warm, BatchWindow: *f.window, MaxBatch: *f.maxBatch,
		Keys: keys, AllowOrigins: f.origins, AllowHosts: hosts, Log: logger}
	if err := cfg.Validate(); err != nil {
		return serve.Config{}, cli.Usagef("serve: %v", err)
	}
	for _, d := range f.dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return serve.Config{}, cli.Usagef("serve: --hypernet %s is not a folder", d)
		}
	}
	return cfg, nil
}

// listenAndDrain serves handler on addr until SIGTERM or Ctrl-C, then stops accepting connections
// and lets the requests in flight finish (within timeout + 5 s).
func listenAndDrain(env *cli.Env, handler http.Handler, addr string, timeout time.Duration, banner string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: timeout + 30*time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 16 << 10}
	env.HandleSignals() // serve drains on SIGTERM (below) instead of exiting at once
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(env.Stdout, "%s on http://%s\n", banner, ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintf(env.Stderr, "serve: draining requests in flight ...\n")
	dctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: shutting down: %w", err)
	}
	fmt.Fprintf(env.Stderr, "serve: stopped\n")
	return nil
}
