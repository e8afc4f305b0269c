package mixed_test

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/compute/mixed"
)

func goBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := compute.NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Finalize)
	return b
}

// data is a deterministic float32 pattern whose values need more than bfloat16's 8 significant bits.
func data(n int, seed float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(math.Sin(seed+1.37*float64(i)) * (1 + 0.001*float64(i%17)))
	}
	return out
}

func roundBF16(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(bfloat16.FromFloat32(v).Float32())
	}
	return out
}

// TestProductsAndConvolutionsRunInBFloat16: on the wrapped backend a product and a convolution of
// float32 tensors equal, to float32 accumulation error, the float64 result of the operands rounded to
// bfloat16, rounded to bfloat16 again, and differ from the float32 result by far more; the output is
// float32.
func TestProductsAndConvolutionsRunInBFloat16(t *testing.T) {
	const m, k, n = 8, 64, 5
	a, b := data(m*k, 0.3), data(k*n, 1.1)
	wide, narrow := goBackend(t), mixed.Wrap(goBackend(t), dtypes.BFloat16)
	dot := func(x, y *Node) *Node { return Dot(x, y) }
	// Tensors are tied to the backend that first uses them: fresh ones for each.
	ab := func() []any {
		return []any{tensors.FromFlatDataAndDimensions(a, m, k), tensors.FromFlatDataAndDimensions(b, k, n)}
	}
	got := MustExecOnce(narrow, dot, ab()...)
	want32 := tensors.MustCopyFlatData[float32](MustExecOnce(wide, dot, ab()...))
	if got.DType() != dtypes.Float32 {
		t.Fatalf("product dtype %s, want float32", got.DType())
	}
	g := tensors.MustCopyFlatData[float32](got)
	ra, rb := roundBF16(a), roundBF16(b)
	var maxRef, maxWide float64
	for i := range m {
		for j := range n {
			var s float64
			for l := range k {
				s += ra[i*k+l] * rb[l*n+j]
			}
			ref := float64(bfloat16.FromFloat32(float32(s)).Float32())
			maxRef = max(maxRef, math.Abs(float64(g[i*n+j])-ref))
			maxWide = max(maxWide, math.Abs(float64(g[i*n+j])-float64(want32[i*n+j])))
		}
	}
	// One bfloat16 ulp of a result of magnitude < 8 is at most 2^-5; the float32 product of unrounded
	// operands differs from the bfloat16 one by the operands' rounding (~2^-9 relative, over 64 terms).
	if maxRef > 1.0/32 {
		t.Errorf("product differs from the bfloat16 reference by %g", maxRef)
	}
	if maxWide < 1e-3 {
		t.Errorf("product equals the float32 one (max difference %g): no bfloat16 rounding happened", maxWide)
	}

	xw := func() []any {
		return []any{tensors.FromFlatDataAndDimensions(data(2*6*6*3, 0.7), 2, 6, 6, 3),
			tensors.FromFlatDataAndDimensions(data(3*3*3*4, 2.1), 3, 3, 3, 4)}
	}
	conv := func(x, w *Node) *Node { return compute.Conv2D(x, w, 1) }
	cn := tensors.MustCopyFlatData[float32](MustExecOnce(narrow, conv, xw()...))
	cw := tensors.MustCopyFlatData[float32](MustExecOnce(wide, conv, xw()...))
	var maxRel, maxDiff float64
	for i := range cn {
		d := math.Abs(float64(cn[i] - cw[i]))
		maxDiff = max(maxDiff, d)
		maxRel = max(maxRel, d/(1+math.Abs(float64(cw[i]))))
	}
	if maxRel > 2.0/128 || maxDiff == 0 {
		t.Errorf("convolution in bfloat16 vs float32: max difference %g (relative %g); want nonzero and < 2^-6", maxDiff, maxRel)
	}
}

// TestOtherDTypesUntouched: float64 products are not narrowed.
func TestOtherDTypesUntouched(t *testing.T) {
	a := []float64{1 + 1e-9, 2, 3, 4}
	got := tensors.MustCopyFlatData[float64](MustExecOnce(mixed.Wrap(goBackend(t), dtypes.BFloat16),
		func(x *Node) *Node { return Dot(x, x) }, tensors.FromFlatDataAndDimensions(a, 2, 2)))
	if want := (1+1e-9)*(1+1e-9) + 2*3; math.Abs(got[0]-want) > 1e-12 {
		t.Errorf("float64 product %v, want %v", got[0], want)
	}
}

func TestParse(t *testing.T) {
	for s, want := range map[string]bool{"": false, "f32": false, "float32": false, "bf16": true, "BFloat16": true} {
		if _, ok, err := mixed.Parse(s); err != nil || ok != want {
			t.Errorf("Parse(%q) = %v, %v", s, ok, err)
		}
	}
	if _, _, err := mixed.Parse("fp8"); err == nil {
		t.Error("fp8 accepted")
	}
}
