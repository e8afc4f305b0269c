// Package dnnl loads oneDNN (libdnnl, the library PyTorch's CPU build runs its convolutions and many
// of its products on) from a shared library at run time, without cgo, and runs two of its operations
// on float32 data: the row-major matrix product dnnl_sgemm and the 2-D convolution primitive (NHWC
// activations, HWIO kernel). Both run on one thread per call: the caller spreads work over cores
// itself.
//
// On this project's 2-core AVX-512 machine, one thread, hot caches: dnnl_sgemm ran the narrow
// products of the embedded models' convolutions (1568x288 by 288x32 .. 1568x576 by 576x64) at 142-162
// GFLOP/s against OpenBLAS 0.3.21's 105-123, and the convolution primitive (its brgconv kernels, the
// kernel reordered to oneDNN's blocked layout on each call) ran the 3x3 convolutions of the v2 step at
// 135-199 GFLOP/s, where im2col followed by a product reached about 85 in the step.
//
// Default finds the library once: the file named by $HYPERNOISE_DNNL if set ("off" disables it), else
// the first of Candidates that loads. Only oneDNN 2.x (the C API whose operation descriptors are
// structures, Debian 12's 2.6) with the sequential or OpenMP threading runtime is used; anything else
// is reported as not found, and the callers keep their other paths.
package dnnl

import (
	"errors"
	"fmt"
	"github.com/hypernoise/hypernoise/compute/internal/dynlib"
	"runtime"
	"sync"
)

// EnvLibrary names the environment variable that overrides the search: a path to libdnnl, or "off".
const EnvLibrary = "HYPERNOISE_DNNL"

// InstallHint is the command that installs oneDNN on Debian or Ubuntu.
const InstallHint = "sudo apt-get install libdnnl2"

// Candidates lists the library files tried, in order, when $HYPERNOISE_DNNL is unset.
var Candidates = []string{
	"/usr/lib/x86_64-linux-gnu/libdnnl.so.2",
	"/usr/lib/aarch64-linux-gnu/libdnnl.so.2",
	"libdnnl.so.2",
}

// Lib is a loaded oneDNN.
type Lib struct {
	Path    string // the file that was loaded
	Version string // "major.minor.patch, runtime"
	api     *api
	engine  uintptr // the CPU engine

	convMu sync.Mutex
	convs  map[convKey]*convPrim // nil entry: oneDNN does not run it
	packed packedCache           // kernels kept reordered between calls (see Kernel)
	// streams holds idle execution streams (one per concurrent call).
	streams chan uintptr
}

// ErrDisabled is returned by Default when $HYPERNOISE_DNNL is "off".
var ErrDisabled = errors.New("dnnl: turned off by $" + EnvLibrary + "=off")

var (
	defaultOnce sync.Once
	defaultLib  *Lib
	defaultErr  error
)

// Default returns the process-wide library, loading it on first use. The error says what was tried
// and how to install it.
func Default() (*Lib, error) {
	defaultOnce.Do(func() {
		defaultLib, defaultErr = dynlib.Find(dynlib.Search{Env: EnvLibrary, Candidates: Candidates, Prefix: "dnnl",
			Name: "oneDNN library", Install: InstallHint, Off: ErrDisabled}, Open)
	})
	return defaultLib, defaultErr
}

// String describes the library on one line.
func (l *Lib) String() string { return "oneDNN " + l.Path + " (" + l.Version + ")" }

// oneThread runs fn on the calling OS thread with oneDNN's OpenMP thread count set to one there (a
// per-thread setting), the thread locked for the call.
func (l *Lib) oneThread(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if l.api.ompSetNumThreads != nil {
		l.api.ompSetNumThreads(1)
	}
	fn()
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32 matrices (op(X) = Xᵀ when the
// flag is set; op(A) m×k, op(B) k×n, C m×n; lda, ldb, ldc the row strides as stored) on one thread.
// The caller checks that the slices hold the matrices and that k > 0; Sgemm panics if oneDNN
// refuses the call.
func (l *Lib) Sgemm(transA, transB bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int,
	beta float32, c *float32, ldc int) {
	var st int32
	l.oneThread(func() {
		st = l.api.sgemm(tchar(transA), tchar(transB), int64(m), int64(n), int64(k), alpha, a, int64(lda), b,
			int64(ldb), beta, c, int64(ldc))
	})
	if st != 0 {
		panic(fmt.Sprintf("dnnl: dnnl_sgemm(%c, %c, m=%d n=%d k=%d lda=%d ldb=%d ldc=%d) returned status %d",
			tchar(transA), tchar(transB), m, n, k, lda, ldb, ldc, st))
	}
}

func tchar(t bool) byte {
	if t {
		return 'T'
	}
	return 'N'
}

// stream returns an idle execution stream, creating one if there is none.
func (l *Lib) stream() (uintptr, error) {
	select {
	case s := <-l.streams:
		return s, nil
	default:
	}
	var s uintptr
	if st := l.api.streamCreate(&s, l.engine, streamDefaultFlags); st != 0 {
		return 0, fmt.Errorf("dnnl: dnnl_stream_create returned status %d", st)
	}
	return s, nil
}

// putStream returns s to the idle streams, or destroys it when there are enough.
func (l *Lib) putStream(s uintptr) {
	select {
	case l.streams <- s:
	default:
		l.api.streamDestroy(s)
	}
}
