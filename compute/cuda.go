//go:build ((linux && amd64) || darwin) && cgo && !noxla

package compute

import (
	"fmt"
	"strconv"
	"strings"

	pjrtapi "github.com/gomlx/go-xla/pkg/pjrt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"

	"github.com/hypernoise/hypernoise/compute/pjrt"
)

func init() {
	knownBackends = append(knownBackends, backendEntry{
		name:  CUDAName,
		about: "XLA on an NVIDIA GPU; finds jax's CUDA plugin or $" + pjrt.EnvPlugin + " by itself",
		ctor:  newCUDA,
	})
}

// newCUDA starts XLA on the CUDA plugin pjrt finds, after loading its NVIDIA libraries and
// neutralizing go-xla's XLA_FLAGS path. config holds the CUDA client's options preallocate=true|false
// and memory_fraction=F (XLA preallocates a fraction of the GPU's memory by default; without it the
// memory a process holds is the memory it uses), the rest is passed on as GoMLX's XLA options ("tf32").
func newCUDA(config string) (backends.Backend, error) {
	p, err := pjrt.DefaultFinder().Find()
	if err != nil {
		return nil, err
	}
	prep := pjrt.Prepare(p)
	spec := p.Path
	rest, opts, err := clientOptions(config)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		spec += "," + rest
	}
	b, err := xla.NewWithOptions(spec, opts)
	if err != nil {
		detail := ""
		if len(prep.Failed) > 0 {
			detail = fmt.Sprintf(" (%d NVIDIA libraries would not load, e.g. %s)", len(prep.Failed), prep.Failed[0])
		}
		return nil, fmt.Errorf("CUDA plugin %s (found by %s)%s: %w", p.Path, p.Source, detail, err)
	}
	return b, nil
}

// clientOptions takes the PJRT CUDA client's options out of a comma-separated config.
func clientOptions(config string) (rest string, opts pjrtapi.NamedValuesMap, err error) {
	var kept []string
	for _, part := range strings.Split(config, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "":
		case "preallocate":
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				return "", nil, fmt.Errorf("cuda option preallocate=%q: want true or false", v)
			}
			opts = setOption(opts, k, b)
		case "memory_fraction":
			f, perr := strconv.ParseFloat(v, 32)
			if perr != nil || !(f > 0 && f <= 1) {
				return "", nil, fmt.Errorf("cuda option memory_fraction=%q: want a number in (0, 1]", v)
			}
			opts = setOption(opts, k, float32(f))
		default:
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, ","), opts, nil
}

func setOption(m pjrtapi.NamedValuesMap, k string, v any) pjrtapi.NamedValuesMap {
	if m == nil {
		m = pjrtapi.NamedValuesMap{}
	}
	m[k] = v
	return m
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
