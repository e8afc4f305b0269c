package doctor

import (
	"path/filepath"

	"github.com/hypernoise/hypernoise/compute/pjrt"
)

// CUDA says whether `--backend cuda` can find what it needs: a PJRT CUDA plugin, the NVIDIA libraries
// beside it, and an NVIDIA device.
type CUDA struct {
	Plugin  *pjrt.Plugin `json:"plugin,omitempty"`
	Devices []string     `json:"devices,omitempty"` // /dev/nvidia[0-9]* device files
	Problem string       `json:"problem,omitempty"`
	Fix     string       `json:"fix,omitempty"` // the one line that fixes Problem
}

// deviceGlob matches the GPU device files the NVIDIA driver creates.
var deviceGlob = "/dev/nvidia[0-9]*"

// checkCUDA looks for the plugin with f (nothing is loaded) and for NVIDIA devices.
func checkCUDA(f pjrt.Finder) CUDA {
	var c CUDA
	c.Devices, _ = filepath.Glob(deviceGlob)
	p, err := f.Find()
	switch {
	case err != nil:
		c.Problem, c.Fix = err.Error(), pjrt.FixLine
	case len(p.LibDirs) == 0:
		c.Plugin = p
		c.Problem = "no nvidia/ folder of NVIDIA libraries beside the plugin; the plugin will need them on the system's loader path"
		c.Fix = `pip install -U "jax[cuda12]" (it installs them beside its plugin)`
	default:
		c.Plugin = p
	}
	if c.Problem == "" && len(c.Devices) == 0 {
		c.Problem = "plugin found but no NVIDIA device (" + deviceGlob + "): --backend cuda needs a GPU and its driver"
		c.Fix = "run on a machine with an NVIDIA GPU, or use --backend go"
	}
	return c
}
