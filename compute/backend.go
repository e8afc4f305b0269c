package compute

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"

	"github.com/hypernoise/hypernoise/compute/mixed"
)

// Environment variables consulted by NewBackend("") in this order.
const (
	EnvBackend      = "HYPERNOISE_BACKEND"
	EnvGoMLXBackend = backends.ConfigEnvVar // "GOMLX_BACKEND"
)

// backendEntry is one backend NewBackend can start.
type backendEntry struct {
	name  string
	about string // shown in error messages
	ctor  func(config string) (backends.Backend, error)
}

// knownBackends lists, in order of preference, the backends this binary can start. The XLA entry is
// added by xla.go when it is compiled in.
var knownBackends = []backendEntry{
	{name: PatchedName, about: "default; pure Go, patched for training", ctor: newPatched},
	{name: StockName, about: "unpatched SimpleGo, for comparisons", ctor: simplego.New},
}

// xlaHint says how to get a working XLA backend.
const xlaHint = `XLA needs a PJRT plugin: set PJRT_PLUGIN_LIBRARY_PATH to a folder holding pjrt_c_api_cpu_plugin.so ` +
	`(or _cuda_), or name the file as "xla:/abs/path/plugin.so", or let GoMLX download it (needs internet)`

// Available lists the backend names NewBackend accepts in this binary: "go" (the default), "go-stock" and,
// when compiled in, "xla". A name may carry a configuration after a colon, e.g. "xla:cuda" or
// "go:parallelism=1". The option dtype=bf16 (any backend: "go:dtype=bf16", "cuda:dtype=bf16") computes
// float32 products and convolutions in bfloat16 (see compute/mixed).
func Available() []string {
	out := make([]string, len(knownBackends))
	for i, e := range knownBackends {
		out[i] = e.name
	}
	return out
}

// availableLine describes the available backends on one line.
func availableLine() string {
	parts := make([]string, 0, len(knownBackends)+1)
	for _, e := range knownBackends {
		parts = append(parts, fmt.Sprintf("%s (%s)", e.name, e.about))
	}
	if xlaMissing != "" {
		parts = append(parts, "xla: "+xlaMissing)
	}
	return strings.Join(parts, ", ")
}

// oneLine folds an error message onto a single line.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	lines := strings.Split(s, "\n")
	kept := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			kept = append(kept, l)
		}
	}
	return strings.Join(kept, "; ")
}

// NewBackend starts a GoMLX backend by name. The name has the form "backend[:config]"; an empty name
// means $HYPERNOISE_BACKEND, else $GOMLX_BACKEND, else "go" (the patched pure-Go backend). See Available
// for the names. An unknown name, or a backend that fails to start (XLA without a PJRT plugin, say), gives
// an error whose message is one line naming the available backends and how to get XLA. NewBackend never
// panics: panics from GoMLX are recovered and returned as errors.
func NewBackend(name string) (backend backends.Backend, err error) {
	source := ""
	if name == "" {
		if v := strings.TrimSpace(os.Getenv(EnvBackend)); v != "" {
			name, source = v, " (from $"+EnvBackend+")"
		} else if v := strings.TrimSpace(os.Getenv(EnvGoMLXBackend)); v != "" {
			name, source = v, " (from $"+EnvGoMLXBackend+")"
		} else {
			name = PatchedName
		}
	}
	backendName, config, _ := strings.Cut(name, ":")
	var entry *backendEntry
	for i := range knownBackends {
		if knownBackends[i].name == backendName {
			entry = &knownBackends[i]
			break
		}
	}
	if entry == nil {
		return nil, fmt.Errorf("compute: unknown backend %q%s; available: %s", backendName, source, availableLine())
	}
	defer func() {
		if r := recover(); r != nil {
			backend = nil
			err = startError(name, source, fmt.Sprint(r))
		}
	}()
	config, dtype := cutDType(config)
	if _, _, err := mixed.Parse(dtype); err != nil {
		return nil, fmt.Errorf("compute: backend %q%s: %v", name, source, err)
	}
	backend, err = entry.ctor(config)
	if err != nil {
		return nil, startError(name, source, err.Error())
	}
	if backend == nil {
		return nil, startError(name, source, "constructor returned no backend")
	}
	return withDType(backend, dtype)
}

func startError(name, source, msg string) error {
	hint := "available: " + availableLine()
	if strings.HasPrefix(name, "cuda") || strings.HasPrefix(name, "xla:cuda") {
		hint = "or use the pure-Go backend \"go\""
	} else if strings.HasPrefix(name, "xla") {
		hint = xlaHint + "; or use the pure-Go backend \"go\""
	}
	return fmt.Errorf("compute: backend %q%s failed to start: %s; %s", name, source, oneLine(msg), hint)
}
