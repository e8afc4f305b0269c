//go:build linux || darwin || freebsd

package blas

import (
	"fmt"
	"strings"

	"github.com/ebitengine/purego"
)

// Open loads the shared library at path and binds cblas_sgemm and cblas_dgemm. A threaded OpenBLAS is
// set to one thread per call. It returns an error, never panics, when the file is missing or lacks
// the routines.
func Open(path string) (lib *Library, err error) {
	defer func() {
		if r := recover(); r != nil {
			lib, err = nil, fmt.Errorf("blas: %s: %v", path, r)
		}
	}()
	handle, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("blas: cannot load %s: %v", path, err)
	}
	for _, sym := range []string{"cblas_sgemm", "cblas_dgemm"} {
		if _, err := purego.Dlsym(handle, sym); err != nil {
			_ = purego.Dlclose(handle)
			return nil, fmt.Errorf("blas: %s does not export %s", path, sym)
		}
	}
	lib = &Library{Path: path, Threads: 1}
	purego.RegisterLibFunc(&lib.sgemm, handle, "cblas_sgemm")
	purego.RegisterLibFunc(&lib.dgemm, handle, "cblas_dgemm")
	if _, err := purego.Dlsym(handle, "openblas_set_num_threads"); err == nil {
		purego.RegisterLibFunc(&lib.setThreads, handle, "openblas_set_num_threads")
		lib.setThreads(1)
	}
	if _, err := purego.Dlsym(handle, "openblas_get_num_threads"); err == nil {
		var getThreads func() int32
		purego.RegisterLibFunc(&getThreads, handle, "openblas_get_num_threads")
		lib.Threads = int(getThreads())
	}
	if _, err := purego.Dlsym(handle, "openblas_get_config"); err == nil {
		var getConfig func() string // purego copies the returned C string
		purego.RegisterLibFunc(&getConfig, handle, "openblas_get_config")
		lib.Config = strings.TrimSpace(getConfig())
	}
	lib.Concurrent = concurrentConfig(lib.Config)
	return lib, nil
}
