package compute

import (
	"math"
	"os"
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
	stock, err := NewBackend(StockName)
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Finalize()
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
