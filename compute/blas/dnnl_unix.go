//go:build linux || darwin || freebsd

package blas

import (
	"fmt"

	"github.com/ebitengine/purego"
)

// dnnlVersion is oneDNN's dnnl_version_t.
type dnnlVersion struct {
	Major, Minor, Patch int32
	Hash                *byte
	CPURuntime          uint32
	GPURuntime          uint32
}

// openDNNL loads oneDNN at path and binds dnnl_sgemm; it refuses a build whose threads it cannot
// limit to one per call (one with a runtime other than sequential or OpenMP).
func openDNNL(path string) (d *dnnlLib, err error) {
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("blas: %s: %v", path, r)
		}
	}()
	handle, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("blas: cannot load %s: %v", path, err)
	}
	for _, sym := range []string{"dnnl_sgemm", "dnnl_version"} {
		if _, err := purego.Dlsym(handle, sym); err != nil {
			_ = purego.Dlclose(handle)
			return nil, fmt.Errorf("blas: %s does not export %s", path, sym)
		}
	}
	var version func() *dnnlVersion
	purego.RegisterLibFunc(&version, handle, "dnnl_version")
	v := version()
	if v == nil {
		return nil, fmt.Errorf("blas: %s: dnnl_version returned nothing", path)
	}
	d = &dnnlLib{path: path}
	switch v.CPURuntime {
	case dnnlRuntimeSeq:
		d.version = fmt.Sprintf("%d.%d.%d, sequential", v.Major, v.Minor, v.Patch)
	case dnnlRuntimeOMP:
		// Found among the library's own dependencies (libgomp for Debian's build).
		if _, err := purego.Dlsym(handle, "omp_set_num_threads"); err != nil {
			return nil, fmt.Errorf("blas: %s uses OpenMP but omp_set_num_threads is not reachable", path)
		}
		purego.RegisterLibFunc(&d.ompThreads, handle, "omp_set_num_threads")
		d.version = fmt.Sprintf("%d.%d.%d, OpenMP", v.Major, v.Minor, v.Patch)
	default:
		return nil, fmt.Errorf("blas: %s uses threading runtime %d, which cannot be set to one thread per call", path, v.CPURuntime)
	}
	purego.RegisterLibFunc(&d.sgemm, handle, "dnnl_sgemm")
	return d, nil
}
