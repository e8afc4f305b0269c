package blas

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// oneDNN's matrix product for float32.
//
// oneDNN (libdnnl, the library PyTorch's CPU build uses for its convolutions) has a row-major
// dnnl_sgemm whose kernels are generated for the running CPU. On this project's 2-core AVX-512 machine,
// one thread, hot caches, it ran the narrow products of the embedded models' convolutions (1568x288 by
// 288x32 .. 1568x576 by 576x64) at 142-162 GFLOP/s against OpenBLAS 0.3.21's 105-123, and the M = 32
// dense products at 107-162 against 85-103. When Default finds it, float32 products go to it; float64
// ones stay on OpenBLAS (oneDNN has no dgemm). The caller cuts products over cores itself, so each
// call runs on one thread: Debian's build uses OpenMP, whose thread count is a per-thread setting, so
// each call sets it to 1 on the OS thread it runs on, locked for the call.

// EnvDNNL names the environment variable that overrides the oneDNN search: a path to libdnnl, or "off"
// to keep every product on OpenBLAS.
const EnvDNNL = "HYPERNOISE_DNNL"

// DNNLInstallHint is the command that installs oneDNN on Debian or Ubuntu.
const DNNLInstallHint = "sudo apt-get install libdnnl2"

// DNNLCandidates lists the oneDNN library files tried, in order, when $HYPERNOISE_DNNL is unset.
var DNNLCandidates = []string{
	"/usr/lib/x86_64-linux-gnu/libdnnl.so.3",
	"/usr/lib/x86_64-linux-gnu/libdnnl.so.2",
	"/usr/lib/aarch64-linux-gnu/libdnnl.so.3",
	"/usr/lib/aarch64-linux-gnu/libdnnl.so.2",
	"libdnnl.so.3",
	"libdnnl.so.2",
}

// dnnlLib is a loaded oneDNN: its file, version and the product routine.
type dnnlLib struct {
	path    string
	version string // "major.minor.patch" and the threading runtime
	sgemm   func(transA, transB byte, m, n, k int64, alpha float32, a *float32, lda int64, b *float32, ldb int64,
		beta float32, c *float32, ldc int64) int32
	ompThreads func(int32) // nil for a build without OpenMP (sequential)
}

// oneDNN's CPU threading runtimes (dnnl_version_t.cpu_runtime).
const (
	dnnlRuntimeSeq = 1
	dnnlRuntimeOMP = 2
)

// sgemm computes C = alpha·op(A)·op(B) + beta·C on one thread (see the file comment).
func (d *dnnlLib) call(transA, transB bool, m, n, k int, alpha float32, a *float32, lda int, b *float32, ldb int,
	beta float32, c *float32, ldc int) {
	runtime.LockOSThread()
	if d.ompThreads != nil {
		d.ompThreads(1)
	}
	st := d.sgemm(tchar(transA), tchar(transB), int64(m), int64(n), int64(k), alpha, a, int64(lda), b, int64(ldb),
		beta, c, int64(ldc))
	runtime.UnlockOSThread()
	if st != 0 {
		// Sizes and strides were checked before the call; oneDNN refuses only what it cannot run.
		panic(fmt.Sprintf("blas: dnnl_sgemm(%c, %c, m=%d n=%d k=%d lda=%d ldb=%d ldc=%d) returned status %d",
			tchar(transA), tchar(transB), m, n, k, lda, ldb, ldc, st))
	}
}

func tchar(t bool) byte {
	if t {
		return 'T'
	}
	return 'N'
}

// findDNNL loads oneDNN from $HYPERNOISE_DNNL or the first of DNNLCandidates that loads; nil and the
// reason when there is none (or it is turned off).
func findDNNL() (*dnnlLib, string) {
	if v := strings.TrimSpace(os.Getenv(EnvDNNL)); v != "" {
		if strings.EqualFold(v, "off") {
			return nil, "turned off by $" + EnvDNNL + "=off"
		}
		d, err := openDNNL(v)
		if err != nil {
			return nil, fmt.Sprintf("%v (from $%s)", err, EnvDNNL)
		}
		return d, ""
	}
	var tried []string
	for _, path := range DNNLCandidates {
		if strings.HasPrefix(path, "/") {
			if _, err := os.Stat(path); err != nil {
				continue
			}
		}
		d, err := openDNNL(path)
		if err == nil {
			return d, ""
		}
		tried = append(tried, err.Error())
	}
	why := "no oneDNN library found"
	if len(tried) > 0 {
		why += " (" + strings.Join(tried, "; ") + ")"
	}
	return nil, why + "; install it with: " + DNNLInstallHint
}
