//go:build !(linux || darwin || freebsd)

package blas

import (
	"fmt"
	"runtime"
)

// Open is not supported on this operating system: the pure-Go matrix product is used instead.
func Open(path string) (*Library, error) {
	return nil, fmt.Errorf("blas: loading %s: not supported on %s", path, runtime.GOOS)
}
