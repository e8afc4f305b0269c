// Package blas loads an optimized single-precision and double-precision matrix product (the CBLAS
// routines cblas_sgemm and cblas_dgemm, from OpenBLAS) from a shared library at run time, without cgo,
// so that `go build` needs no C headers and a machine without the library still builds and runs.
//
// Default finds the library once: the file named by $HYPERNOISE_BLAS if set ("off" disables it), else
// the first of Candidates that loads. The caller decides how many products run at once, so a library is
// always set to one thread per call. Debian and Ubuntu ship two builds: libopenblas0-pthread (the
// default) and libopenblas0-serial. The pthread build is preferred: OpenBLAS 0.3.21's serial build has
// no lock around its work-buffer allocator, so two threads calling it at once may share a buffer and
// compute wrong results; the pthread build locks it. Library.Concurrent says which kind was loaded.
package blas

import (
	"errors"
	"fmt"
	"github.com/hypernoise/hypernoise/compute/dnnl"
	"github.com/hypernoise/hypernoise/compute/internal/dynlib"
	"runtime"
	"strings"
	"sync"
)

// EnvLibrary names the environment variable that overrides the library search: a path to a shared
// library exporting cblas_sgemm, or "off" to run without one.
const EnvLibrary = "HYPERNOISE_BLAS"

// InstallHint is the one command that installs the library on Debian or Ubuntu (the build that large
// products may call from several cores at once).
const InstallHint = "sudo apt-get install libopenblas0-pthread libdnnl2"

// Candidates lists, in order of preference, the library files tried when $HYPERNOISE_BLAS is unset.
// The threaded OpenBLAS (safe to call from several threads at once, limited to one thread per call)
// comes first, then the system's default, then the serial build (one call at a time only).
var Candidates = []string{
	"/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
	"/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
	"/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
	"/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
	"/usr/lib64/libopenblas.so.0",
	"/usr/lib/libopenblas.so.0",
	"/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so.0",
	"/usr/lib/aarch64-linux-gnu/openblas-serial/libopenblas.so.0",
	"/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
	"/usr/local/opt/openblas/lib/libopenblas.dylib",
	"libopenblas.so.0", // the dynamic loader's own search path
}

// Library is a loaded BLAS: its file and the product routines it exports.
type Library struct {
	Path    string // the file that was loaded
	Config  string // what openblas_get_config reports (version, kernel, threading), if it exports it
	Threads int    // threads per call (1 unless the library ignores openblas_set_num_threads)
	// Concurrent is true when several threads may call the library at once: an OpenBLAS whose
	// configuration says it was built with threads or with locking. False for the serial build
	// (SINGLE_THREADED without USE_LOCKING) and for a library that does not report its configuration.
	Concurrent bool

	// serial is held around every call into a library that is not Concurrent, so that two graph
	// executions in different goroutines (the server runs several) never enter it at once.
	serial sync.Mutex

	sgemm func(order, transA, transB, m, n, k int32, alpha float32, a *float32, lda int32,
		b *float32, ldb int32, beta float32, c *float32, ldc int32)
	setThreads func(int32) // nil when the library has no openblas_set_num_threads

	// dnnl, when set, computes the float32 products (see dnnl.go); DNNLWhy says why it is not.
	dnnl    *dnnl.Lib
	DNNLWhy string

	dgemm func(order, transA, transB, m, n, k int32, alpha float64, a *float64, lda int32,
		b *float64, ldb int32, beta float64, c *float64, ldc int32)
}

// CBLAS enumerations.
const (
	rowMajor = 101
	noTrans  = 111
	trans    = 112
)

// ErrDisabled is returned by Default when $HYPERNOISE_BLAS is "off".
var ErrDisabled = errors.New("blas: disabled by $" + EnvLibrary + "=off")

var (
	defaultOnce sync.Once
	defaultLib  *Library
	defaultErr  error
)

// Default returns the process-wide library, loading it on first use (see the package comment). The
// error says what was tried and how to install the library.
func Default() (*Library, error) {
	defaultOnce.Do(func() {
		install := ""
		switch runtime.GOOS {
		case "linux":
			install = InstallHint
		case "darwin":
			install = "brew install openblas"
		}
		defaultLib, defaultErr = dynlib.Find(dynlib.Search{Env: EnvLibrary, Candidates: Candidates, Prefix: "blas",
			Name: "OpenBLAS library", Install: install, Off: ErrDisabled}, Open)
		if defaultErr == nil {
			defaultLib.attachDNNL()
		}
	})
	return defaultLib, defaultErr
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major float32 matrices, op(X) = Xᵀ when the
// corresponding trans flag is set; op(A) is m×k, op(B) is k×n, C is m×n, and lda, ldb, ldc are the row
// strides of A, B and C as stored. With beta = 0, C's previous contents are ignored (even NaNs).
// The slices must hold the matrices they describe; Sgemm panics otherwise.
func (l *Library) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int,
	b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 { // the library may not touch a, b; keep the definition C = beta·C
		scaleRows(c, m, n, ldc, beta)
		return
	}
	if l.dnnl != nil {
		l.dnnl.Sgemm(transA, transB, m, n, k, alpha, &a[0], lda, &b[0], ldb, beta, &c[0], ldc)
		runtime.KeepAlive(a)
		runtime.KeepAlive(b)
		runtime.KeepAlive(c)
		return
	}
	if !l.Concurrent {
		l.serial.Lock()
		defer l.serial.Unlock()
	}
	l.sgemm(rowMajor, flag(transA), flag(transB), int32(m), int32(n), int32(k), alpha, &a[0], int32(lda),
		&b[0], int32(ldb), beta, &c[0], int32(ldc))
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(c)
}

// Dgemm is Sgemm for float64 matrices.
func (l *Library) Dgemm(transA, transB bool, m, n, k int, alpha float64, a []float64, lda int,
	b []float64, ldb int, beta float64, c []float64, ldc int) {
	checkGemm(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleRows(c, m, n, ldc, beta)
		return
	}
	if !l.Concurrent {
		l.serial.Lock()
		defer l.serial.Unlock()
	}
	l.dgemm(rowMajor, flag(transA), flag(transB), int32(m), int32(n), int32(k), alpha, &a[0], int32(lda),
		&b[0], int32(ldb), beta, &c[0], int32(ldc))
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	runtime.KeepAlive(c)
}

// scaleRows sets C = beta·C for the m×n matrix C stored with row stride ldc; beta = 0 writes zeros
// (so NaNs in C do not survive), as GEMM's definition requires.
func scaleRows[T float32 | float64](c []T, m, n, ldc int, beta T) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			if beta == 0 {
				row[j] = 0
			} else {
				row[j] *= beta
			}
		}
	}
}

func flag(t bool) int32 {
	if t {
		return trans
	}
	return noTrans
}

// checkGemm panics unless the three row-major matrices fit their slices and the sizes fit a 32-bit int.
func checkGemm(transA, transB bool, m, n, k, lenA, lda, lenB, ldb, lenC, ldc int) {
	const maxInt32 = 1<<31 - 1
	fits := func(rows, cols, ld, length int) bool {
		if rows == 0 || cols == 0 {
			return ld >= max(cols, 1)
		}
		return ld >= cols && (rows-1)*ld+cols <= length
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	switch {
	case m < 0 || n < 0 || k < 0 || m > maxInt32 || n > maxInt32 || k > maxInt32 ||
		lda > maxInt32 || ldb > maxInt32 || ldc > maxInt32:
		panic(fmt.Sprintf("blas: gemm sizes out of range: m=%d n=%d k=%d lda=%d ldb=%d ldc=%d", m, n, k, lda, ldb, ldc))
	case !fits(ar, ac, lda, lenA):
		panic(fmt.Sprintf("blas: gemm A (%dx%d, lda %d) does not fit %d elements", ar, ac, lda, lenA))
	case !fits(br, bc, ldb, lenB):
		panic(fmt.Sprintf("blas: gemm B (%dx%d, ldb %d) does not fit %d elements", br, bc, ldb, lenB))
	case !fits(m, n, ldc, lenC):
		panic(fmt.Sprintf("blas: gemm C (%dx%d, ldc %d) does not fit %d elements", m, n, ldc, lenC))
	}
}

// concurrentConfig says whether an OpenBLAS configuration string (openblas_get_config) describes a
// build that several threads may call at once: one with threading, or a single-threaded one built with
// locking (newer releases print USE_LOCKING). An empty string (not OpenBLAS, or no such routine) is
// treated as unsafe.
func concurrentConfig(config string) bool {
	if strings.TrimSpace(config) == "" {
		return false
	}
	up := strings.ToUpper(config)
	return !strings.Contains(up, "SINGLE_THREADED") || strings.Contains(up, "LOCKING")
}

// String describes the library on one line.
func (l *Library) String() string {
	s := "OpenBLAS " + l.Path
	if l.Config != "" {
		s += " (" + l.Config + ")"
	}
	if l.dnnl != nil {
		s = l.dnnl.String() + " for float32, " + s
	}
	return s
}

// DNNL reports whether float32 products run on oneDNN's dnnl_sgemm (see dnnl.go).
func (l *Library) DNNL() bool { return l.dnnl != nil }

// Concurrent32 is true when several threads may call Sgemm at once: oneDNN always, else Concurrent.
func (l *Library) Concurrent32() bool { return l.dnnl != nil || l.Concurrent }

// SetThreads asks the library to use n threads per call (a no-op for a single-threaded build or a
// library without openblas_set_num_threads) and records what it reports.
func (l *Library) SetThreads(n int) {
	if l.setThreads != nil && n >= 1 {
		l.setThreads(int32(n))
	}
}
