//go:build !(linux || darwin || freebsd)

package blas

import (
	"fmt"
	"runtime"
)

// openDNNL is not supported on this operating system.
func openDNNL(path string) (*dnnlLib, error) {
	return nil, fmt.Errorf("blas: loading %s: not supported on %s", path, runtime.GOOS)
}
