package main

import (
	"context"
	"errors"
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
	def := serve.DefaultConfig()
	fs := env.FlagSet("serve", `Usage: hypernoise serve [--addr 127.0.0.1:8080] [--hypernet DIR]... [flags]

Serves a model's generator (the embedded one by default, or the one the first --hypernet folder
was trained on) over HTTP: GET / (a web page), POST /v1/generate, GET /v1/models,
GET /healthz. Each --hypernet DIR loads a trained hypernetwork under its folder's base name.
Requests beyond --concurrency wait in a queue of --queue places, then get 429; SIGTERM or
Ctrl-C stops accepting connections and lets the requests in flight finish.`)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	var dirs dirList
	fs.Var(&dirs, "hypernet", "hypernetwork folder (repeatable)")
	maxN := fs.Int("max-n", def.MaxN, "most images per request")
	maxBody := fs.Int64("max-body", def.MaxBody, "largest request body in bytes")
	timeout := fs.Duration("timeout", def.Timeout, "per-request time limit, queueing included")
	conc := fs.Int("concurrency", def.Concurrency, "generations at once")
	queue := fs.Int("queue", def.Queue, "requests waiting for a generation slot before 429")
	bestOf := fs.Int("best-of", def.BestOfN, "N of the best-of-n method")
	renoSteps := fs.Int("reno-steps", def.RenoSteps, "iterations of the reno method")
	warm := fs.Int("warm-steps", def.WarmSteps, "ReNO iterations of hypernoise-reno")
	modelRef := modelFlag(fs)
	backendName := cli.BackendFlag(fs)
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	cfg := serve.Config{MaxN: *maxN, MaxBody: *maxBody, Timeout: *timeout, Concurrency: *conc, Queue: *queue,
		BestOfN: *bestOf, RenoSteps: *renoSteps, WarmSteps: *warm}
	if err := cfg.Validate(); err != nil {
		return cli.Usagef("serve: %v", err)
	}
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return cli.Usagef("serve: --hypernet %s is not a folder", d)
		}
	}
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	folders, err := openHypernets(dirs...)
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
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: cfg.Timeout + 30*time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 16 << 10}
	env.HandleSignals() // serve drains on SIGTERM (below) instead of exiting at once
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(env.Stdout, "serving %s with %d hypernetwork(s) on http://%s\n", p.Model().Generator.Name(), len(dirs), ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintf(env.Stderr, "serve: draining requests in flight ...\n")
	dctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: shutting down: %w", err)
	}
	fmt.Fprintf(env.Stderr, "serve: stopped\n")
	return nil
}
