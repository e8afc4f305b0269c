package compute

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/hypernoise/hypernoise/compute/blas"
)

// blasInstalled reports whether a BLAS library file this package would load is on the machine.
func blasInstalled() bool {
	if v := os.Getenv(blas.EnvLibrary); v != "" {
		if strings.EqualFold(v, "off") {
			return false
		}
		_, err := os.Stat(v)
		return err == nil
	}
	for _, p := range blas.Candidates {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// TestFastPathInUse fails when OpenBLAS is installed but the patched backend's matrix products do not
// run on it (a changed GoMLX internal, a failed self-test, a broken loader). Without the library it
// checks that the reason names the command that installs it.
func TestFastPathInUse(t *testing.T) {
	info := MatmulPath()
	if !blasInstalled() {
		if info.Fast {
			t.Fatalf("no BLAS library installed, yet MatmulPath says %+v", info)
		}
		if want := blas.InstallHint; !strings.Contains(info.Reason, want) &&
			!strings.Contains(info.Reason, blas.EnvLibrary) {
			t.Errorf("reason %q neither says how to install the library (%q) nor that $%s turned it off",
				info.Reason, want, blas.EnvLibrary)
		}
		t.Skipf("OpenBLAS not installed (%s); the pure-Go path is in use", info.Reason)
	}
	if !info.Fast {
		t.Fatalf("OpenBLAS is installed but the matrix product is %q: %s", info.Path, info.Reason)
	}
	before := MatmulStats()
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	y := tensors.FromFlatDataAndDimensions([]float32{1, 0, 0, 1, 1, 1}, 3, 2)
	got := eval(t, testBackend(t), func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{graph.Dot(in[0], in[1])}
	}, x, y)[0]
	want := []float64{4, 5, 10, 11}
	if maxAbsDiff(got, want) != 0 {
		t.Fatalf("x·y = %v, want %v", got, want)
	}
	after := MatmulStats()
	if after.Fast != before.Fast+1 || after.Fallback != before.Fallback {
		t.Fatalf("the product did not run on the GEMM: counters %+v -> %+v", before, after)
	}
}

// TestFastDotMatchesStock compares float32 products of every layout of matmulCases, and a few larger
// ones, between the patched backend and unpatched SimpleGo.
func TestFastDotMatchesStock(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	cases := append([]gradCase{}, matmulCases...)
	cases = append(cases,
		gradCase{"dense/large", dg([]int{1}, nil, []int{0}, nil), [][]int{{33, 130}, {130, 70}}},
		gradCase{"dense/transposed-weights", dg([]int{1}, nil, []int{1}, nil), [][]int{{33, 130}, {70, 130}}},
		gradCase{"attention-scores", dg([]int{3}, []int{0, 2}, []int{3}, []int{0, 2}), [][]int{{2, 9, 3, 8}, {2, 7, 3, 8}}},
	)
	before := MatmulStats()
	for _, c := range cases {
		in32 := func() []*tensors.Tensor { // fresh per backend: a tensor stays attached to where it ran
			in := c.inputs(5)
			for i := range in {
				in[i] = toFloat32(in[i])
			}
			return in
		}
		fn := func(nodes []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(nodes)} }
		got := eval(t, fast, fn, in32()...)[0]
		want := eval(t, stock, fn, in32()...)[0]
		for i := range want {
			if d := math.Abs(got[i] - want[i]); d > 1e-4*(1+math.Abs(want[i])) {
				t.Errorf("%s: entry %d = %g, SimpleGo gives %g", c.name, i, got[i], want[i])
				break
			}
		}
	}
	if after := MatmulStats(); MatmulPath().Fast && after.Fallback != before.Fallback {
		t.Errorf("float32 products fell back to SimpleGo's kernel: %+v", after)
	}
}

func toFloat32(x *tensors.Tensor) *tensors.Tensor {
	flat := tensors.MustCopyFlatData[float64](x)
	f32 := make([]float32, len(flat))
	for i, v := range flat {
		f32[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(f32, x.Shape().Dimensions...)
}

// TestTransposeInto checks the axis permutation used for operands in an unusual order.
func TestTransposeInto(t *testing.T) {
	dims := []int{2, 3, 4}
	src := make([]int, 24)
	for i := range src {
		src[i] = i
	}
	dst := make([]int, 24)
	perm := []int{2, 0, 1} // dst[k,i,j] = src[i,j,k]
	transposeInto(dst, src, dims, perm)
	for i := range 2 {
		for j := range 3 {
			for k := range 4 {
				if got, want := dst[k*6+i*3+j], src[i*12+j*4+k]; got != want {
					t.Fatalf("dst[%d,%d,%d] = %d, want %d", k, i, j, got, want)
				}
			}
		}
	}
}

// TestTransposeTiled checks transposeInto against the definition on transposes that take the tiled
// path (src's last axis moved away from dst's last, both at least a tile long), with sizes that are
// not multiples of the tile, leading axes, unit axes and sizes large enough to be cut over the cores,
// and on ones with short inner runs (the double-loop path).
func TestTransposeTiled(t *testing.T) {
	cases := []struct{ dims, perm []int }{
		{[]int{32, 7, 7, 32}, []int{3, 1, 2, 0}}, // a conv kernel gradient's channel/batch swap
		{[]int{17, 33}, []int{1, 0}},
		{[]int{3, 40, 1, 19}, []int{0, 3, 2, 1}},
		{[]int{5, 18, 4, 21}, []int{2, 3, 0, 1}},
		{[]int{2, 3, 20, 5, 16}, []int{4, 1, 0, 3, 2}},
		{[]int{300, 260}, []int{1, 0}}, // cut over the cores
		// Short inner runs (the double-loop path): pixel shuffles, strided short runs, rank 2.
		{[]int{32, 14, 14, 2, 2, 1}, []int{0, 1, 3, 2, 4, 5}},
		{[]int{5, 7, 3, 2}, []int{0, 2, 1, 3}},
		{[]int{4, 3, 5}, []int{1, 0, 2}},
		{[]int{3, 2}, []int{1, 0}},
		{[]int{6, 5, 4}, []int{2, 1, 0}},
	}
	for _, c := range cases {
		n := 1
		for _, d := range c.dims {
			n *= d
		}
		src := make([]int32, n)
		for i := range src {
			src[i] = int32(i)
		}
		dst := make([]int32, n)
		transposeInto(dst, src, c.dims, c.perm)
		rank := len(c.dims)
		srcStrides := make([]int, rank)
		st := 1
		for a := rank - 1; a >= 0; a-- {
			srcStrides[a] = st
			st *= c.dims[a]
		}
		idx := make([]int, rank) // dst multi-index
		for o := range n {
			pos := 0
			for i, a := range c.perm {
				pos += idx[i] * srcStrides[a]
			}
			if dst[o] != src[pos] {
				t.Fatalf("dims %v perm %v: dst entry %d (index %v) = %d, want %d", c.dims, c.perm, o, idx, dst[o], src[pos])
			}
			for a := rank - 1; a >= 0; a-- {
				idx[a]++
				if idx[a] < c.dims[c.perm[a]] {
					break
				}
				idx[a] = 0
			}
		}
	}
}

// requireConcurrentGemm skips unless the fast path is on with a library that may be called from several
// threads at once (what the split products need).
func requireConcurrentGemm(t *testing.T) {
	t.Helper()
	if !MatmulPath().Fast {
		t.Skip("no OpenBLAS: products run on SimpleGo's kernel")
	}
	if !gemm.Concurrent {
		t.Skipf("%s may not be called from several threads; products are not split", gemm)
	}
}

// TestGemmSplitBitIdentical checks that a float32 product cut into bands of rows or columns of C, each
// band at least bitSafeMinMNK (gemmParts cuts only into larger ones), computed on several goroutines, equals the single call bit for bit, for every
// transpose combination and sizes that do not divide evenly. float64 (which the backend does not cut:
// OpenBLAS's dgemm rounds differently on a band) is checked to 1e-13 relative.
func TestGemmSplitBitIdentical(t *testing.T) {
	requireConcurrentGemm(t)
	r := rand.New(rand.NewPCG(3, 4))
	sizes := []struct{ m, n, k int }{{256, 96, 300}, {33, 700, 129}, {517, 515, 64}, {40, 48, 1000},
		{32, 512, 512}, {1568, 64, 576}, {32, 288, 256}, {64, 256, 128}}
	for range 12 { // random sizes around the cutoffs of OpenBLAS's small and direct kernels
		sizes = append(sizes, struct{ m, n, k int }{8 + r.IntN(600), 8 + r.IntN(600), 8 + r.IntN(400)})
	}
	checked := 0
	for _, s := range sizes {
		for _, parts := range []int{2, 3} {
			if minBand(max(s.m, s.n), parts, splitAlign)*min(s.m, s.n)*s.k < bitSafeMinMNK {
				continue // gemmParts never cuts this product this way (it needs splitMinPartMNK >= this)
			}
			checked++
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					lda, ldb := s.k, s.n
					if ta {
						lda = s.m
					}
					if tb {
						ldb = s.k
					}
					a32, b32 := make([]float32, s.m*s.k), make([]float32, s.k*s.n)
					a64, b64 := make([]float64, s.m*s.k), make([]float64, s.k*s.n)
					for i := range a32 {
						a32[i] = float32(r.NormFloat64())
						a64[i] = float64(a32[i])
					}
					for i := range b32 {
						b32[i] = float32(r.NormFloat64())
						b64[i] = float64(b32[i])
					}
					one32, split32 := make([]float32, s.m*s.n), make([]float32, s.m*s.n)
					gemmCall(ta, tb, s.m, s.n, s.k, a32, lda, b32, ldb, one32, s.n)
					gemmSplit(parts, ta, tb, s.m, s.n, s.k, a32, lda, b32, ldb, split32, s.n)
					one64, split64 := make([]float64, s.m*s.n), make([]float64, s.m*s.n)
					gemmCall(ta, tb, s.m, s.n, s.k, a64, lda, b64, ldb, one64, s.n)
					gemmSplit(parts, ta, tb, s.m, s.n, s.k, a64, lda, b64, ldb, split64, s.n)
					for i := range one32 {
						if math.Float32bits(one32[i]) != math.Float32bits(split32[i]) {
							t.Errorf("f32 %dx%dx%d transA=%v transB=%v parts=%d: entry %d: split %g, single call %g",
								s.m, s.n, s.k, ta, tb, parts, i, split32[i], one32[i])
							break
						}
					}
					for i := range one64 {
						if d := math.Abs(one64[i] - split64[i]); d > 1e-13*(1+math.Abs(one64[i])) {
							t.Errorf("f64 %dx%dx%d transA=%v transB=%v parts=%d: entry %d: split %g, single call %g",
								s.m, s.n, s.k, ta, tb, parts, i, split64[i], one64[i])
							break
						}
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d size/part combinations large enough to cut", checked)
	}
}

// TestSplitPathInUse runs a large dense product and a large batched one on the patched backend and
// checks that they were spread over goroutines (when GOMAXPROCS > 1) and equal, bit for bit, one GEMM
// call per batch entry on one core.
func TestSplitPathInUse(t *testing.T) {
	requireConcurrentGemm(t)
	for _, tc := range []struct {
		name        string
		lhs, rhs    []int
		nb, m, n, k int
	}{
		{"dense", []int{320, 384}, []int{384, 256}, 1, 320, 256, 384},
		{"batched", []int{6, 128, 256}, []int{6, 256, 96}, 6, 128, 96, 256},
	} {
		x, y := toFloat32(randTensor(1, tc.lhs...)), toFloat32(randTensor(2, tc.rhs...))
		a, b := tensors.MustCopyFlatData[float32](x), tensors.MustCopyFlatData[float32](y)
		before := MatmulStats()
		got := eval(t, testBackend(t), func(in []*graph.Node) []*graph.Node {
			if tc.nb == 1 {
				return []*graph.Node{graph.Dot(in[0], in[1])}
			}
			return []*graph.Node{graph.DotGeneral(in[0], []int{2}, []int{0}, in[1], []int{1}, []int{0})}
		}, x, y)[0]
		after := MatmulStats()
		wantSplit := int64(0)
		if gemmParts[float32](tc.nb, tc.m, tc.n, tc.k) > 1 {
			wantSplit = 1
		}
		if runtime.GOMAXPROCS(0) > 1 && wantSplit == 0 {
			t.Errorf("%s: a %d-MFLOP product is not split with GOMAXPROCS %d", tc.name,
				2*tc.nb*tc.m*tc.n*tc.k>>20, runtime.GOMAXPROCS(0))
		}
		if after.Split-before.Split != wantSplit || after.Fast-before.Fast != 1 {
			t.Errorf("%s: counters %+v -> %+v, want one fast product, %d split", tc.name, before, after, wantSplit)
		}
		want := make([]float32, tc.nb*tc.m*tc.n)
		for bi := range tc.nb {
			gemmCall(false, false, tc.m, tc.n, tc.k, a[bi*tc.m*tc.k:], tc.k, b[bi*tc.k*tc.n:], tc.n,
				want[bi*tc.m*tc.n:], tc.n)
		}
		for i := range want {
			if float32(got[i]) != want[i] {
				t.Fatalf("%s: entry %d = %g, one call per batch entry gives %g", tc.name, i, got[i], want[i])
			}
		}
	}
}

// BenchmarkGemmSplit times products of the sizes around splitMinFlops on one core (parts=1) and split
// over GOMAXPROCS goroutines, to place the threshold.
func BenchmarkGemmSplit(b *testing.B) {
	if !MatmulPath().Fast || !gemm.Concurrent {
		b.Skip("needs a concurrent OpenBLAS")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct{ m, n, k int }{{32, 64, 64}, {32, 128, 128}, {32, 256, 256}, {64, 256, 256},
		{32, 512, 512}, {128, 512, 512}, {1024, 1024, 1024}} {
		a, bb, c := make([]float32, s.m*s.k), make([]float32, s.k*s.n), make([]float32, s.m*s.n)
		for i := range a {
			a[i] = float32(r.NormFloat64())
		}
		for i := range bb {
			bb[i] = float32(r.NormFloat64())
		}
		for _, parts := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%dx%dx%d/parts=%d", s.m, s.n, s.k, parts), func(b *testing.B) {
				for b.Loop() {
					gemmSplit(parts, false, false, s.m, s.n, s.k, a, s.k, bb, s.n, c, s.n)
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkTranspose2D times transposeInto on the small T2I fixture's NCHW<->NHWC activation
// transposes (batch 2) and a text-embedding-sized one, in GB/s moved (read plus write).
func BenchmarkTranspose2D(b *testing.B) {
	for _, d := range [][]int{{2, 64, 128 * 128}, {2, 128 * 128, 64}, {2, 96, 64 * 64}, {2, 64 * 64, 96}, {16, 77, 64}} {
		n := d[0] * d[1] * d[2]
		src, dst := make([]float32, n), make([]float32, n)
		for i := range src {
			src[i] = float32(i)
		}
		b.Run(fmt.Sprint(d), func(b *testing.B) {
			for range b.N {
				transposeInto(dst, src, d, []int{0, 2, 1})
			}
			b.ReportMetric(float64(8*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
