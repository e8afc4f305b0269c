//go:build !(linux || darwin || freebsd)

package dnnl

import (
	"fmt"
	"runtime"
)

// Open is not supported on this operating system.
func Open(path string) (*Lib, error) {
	return nil, fmt.Errorf("dnnl: loading %s: not supported on %s", path, runtime.GOOS)
}
