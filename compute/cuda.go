//go:build ((linux && amd64) || darwin) && cgo && !noxla

package compute

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"

	"github.com/hypernoise/hypernoise/compute/pjrt"
)

// CUDAName is the backend name for XLA on an NVIDIA GPU, its PJRT plugin found by compute/pjrt.
const CUDAName = "cuda"

func init() {
	knownBackends = append(knownBackends, backendEntry{
		name:  CUDAName,
		about: "XLA on an NVIDIA GPU; finds jax's CUDA plugin or $" + pjrt.EnvPlugin + " by itself",
		ctor:  newCUDA,
	})
}

// newCUDA starts XLA on the CUDA plugin pjrt finds, after loading its NVIDIA libraries and
// neutralizing go-xla's XLA_FLAGS path. config is passed on as XLA plugin options (e.g. "tf32").
func newCUDA(config string) (backends.Backend, error) {
	p, err := pjrt.DefaultFinder().Find()
	if err != nil {
		return nil, err
	}
	prep := pjrt.Prepare(p)
	spec := p.Path
	if config != "" {
		spec += "," + config
	}
	b, err := xla.New(spec)
	if err != nil {
		detail := ""
		if len(prep.Failed) > 0 {
			detail = fmt.Sprintf(" (%d NVIDIA libraries would not load, e.g. %s)", len(prep.Failed), prep.Failed[0])
		}
		return nil, fmt.Errorf("CUDA plugin %s (found by %s)%s: %w", p.Path, p.Source, detail, err)
	}
	return b, nil
}

// newXLA is GoMLX's XLA backend, except that "xla:cuda" (with or without options) goes through
// newCUDA, so that it too finds the plugin by itself.
func newXLA(config string) (backends.Backend, error) {
	name, opts, _ := strings.Cut(config, ",")
	if name == CUDAName {
		return newCUDA(opts)
	}
	return xla.New(config)
}
