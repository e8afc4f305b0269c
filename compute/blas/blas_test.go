package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// naive computes C = op(A)·op(B) for row-major matrices, in float64.
func naive(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int) []float64 {
	c := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			c[i*n+j] = s
		}
	}
	return c
}

func randSlice(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// TestSgemmMatchesDefinition checks every transpose combination, padded leading dimensions, beta = 0
// over NaN garbage and beta ≠ 0 against the definition C = alpha·op(A)·op(B) + beta·C.
func TestSgemmMatchesDefinition(t *testing.T) {
	lib, err := Default()
	if err != nil {
		t.Skipf("no BLAS library here: %v", err)
	}
	checkSgemmDefinition(t, lib)
}

// checkSgemmDefinition is TestSgemmMatchesDefinition's check on lib.
func checkSgemmDefinition(t *testing.T, lib *Library) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ m, n, k int }{{1, 1, 1}, {3, 5, 7}, {33, 17, 65}, {1, 64, 9}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				lda, ldb := tc.k+2, tc.n+1
				ar, br := tc.m, tc.k
				if ta {
					lda, ar = tc.m+3, tc.k
				}
				if tb {
					ldb, br = tc.k+1, tc.n
				}
				a, b := randSlice(r, ar*lda), randSlice(r, br*ldb)
				want := naive(ta, tb, tc.m, tc.n, tc.k, a, lda, b, ldb)
				c := make([]float32, tc.m*tc.n)
				for i := range c {
					c[i] = float32(math.NaN())
				}
				lib.Sgemm(ta, tb, tc.m, tc.n, tc.k, 1, a, lda, b, ldb, 0, c, tc.n)
				for i := range c {
					if d := math.Abs(float64(c[i]) - want[i]); !(d <= 1e-4*(1+math.Abs(want[i]))) {
						t.Fatalf("%+v transA=%v transB=%v: C[%d]=%g, want %g", tc, ta, tb, i, c[i], want[i])
					}
				}
				// beta = 0.5, alpha = 2: C = 2·AB + 0.5·C.
				prev := append([]float32(nil), c...)
				lib.Sgemm(ta, tb, tc.m, tc.n, tc.k, 2, a, lda, b, ldb, 0.5, c, tc.n)
				for i := range c {
					w := 2*want[i] + 0.5*float64(prev[i])
					if d := math.Abs(float64(c[i]) - w); !(d <= 1e-4*(1+math.Abs(w))) {
						t.Fatalf("%+v alpha/beta: C[%d]=%g, want %g", tc, i, c[i], w)
					}
				}
			}
		}
	}
}

func TestDgemm(t *testing.T) {
	lib, err := Default()
	if err != nil {
		t.Skipf("no BLAS library here: %v", err)
	}
	a := []float64{1, 2, 3, 4, 5, 6} // 2x3
	b := []float64{1, 0, 0, 1, 1, 1} // 3x2
	c := make([]float64, 4)
	lib.Dgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	want := []float64{4, 5, 10, 11}
	for i := range c {
		if c[i] != want[i] {
			t.Fatalf("Dgemm = %v, want %v", c, want)
		}
	}
}

func TestSgemmRejectsShortSlices(t *testing.T) {
	lib, err := Default()
	if err != nil {
		t.Skipf("no BLAS library here: %v", err)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("Sgemm with a 2-element A for a 2x2 product did not panic")
		}
	}()
	lib.Sgemm(false, false, 2, 2, 2, 1, make([]float32, 2), 2, make([]float32, 4), 2, 0, make([]float32, 4), 2)
}

func TestOpenMissingFile(t *testing.T) {
	_, err := Open("/nonexistent/libopenblas.so.0")
	if err == nil {
		t.Fatal("Open of a missing file succeeded")
	}
}

func BenchmarkSgemm(b *testing.B) {
	lib, err := Default()
	if err != nil {
		b.Skip(err)
	}
	for _, s := range []struct{ m, n, k int }{{32, 512, 512}, {1568, 64, 576}, {1024, 1024, 1024}, {32, 32, 32}, {4, 4, 4}} {
		r := rand.New(rand.NewPCG(1, 2))
		a, bb, c := randSlice(r, s.m*s.k), randSlice(r, s.k*s.n), make([]float32, s.m*s.n)
		b.Run(fmt.Sprintf("%dx%dx%d", s.m, s.n, s.k), func(b *testing.B) {
			for b.Loop() {
				lib.Sgemm(false, false, s.m, s.n, s.k, 1, a, s.k, bb, s.n, 0, c, s.n)
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmThreads compares 1 and 2 threads of the threaded OpenBLAS on 1024^3, if installed.
func BenchmarkSgemmThreads(b *testing.B) {
	lib, err := Open("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0")
	if err != nil {
		b.Skip(err)
	}
	const n = 1024
	r := rand.New(rand.NewPCG(1, 2))
	a, bb, c := randSlice(r, n*n), randSlice(r, n*n), make([]float32, n*n)
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", th), func(b *testing.B) {
			lib.SetThreads(th)
			for b.Loop() {
				lib.Sgemm(false, false, n, n, n, 1, a, n, bb, n, 0, c, n)
			}
			b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
	lib.SetThreads(1)
}

// TestConcurrentConfig checks which OpenBLAS configurations count as safe to call from several threads.
func TestConcurrentConfig(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   bool
	}{
		{"OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64", true},
		{"OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY SkylakeX SINGLE_THREADED", false},
		{"OpenBLAS 0.3.28 DYNAMIC_ARCH NO_AFFINITY Haswell SINGLE_THREADED USE_LOCKING", true},
		{"", false},
	} {
		if got := concurrentConfig(tc.config); got != tc.want {
			t.Errorf("concurrentConfig(%q) = %v, want %v", tc.config, got, tc.want)
		}
	}
}

// TestInstalledBuildsConcurrency loads Debian's two OpenBLAS builds, where present, and checks that the
// pthread one is reported safe for concurrent calls and the serial one is not.
func TestInstalledBuildsConcurrency(t *testing.T) {
	found := false
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", true},
		{"/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so.0", false},
	} {
		lib, err := Open(tc.path)
		if err != nil {
			continue
		}
		found = true
		if lib.Concurrent != tc.want || lib.Threads != 1 {
			t.Errorf("%s (%s): Concurrent %v, Threads %d; want %v, 1", tc.path, lib.Config, lib.Concurrent, lib.Threads, tc.want)
		}
	}
	if !found {
		t.Skip("neither Debian OpenBLAS build is installed")
	}
}

// TestSerialBuildConcurrentCallers calls the serial OpenBLAS build (whose buffer allocator takes no
// lock) from several goroutines at once, as concurrent graph executions do, and requires every
// product to equal the one computed alone: Library serializes calls into a non-Concurrent library.
func TestSerialBuildConcurrentCallers(t *testing.T) {
	lib, err := Open("/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so.0")
	if err != nil {
		t.Skip("Debian's serial OpenBLAS is not installed:", err)
	}
	if lib.Concurrent {
		t.Fatalf("serial build reported as concurrent (%s)", lib.Config)
	}
	const n = 400
	r := rand.New(rand.NewPCG(3, 4))
	a, b := randSlice(r, n*n), randSlice(r, n*n)
	checkConcurrentCallers(t, 8, 6, n*n, func(c []float32) string {
		lib.Sgemm(false, true, n, n, n, 1, a, n, b, n, 0, c, n)
		return ""
	})
}

// checkConcurrentCallers runs call (which writes its result into c and returns a complaint, or "")
// once alone and then reps times on each of workers goroutines at once, each on its own locked OS
// thread, and reports every complaint and every result that differs from the one computed alone.
func checkConcurrentCallers(t *testing.T, workers, reps, size int, call func(c []float32) string) {
	t.Helper()
	want := make([]float32, size)
	runtime.LockOSThread()
	msg := call(want)
	runtime.UnlockOSThread()
	if msg != "" {
		t.Fatal(msg)
	}
	errs := make(chan string, workers*reps*2)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			c := make([]float32, size)
			for i := range reps {
				if msg := call(c); msg != "" {
					errs <- fmt.Sprintf("worker %d rep %d: %s", w, i, msg)
				}
				for j := range c {
					if c[j] != want[j] {
						errs <- fmt.Sprintf("worker %d rep %d: C[%d] = %g, alone %g", w, i, j, c[j], want[j])
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestGemmEmptyInnerDimension checks C = beta·C when k = 0 (the library is not called): beta = 0
// clears C, NaNs included, and beta = 2 doubles it, leaving the padding of a strided C untouched.
func TestGemmEmptyInnerDimension(t *testing.T) {
	lib, err := Default()
	if err != nil {
		t.Skip("no OpenBLAS:", err)
	}
	nan := float32(math.NaN())
	c := []float32{nan, 1, 9, 2, 3, 9} // 2x2 with row stride 3
	lib.Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0, c, 3)
	if want := []float32{0, 0, 9, 0, 0, 9}; !slices.Equal(c, want) {
		t.Errorf("beta 0: C = %v, want %v", c, want)
	}
	d := []float64{1, 2, 9, 3, 4, 9}
	lib.Dgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 2, d, 3)
	if want := []float64{2, 4, 9, 6, 8, 9}; !slices.Equal(d, want) {
		t.Errorf("beta 2: C = %v, want %v", d, want)
	}
}
