//go:build linux || darwin || freebsd

package blas

import (
	"fmt"
	"github.com/hypernoise/hypernoise/compute/dnnl"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/ebitengine/purego"
)

// dnnlOrSkip returns OpenBLAS with oneDNN attached, skipping when either is not installed (CI installs
// both) and failing when oneDNN's file is there but does not load.
func dnnlOrSkip(t *testing.T) *Library {
	t.Helper()
	lib, err := Default()
	if err != nil {
		t.Skip("no OpenBLAS:", err)
	}
	present := false
	for _, p := range dnnl.Candidates {
		if _, err := os.Stat(p); err == nil {
			present = true
		}
	}
	if !present {
		t.Skip("oneDNN (libdnnl2) is not installed")
	}
	if os.Getenv(dnnl.EnvLibrary) != "" {
		t.Skipf("$%s is set", dnnl.EnvLibrary)
	}
	if !lib.DNNL() {
		t.Fatalf("libdnnl is installed but float32 products are not on it: %s", lib.DNNLWhy)
	}
	return lib
}

// TestDNNLInUse checks that with oneDNN installed the default library runs float32 products on it
// (and says so) and that they match the definition, every transpose, stride, alpha and beta.
func TestDNNLInUse(t *testing.T) {
	lib := dnnlOrSkip(t)
	if !strings.Contains(lib.String(), "oneDNN") || !lib.Concurrent32() {
		t.Errorf("library %q, Concurrent32 %v: want oneDNN named and concurrent float32 calls", lib, lib.Concurrent32())
	}
	checkSgemmDefinition(t, lib)
}

// TestDNNLOneThreadPerCall checks that a call leaves OpenMP's thread count at one on the OS thread it
// ran on (the caller spreads products over cores itself), and that concurrent callers each get the
// product computed alone.
func TestDNNLOneThreadPerCall(t *testing.T) {
	lib := dnnlOrSkip(t)
	if !strings.Contains(lib.dnnl.Version, "OpenMP") {
		t.Skip("oneDNN build without OpenMP")
	}
	h, err := purego.Dlopen(lib.dnnl.Path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	var maxThreads func() int32
	purego.RegisterLibFunc(&maxThreads, h, "omp_get_max_threads")
	const n = 200
	r := rand.New(rand.NewPCG(5, 6))
	a, b := randSlice(r, n*n), randSlice(r, n*n)
	// Each worker's OS thread is locked, so omp_get_max_threads reads the setting of the thread the
	// call ran on.
	checkConcurrentCallers(t, 6, 5, n*n, func(c []float32) string {
		lib.Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		if got := maxThreads(); got != 1 {
			return fmt.Sprintf("omp_get_max_threads() = %d after a call, want 1", got)
		}
		return ""
	})
}
