package compute

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestFastOpsMatchStock compares the patched backend's Slice and broadcasting Add/Sub/Mul with
// unpatched SimpleGo on layouts that exercise every branch: whole trailing axes, strided last axis,
// strided middle axis, broadcasting on leading, middle and trailing axes, both operands broadcast.
func TestFastOpsMatchStock(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	slice := func(specs ...graph.SliceAxisSpec) func(in []*graph.Node) *graph.Node {
		return func(in []*graph.Node) *graph.Node { return graph.Slice(in[0], specs...) }
	}
	bin := func(f func(a, b *graph.Node) *graph.Node) func(in []*graph.Node) *graph.Node {
		return func(in []*graph.Node) *graph.Node { return f(in[0], in[1]) }
	}
	cases := []gradCase{
		{"slice/whole", slice(), [][]int{{3, 4}}},
		{"slice/rows", slice(graph.AxisRange(1, 3)), [][]int{{4, 5, 2}}},
		{"slice/last-axis-strided", slice(graph.AxisRange(), graph.AxisRange(1, 7).Stride(2)), [][]int{{3, 8}}},
		{"slice/middle-strided", slice(graph.AxisRange(), graph.AxisRange(0, 5).Stride(2), graph.AxisRange(1, 3)), [][]int{{2, 6, 4, 3}}},
		{"slice/im2col-like", slice(graph.AxisRange(), graph.AxisRange(1, 6).Stride(2), graph.AxisRange(2, 7).Stride(2), graph.AxisRange()), [][]int{{2, 8, 9, 3}}},
		{"slice/single-element", slice(graph.AxisElem(1), graph.AxisElem(2)), [][]int{{3, 4}}},
		{"add/bias", bin(graph.Add), [][]int{{4, 5}, {1, 5}}},
		{"add/column", bin(graph.Add), [][]int{{4, 5}, {4, 1}}},
		{"sub/middle", bin(graph.Sub), [][]int{{2, 1, 3}, {2, 4, 3}}},
		{"mul/both-broadcast", bin(graph.Mul), [][]int{{3, 1, 5, 1}, {1, 4, 5, 2}}},
		{"mul/groupnorm-like", bin(graph.Mul), [][]int{{2, 6, 3, 4}, {2, 1, 3, 1}}},
		{"sub/lhs-broadcast", bin(graph.Sub), [][]int{{1, 5}, {3, 5}}},
		{"add/equal-small", bin(graph.Add), [][]int{{3, 37}, {3, 37}}},
		{"sub/equal-small", bin(graph.Sub), [][]int{{5, 9}, {5, 9}}},
		{"mul/equal-small", bin(graph.Mul), [][]int{{2, 3, 7}, {2, 3, 7}}},
		{"mul/groupnorm-like-wide", bin(graph.Mul), [][]int{{2, 5, 3, 16}, {2, 1, 3, 1}}},
		{"sub/groupnorm-like-left", bin(graph.Sub), [][]int{{2, 1, 3, 1}, {2, 6, 3, 4}}},
		{"mul/short-runs-no-repeat", bin(graph.Mul), [][]int{{2, 5, 3, 4}, {2, 5, 3, 1}}},
		{"add/short-runs-3d", bin(graph.Add), [][]int{{4, 3, 2}, {4, 3, 1}}},
		{"add/short-runs-both-broadcast", bin(graph.Add), [][]int{{3, 1, 2, 1}, {1, 4, 2, 3}}},
		{"div/groupnorm-like", bin(graph.Div), [][]int{{2, 6, 3, 4}, {2, 1, 3, 1}}},
		{"div/softmax-like", bin(graph.Div), [][]int{{2, 4, 5, 33}, {2, 4, 5, 1}}},
		{"div/lhs-broadcast", bin(graph.Div), [][]int{{1, 5}, {3, 5}}},
		{"div/both-broadcast", bin(graph.Div), [][]int{{3, 1, 5, 1}, {1, 4, 5, 2}}},
		{"div/equal-small", bin(graph.Div), [][]int{{3, 37}, {3, 37}}},
		{"div/equal-large", bin(graph.Div), [][]int{{3, 20000}, {3, 20000}}},
		{"broadcast/rows", func(in []*graph.Node) *graph.Node { return graph.BroadcastToDims(in[0], 4, 5) }, [][]int{{1, 5}}},
		{"broadcast/columns", func(in []*graph.Node) *graph.Node { return graph.BroadcastToDims(in[0], 4, 5, 3) }, [][]int{{4, 1, 3}}},
		{"broadcast/prefix", func(in []*graph.Node) *graph.Node { return graph.BroadcastPrefix(in[0], 3, 2) }, [][]int{{4, 2}}},
		{"broadcast/scalar", func(in []*graph.Node) *graph.Node { return graph.BroadcastToDims(graph.Reshape(in[0]), 3, 4) }, [][]int{{1}}},
		{"transpose/3d", func(in []*graph.Node) *graph.Node { return graph.TransposeAllAxes(in[0], 2, 0, 1) }, [][]int{{3, 4, 5}}},
		{"transpose/pixel-shuffle", func(in []*graph.Node) *graph.Node { return graph.TransposeAllAxes(in[0], 0, 1, 3, 2, 4, 5) }, [][]int{{2, 3, 2, 3, 2, 2}}},
		{"transpose/pixel-shuffle-1ch", func(in []*graph.Node) *graph.Node { return graph.TransposeAllAxes(in[0], 0, 1, 3, 2, 4, 5) }, [][]int{{2, 3, 3, 2, 2, 1}}},
		{"transpose/merged-runs", func(in []*graph.Node) *graph.Node { return graph.TransposeAllAxes(in[0], 2, 3, 0, 1) }, [][]int{{3, 4, 2, 5}}},
		{"transpose/unit-axes", func(in []*graph.Node) *graph.Node { return graph.TransposeAllAxes(in[0], 3, 1, 0, 2) }, [][]int{{1, 4, 1, 3}}},
		{"reduce/leading", func(in []*graph.Node) *graph.Node { return graph.ReduceSum(in[0], 0) }, [][]int{{5, 7}}},
		{"reduce/trailing", func(in []*graph.Node) *graph.Node { return graph.ReduceSum(in[0], -1) }, [][]int{{5, 7}}},
		{"reduce/alternating", func(in []*graph.Node) *graph.Node { return graph.ReduceSum(in[0], 0, 2) }, [][]int{{3, 4, 5, 2}}},
		{"reduce/groupnorm-like", func(in []*graph.Node) *graph.Node { return graph.ReduceSum(in[0], 1, 3) }, [][]int{{2, 6, 3, 4}}},
		{"reduce/five-axes", func(in []*graph.Node) *graph.Node { return graph.ReduceSum(in[0], 0, 2, 4) }, [][]int{{3, 2, 4, 2, 3}}},
		{"reduce/kept-inner", func(in []*graph.Node) *graph.Node { return graph.ReduceSum(in[0], 1) }, [][]int{{3, 5, 2, 4}}},
		// Large enough to be cut over the cores (along the kept first axis), and one with a leading
		// unit axis and a reduced group beyond the third.
		{"reduce/groupnorm-large", func(in []*graph.Node) *graph.Node { return graph.ReduceSum(in[0], 1, 3) }, [][]int{{5, 196, 8, 8}}},
		{"reduce/unit-lead-deep", func(in []*graph.Node) *graph.Node { return graph.ReduceSum(in[0], 2, 4, 5) }, [][]int{{1, 3, 50, 2, 3, 70}}},
		{"broadcast/groupnorm-like", func(in []*graph.Node) *graph.Node { return graph.BroadcastToDims(in[0], 2, 5, 3, 4) }, [][]int{{2, 1, 3, 1}}},
		{"broadcast/inner-and-outer", func(in []*graph.Node) *graph.Node { return graph.BroadcastToDims(in[0], 2, 4, 5, 3) }, [][]int{{1, 4, 1, 3}}},
		// A nearest upsampling's repeats (models/onnx/shim's Resize), large enough to be cut over the
		// cores along the first axis: each value twice, and each row twice.
		{"broadcast/upsample-pairs", func(in []*graph.Node) *graph.Node { return graph.BroadcastToDims(in[0], 3, 40, 150, 2) }, [][]int{{3, 40, 150, 1}}},
		{"broadcast/upsample-rows", func(in []*graph.Node) *graph.Node { return graph.BroadcastToDims(in[0], 2, 30, 17, 2, 21) }, [][]int{{2, 30, 17, 1, 21}}},
		{"broadcast/first-axis-repeated", func(in []*graph.Node) *graph.Node { return graph.BroadcastToDims(in[0], 4, 30, 300) }, [][]int{{1, 30, 300}}},
		{"reduce/all", func(in []*graph.Node) *graph.Node { return graph.ReduceAllSum(in[0]) }, [][]int{{3, 1, 4}}},
		{"sign", func(in []*graph.Node) *graph.Node { return graph.Sign(in[0]) }, [][]int{{7, 9}}},
		{"logistic/large", func(in []*graph.Node) *graph.Node { return graph.Logistic(in[0]) }, [][]int{{3, 20000}}},
	}
	before := statFastOps.Load()
	for _, c := range cases {
		for _, f32 := range []bool{true, false} {
			in := func() []*tensors.Tensor {
				in := c.inputs(9)
				if f32 {
					for i := range in {
						in[i] = toFloat32(in[i])
					}
				}
				return in
			}
			fn := func(nodes []*graph.Node) []*graph.Node { return []*graph.Node{c.fn(nodes)} }
			got := eval(t, fast, fn, in()...)[0]
			want := eval(t, stock, fn, in()...)[0]
			if len(got) != len(want) {
				t.Fatalf("%s: %d values, SimpleGo gives %d", c.name, len(got), len(want))
			}
			for i := range want {
				// The float32 logistic is within 3 ulps of SimpleGo's (logistic.go); the rest bit for bit.
				if strings.HasPrefix(c.name, "logistic") && f32 && ulpDiff(float32(got[i]), float32(want[i])) <= 3 {
					continue
				}
				if got[i] != want[i] && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
					t.Errorf("%s (float32 %v): entry %d = %g, SimpleGo gives %g", c.name, f32, i, got[i], want[i])
					break
				}
			}
		}
	}
	// slice/whole may be elided; small equal-shape float64 ops stay on SimpleGo's loops.
	want := 2*len(cases) - 2
	for _, c := range cases {
		if strings.Contains(c.name, "equal-small") {
			want--
		}
	}
	if ran := statFastOps.Load() - before; ran < int64(want) {
		t.Errorf("only %d of %d ops ran on the fast kernels", ran, want)
	}
}

// TestSliceCopy checks the run-copying slice against the definition on a rank-3 strided slice.
func TestSliceCopy(t *testing.T) {
	in := []int{4, 5, 6}
	src := make([]int, 120)
	for i := range src {
		src[i] = i
	}
	starts, strides := []int{1, 0, 1}, []int{2, 2, 3}
	out := []int{2, 3, 2}
	dst := make([]int, 12)
	sliceCopy(dst, src, in, out, starts, strides)
	o := 0
	for i := range out[0] {
		for j := range out[1] {
			for k := range out[2] {
				want := (starts[0]+i*strides[0])*30 + (starts[1]+j*strides[1])*6 + starts[2] + k*strides[2]
				if dst[o] != want {
					t.Fatalf("dst[%d] = %d, want %d", o, dst[o], want)
				}
				o++
			}
		}
	}
}

// TestPadNodeInUse fails when the patched backend builds Pad from pieces instead of its single node
// (a changed GoMLX internal or a failed self-test), and checks the node against the definition.
func TestPadNodeInUse(t *testing.T) {
	testBackend(t)
	if !padNodeOn.Load() {
		t.Fatalf("the Pad node is not in use: %s", padNodeWhy)
	}
	before := statFastOps.Load()
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	got := eval(t, testBackend(t), func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{graph.Pad(in[0], graph.Scalar(in[0].Graph(), in[0].DType(), 9),
			graph.PadAxis{Start: 1}, graph.PadAxis{Start: -1, End: 1, Interior: 1})}
	}, x)[0]
	// Axis 1: interior 1 gives [1,9,2,9,3], start -1 crops the first entry, end 1 appends a fill;
	// axis 0: one fill row first.
	want := []float64{9, 9, 9, 9, 9, 9, 2, 9, 3, 9, 9, 5, 9, 6, 9}
	if maxAbsDiff(got, want) != 0 {
		t.Fatalf("Pad = %v, want %v", got, want)
	}
	if statFastOps.Load() == before {
		t.Fatal("the Pad did not run on the Pad node")
	}
}

func TestSignBits(t *testing.T) {
	x := []float32{-2, -0.0, 0, 3, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 1e-40, -1e-40}
	want := []float32{-1, 0, 0, 1, 1, -1, 0, 1, -1}
	out := make([]float32, len(x))
	signBits32(out, x)
	for i := range x {
		if out[i] != want[i] {
			t.Errorf("sign(%g) = %g, want %g", x[i], out[i], want[i])
		}
	}
}

// TestBinary32MatchesScalar: the AVX2 float32 Add/Sub/Mul and the Div loop (with the scalar tail) equals the plain
// loop bit for bit on every length up to 40 and a long odd one, with NaNs (their payloads too),
// infinities, signed zeros and subnormals among the values.
func TestBinary32MatchesScalar(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0x7fc01234), math.Float32frombits(0xffc00005),
		math.SmallestNonzeroFloat32, -1e-40, math.MaxFloat32}
	value := func() float32 {
		if r.IntN(5) == 0 {
			return special[r.IntN(len(special))]
		}
		return float32(r.NormFloat64() * 100)
	}
	for _, n := range append(iotaFrom(0, 41), 4099) {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = value(), value()
		}
		for _, op := range []backends.OpType{backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv} {
			got, want := make([]float32, n), make([]float32, n)
			binary32(op, got, a, b)
			for i := range want {
				want[i] = binOp(op, a[i], b[i])
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Errorf("%s n=%d: %g op %g = %g (%#x), the loop gives %g (%#x)", op, n, a[i], b[i],
						got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					break
				}
			}
		}
	}
	t.Logf("AVX2 kernels in use: %v", binaryVector)
}
