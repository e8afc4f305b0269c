package compute

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/backends"

	"github.com/hypernoise/hypernoise/compute/mixed"
)

// DTypeOption is the backend option that selects the compute type of products and convolutions,
// e.g. "go:dtype=bf16" or "cuda:dtype=bf16" (see compute/mixed). "dtype=f32" is the default.
const DTypeOption = "dtype"

// cutDType removes a dtype=... option from a backend's comma-separated config and returns the rest
// and the value ("" if absent).
func cutDType(config string) (rest, dtype string) {
	parts := strings.Split(config, ",")
	kept := parts[:0]
	for _, p := range parts {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), DTypeOption+"="); ok {
			dtype = v
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, ","), dtype
}

// withDType wraps backend for dtype ("", "f32": unchanged; "bf16": compute/mixed).
func withDType(backend backends.Backend, dtype string) (backends.Backend, error) {
	narrow, ok, err := mixed.Parse(dtype)
	if err != nil {
		backend.Finalize()
		return nil, err
	}
	if !ok {
		return backend, nil
	}
	return mixed.Wrap(backend, narrow), nil
}

// WithDType returns the backend name that NewBackend starts with products and convolutions in dtype:
// name (or, when empty, the backend the environment names, else "go") with the option dtype=<dtype>
// added to its configuration. The default ("", "f32", "float32") returns name unchanged.
func WithDType(name, dtype string) string {
	if _, narrow, err := mixed.Parse(dtype); err == nil && !narrow {
		return name
	}
	if name == "" {
		name = strings.TrimSpace(os.Getenv(EnvBackend))
	}
	if name == "" {
		name = strings.TrimSpace(os.Getenv(EnvGoMLXBackend))
	}
	if name == "" {
		name = PatchedName
	}
	base, config, _ := strings.Cut(name, ":")
	config, _ = cutDType(config)
	if config != "" {
		config += ","
	}
	return fmt.Sprintf("%s:%s%s=%s", base, config, DTypeOption, dtype)
}
