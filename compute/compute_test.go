package compute

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	timage "github.com/gomlx/gomlx/pkg/core/tensors/images"
)

// gradTol is the largest CheckGradient error accepted for a correct rule (float64).
const gradTol = 1e-6

// gradCase is a function of graph inputs and the shapes of its (random) inputs.
type gradCase struct {
	name string
	fn   func(in []*graph.Node) *graph.Node
	dims [][]int
}

func (c gradCase) inputs(seed uint64) []*tensors.Tensor {
	out := make([]*tensors.Tensor, len(c.dims))
	for i, d := range c.dims {
		out[i] = randTensor(seed+uint64(i), d...)
	}
	return out
}

func dg(lc, lb, rc, rb []int) func(in []*graph.Node) *graph.Node {
	return func(in []*graph.Node) *graph.Node { return graph.DotGeneral(in[0], lc, lb, in[1], rc, rb) }
}

// matmulCases exercise Dot and DotGeneral, including batch axes that are not leading, several contracting
// axes given out of order, and no contracting axis at all.
var matmulCases = []gradCase{
	{"Dot/vec.vec", func(in []*graph.Node) *graph.Node { return graph.Dot(in[0], in[1]) }, [][]int{{5}, {5}}},
	{"Dot/mat.vec", func(in []*graph.Node) *graph.Node { return graph.Dot(in[0], in[1]) }, [][]int{{4, 6}, {6}}},
	{"Dot/mat.mat", func(in []*graph.Node) *graph.Node { return graph.Dot(in[0], in[1]) }, [][]int{{3, 5}, {5, 4}}},
	{"Dot/mat.mat-square", func(in []*graph.Node) *graph.Node { return graph.Dot(in[0], in[1]) }, [][]int{{4, 4}, {4, 4}}},
	{"DotGeneral/dense", dg([]int{1}, nil, []int{0}, nil), [][]int{{6, 5}, {5, 3}}},
	{"DotGeneral/dense-rank3", dg([]int{2}, nil, []int{0}, nil), [][]int{{2, 3, 5}, {5, 4}}},
	{"DotGeneral/batched-matmul", dg([]int{2}, []int{0}, []int{1}, []int{0}), [][]int{{2, 3, 4}, {2, 4, 5}}},
	{"DotGeneral/batch-axes-not-leading", dg([]int{2}, []int{1, 3}, []int{1}, []int{3, 0}), [][]int{{3, 2, 4, 5}, {5, 4, 6, 2}}},
	{"DotGeneral/two-contracting-out-of-order", dg([]int{3, 1}, nil, []int{0, 2}, nil), [][]int{{2, 3, 4, 5}, {5, 6, 3}}},
	{"DotGeneral/batch+two-contracting", dg([]int{1, 3}, []int{0}, []int{2, 1}, []int{0}), [][]int{{2, 3, 4, 5}, {2, 5, 3, 6}}},
	{"DotGeneral/outer-product", dg(nil, nil, nil, nil), [][]int{{3, 2}, {4}}},
	{"DotGeneral/full-contraction", dg([]int{0, 1}, nil, []int{1, 0}, nil), [][]int{{3, 4}, {4, 3}}},
	{"Einsum/bij,bjk->bik", func(in []*graph.Node) *graph.Node { return graph.Einsum("bij,bjk->bik", in[0], in[1]) }, [][]int{{2, 3, 4}, {2, 4, 3}}},
	{"MatMul/rank3.rank2", func(in []*graph.Node) *graph.Node { return graph.MatMul(in[0], in[1]) }, [][]int{{2, 3, 4}, {4, 5}}},
}

func conv(stride int) func(in []*graph.Node) *graph.Node {
	return func(in []*graph.Node) *graph.Node { return Conv2D(in[0], in[1], stride) }
}

func stockConv(stride int) func(in []*graph.Node) *graph.Node {
	return func(in []*graph.Node) *graph.Node {
		return graph.Convolve(in[0], in[1]).ChannelsAxis(timage.ChannelsLast).Strides(stride).PadSame().Done()
	}
}

var convCases = []struct {
	name   string
	x, k   []int
	stride int
}{
	{"3x3/s1/square", []int{2, 5, 5, 3}, []int{3, 3, 3, 4}, 1},
	{"3x3/s1/non-square", []int{2, 5, 7, 3}, []int{3, 3, 3, 2}, 1},
	{"3x3/s2/odd", []int{2, 5, 7, 2}, []int{3, 3, 2, 3}, 2},
	{"3x3/s2/even", []int{1, 6, 4, 2}, []int{3, 3, 2, 3}, 2},
	{"1x1/s1", []int{2, 4, 3, 3}, []int{1, 1, 3, 5}, 1},
	{"1x1/s2", []int{2, 5, 4, 3}, []int{1, 1, 3, 2}, 2},
	{"3x5/s1/non-square-kernel", []int{1, 6, 7, 2}, []int{3, 5, 2, 3}, 1},
	{"5x3/s3", []int{1, 7, 8, 2}, []int{5, 3, 2, 2}, 3},
}

func otherCases() []gradCase {
	zero := func(x *graph.Node) *graph.Node { return graph.ScalarZero(x.Graph(), x.DType()) }
	cases := []gradCase{
		{"Pad/start-end", func(in []*graph.Node) *graph.Node {
			return graph.Pad(in[0], zero(in[0]), graph.PadAxis{Start: 1, End: 2}, graph.PadAxis{Start: 0, End: 3})
		}, [][]int{{3, 4}}},
		{"Pad/interior-and-crop", func(in []*graph.Node) *graph.Node {
			return graph.Pad(in[0], zero(in[0]), graph.PadAxis{Start: -1, End: 2, Interior: 1}, graph.PadAxis{Start: 2, End: -3, Interior: 2}, graph.PadAxis{})
		}, [][]int{{4, 3, 2}}},
		{"Pad/differentiable-fill", func(in []*graph.Node) *graph.Node {
			return graph.Pad(in[0], graph.Reshape(in[1]), graph.PadAxis{Start: 1, End: -1, Interior: 1}, graph.PadAxis{Start: -2, End: 1})
		}, [][]int{{3, 4}, {1}}},
		{"Reverse/short-axes", func(in []*graph.Node) *graph.Node { return graph.Reverse(in[0], 0, 2) }, [][]int{{3, 2, 5}}},
		{"Reverse/long-axis(gather)", func(in []*graph.Node) *graph.Node { return graph.Reverse(in[0], 1) }, [][]int{{2, 11, 3}}},
		{"GroupNorm/[2,4,3,6]/3groups", func(in []*graph.Node) *graph.Node { return GroupNorm(in[0], 3, 1e-5) }, [][]int{{2, 4, 3, 6}}},
		{"GroupNorm/[3,8]/2groups", func(in []*graph.Node) *graph.Node { return GroupNorm(in[0], 2, 1e-5) }, [][]int{{3, 8}}},
		{"GroupNorm/[2,5,4]/1group", func(in []*graph.Node) *graph.Node { return GroupNorm(in[0], 1, 1e-3) }, [][]int{{2, 5, 4}}},
		{"Rsqrt", func(in []*graph.Node) *graph.Node { return graph.Rsqrt(graph.AddScalar(graph.Square(in[0]), 0.5)) }, [][]int{{3, 4}}},
		{"Expm1", func(in []*graph.Node) *graph.Node { return graph.Expm1(in[0]) }, [][]int{{7}}},
		{"Clip/scalar-bounds", func(in []*graph.Node) *graph.Node {
			g := in[0].Graph()
			return graph.Clip(in[0], graph.Scalar(g, in[0].DType(), -0.5), graph.Scalar(g, in[0].DType(), 0.7))
		}, [][]int{{4, 5}}},
		{"Clamp/tensor-bounds", func(in []*graph.Node) *graph.Node {
			return graph.Clamp(graph.AddScalar(in[1], -0.3), in[0], graph.AddScalar(in[2], 0.3))
		}, [][]int{{4, 5}, {4, 5}, {4, 5}}}, // Includes entries with lo > hi.
		{"Upsample2x/[2,3,2,3]", func(in []*graph.Node) *graph.Node { return Upsample2x(in[0]) }, [][]int{{2, 3, 2, 3}}},
		{"Upsample2x/[1,2,4,1]", func(in []*graph.Node) *graph.Node { return Upsample2x(in[0]) }, [][]int{{1, 2, 4, 1}}},
	}
	for _, c := range convCases {
		cases = append(cases,
			gradCase{"Conv2D/" + c.name, conv(c.stride), [][]int{c.x, c.k}},
			gradCase{"graph.Convolve/" + c.name, stockConv(c.stride), [][]int{c.x, c.k}})
	}
	return cases
}

// TestGradients checks every fixed op and rule against finite differences.
func TestGradients(t *testing.T) {
	backend := testBackend(t)
	for _, c := range append(slices.Clone(matmulCases), otherCases()...) {
		t.Run(c.name, func(t *testing.T) {
			e, err := CheckGradient(backend, c.fn, c.inputs(11), nil)
			if err != nil {
				t.Fatal(err)
			}
			if e > gradTol {
				t.Errorf("max relative error %.3g > %g", e, gradTol)
			}
		})
	}
}

// gradients evaluates f and the gradient of Σ w⊙f (w fixed) with respect to every input.
func gradients(t *testing.T, backend backends.Backend, c gradCase, seed uint64) [][]float64 {
	t.Helper()
	return eval(t, backend, func(in []*graph.Node) []*graph.Node {
		y := c.fn(in)
		w := graph.Sin(graph.Add(graph.Iota(y.Graph(), shapes.Make(y.DType(), y.Shape().Size()), 0), graph.Scalar(y.Graph(), y.DType(), 0.3)))
		loss := graph.ReduceAllSum(graph.Mul(graph.Reshape(y, y.Shape().Size()), w))
		return append([]*graph.Node{graph.Reshape(y, y.Shape().Size())}, graph.Gradient(loss, in...)...)
	}, c.inputs(seed)...)
}

// TestMatmulVJPMatchesStock compares the fixed Dot/DotGeneral gradients with GoMLX's own rule.
func TestMatmulVJPMatchesStock(t *testing.T) {
	backend := testBackend(t)
	for _, c := range matmulCases {
		t.Run(c.name, func(t *testing.T) {
			fixed := gradients(t, backend, c, 5)
			restore := useStockMatmulVJP(true)
			stock := gradients(t, backend, c, 5)
			restore()
			for i := range fixed {
				if d := maxAbsDiff(fixed[i], stock[i]); d > 1e-10 {
					t.Errorf("output %d differs from the stock rule by %g", i, d)
				}
			}
		})
	}
}

// TestConv2DMatchesConvolve compares Conv2D and its gradients with graph.Convolve(...).PadSame().
func TestConv2DMatchesConvolve(t *testing.T) {
	backend := testBackend(t)
	for _, c := range convCases {
		t.Run(c.name, func(t *testing.T) {
			ours := gradients(t, backend, gradCase{c.name, conv(c.stride), [][]int{c.x, c.k}}, 3)
			theirs := gradients(t, backend, gradCase{c.name, stockConv(c.stride), [][]int{c.x, c.k}}, 3)
			want := []int{c.x[0] * ((c.x[1] + c.stride - 1) / c.stride) * ((c.x[2] + c.stride - 1) / c.stride) * c.k[3]}
			if len(ours[0]) != want[0] {
				t.Fatalf("output has %d entries, want %d", len(ours[0]), want[0])
			}
			for i, name := range []string{"output", "dx", "dkernel"} {
				if d := maxAbsDiff(ours[i], theirs[i]); d > 1e-10 {
					t.Errorf("%s differs from graph.Convolve by %g", name, d)
				}
			}
		})
	}
}

// TestCheckerFlagsWrongRule installs deliberately wrong matmul rules and shows CheckGradient catches them.
func TestCheckerFlagsWrongRule(t *testing.T) {
	backend := testBackend(t)
	wrong := map[string]graph.VJP{
		"scaled-by-2": singleOutput(func(node, v *graph.Node) []*graph.Node {
			g := dotVJP(node, v)
			two := graph.Scalar(v.Graph(), v.DType(), 2)
			return []*graph.Node{graph.Mul(g[0], two), g[1]}
		}),
		"transposed": singleOutput(func(node, v *graph.Node) []*graph.Node {
			g := dotVJP(node, v)
			return []*graph.Node{graph.Transpose(g[0], 0, 1), g[1]}
		}),
	}
	c := matmulCases[3] // Dot of two square matrices, so a transposed gradient still has the right shape.
	for name, rule := range wrong {
		t.Run(name, func(t *testing.T) {
			restore := useStockMatmulVJP(false)
			defer restore()
			vjpMu.Lock()
			graph.VJPRegistration[graph.NodeTypeDot] = rule
			vjpMu.Unlock()
			e, err := CheckGradient(backend, c.fn, c.inputs(2), nil)
			if err != nil {
				t.Fatal(err)
			}
			if e < 0.1 {
				t.Errorf("wrong rule %q passed the checker (max relative error %.3g)", name, e)
			}
			t.Logf("%s: max relative error %.3g", name, e)
		})
	}
	// The right rule is back.
	e, err := CheckGradient(backend, c.fn, c.inputs(2), nil)
	if err != nil || e > gradTol {
		t.Fatalf("after restoring, error %.3g (err %v)", e, err)
	}
}

// padReference is Pad computed naively: output index o along each axis holds x[i] when o = s + i(1+d).
func padReference(x []float64, dims []int, fill float64, cfg []graph.PadAxis) ([]float64, []int) {
	rank := len(dims)
	out := make([]int, rank)
	for a := range rank {
		n := dims[a]
		out[a] = cfg[a].Start + cfg[a].End + n + max(n-1, 0)*cfg[a].Interior
	}
	size := 1
	for _, d := range out {
		size *= d
	}
	res := make([]float64, size)
	idx := make([]int, rank)
	for flat := range res {
		r := flat
		for a := rank - 1; a >= 0; a-- {
			idx[a] = r % out[a]
			r /= out[a]
		}
		src, ok := 0, true
		for a := range rank {
			o := idx[a] - cfg[a].Start
			step := 1 + cfg[a].Interior
			if o < 0 || o%step != 0 || o/step >= dims[a] {
				ok = false
				break
			}
			src = src*dims[a] + o/step
		}
		if ok {
			res[flat] = x[src]
		} else {
			res[flat] = fill
		}
	}
	return res, out
}

func TestPadMatchesReference(t *testing.T) {
	backend := testBackend(t)
	cases := []struct {
		dims []int
		cfg  []graph.PadAxis
	}{
		{[]int{5}, []graph.PadAxis{{Start: 2, End: 1}}},
		{[]int{3, 4}, []graph.PadAxis{{Start: 1, End: 0, Interior: 2}, {Start: -1, End: 2}}},
		{[]int{2, 3, 4}, []graph.PadAxis{{}, {Start: 0, End: -1, Interior: 1}, {Start: -2, End: -1, Interior: 3}}},
		{[]int{1, 4, 2}, []graph.PadAxis{{Start: 1, End: 1, Interior: 5}, {Start: 1, End: 1, Interior: 1}, {}}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprint(c.dims, c.cfg), func(t *testing.T) {
			x := randTensor(uint64(i), c.dims...)
			got := eval(t, backend, func(in []*graph.Node) []*graph.Node {
				return []*graph.Node{graph.Pad(in[0], graph.Scalar(in[0].Graph(), in[0].DType(), 7.5), c.cfg...)}
			}, x)[0]
			want, _ := padReference(tensors.MustCopyFlatData[float64](x), c.dims, 7.5, c.cfg)
			if d := maxAbsDiff(got, want); d != 0 {
				t.Errorf("Pad differs from reference by %g:\n got %v\nwant %v", d, got, want)
			}
		})
	}
}

func TestReverseMatchesReference(t *testing.T) {
	backend := testBackend(t)
	for _, n := range []int{2, 5, reverseBySlicesMax, reverseBySlicesMax + 1, 13} {
		t.Run(fmt.Sprint("n=", n), func(t *testing.T) {
			x := randTensor(uint64(n), 2, n, 3)
			got := eval(t, backend, func(in []*graph.Node) []*graph.Node {
				return []*graph.Node{graph.Reverse(in[0], 1, 2)}
			}, x)[0]
			flat := tensors.MustCopyFlatData[float64](x)
			for b := range 2 {
				for i := range n {
					for c := range 3 {
						want := flat[(b*n+n-1-i)*3+2-c]
						if g := got[(b*n+i)*3+c]; g != want {
							t.Fatalf("y[%d,%d,%d] = %g, want %g", b, i, c, g, want)
						}
					}
				}
			}
		})
	}
}

func TestGroupNormForward(t *testing.T) {
	backend := testBackend(t)
	const b, h, w, c, groups = 2, 3, 4, 6, 3
	x := randTensor(9, b, h, w, c)
	y := eval(t, backend, func(in []*graph.Node) []*graph.Node {
		// Shift and scale the input: the output must not care.
		z := graph.Add(graph.MulScalar(in[0], 3), graph.Scalar(in[0].Graph(), in[0].DType(), 5))
		return []*graph.Node{GroupNorm(z, groups, 0)}
	}, x)[0]
	for bi := range b {
		for g := range groups {
			var sum, sq float64
			n := 0
			for p := range h * w {
				for ch := g * c / groups; ch < (g+1)*c/groups; ch++ {
					v := y[(bi*h*w+p)*c+ch]
					sum += v
					sq += v * v
					n++
				}
			}
			mean, variance := sum/float64(n), sq/float64(n)-(sum/float64(n))*(sum/float64(n))
			if math.Abs(mean) > 1e-12 || math.Abs(variance-1) > 1e-12 {
				t.Errorf("batch %d group %d: mean %g, variance %g", bi, g, mean, variance)
			}
		}
	}
}

func TestUpsample2xForward(t *testing.T) {
	backend := testBackend(t)
	x := tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4, 5, 6}, 1, 2, 3, 1)
	got := eval(t, backend, func(in []*graph.Node) []*graph.Node { return []*graph.Node{Upsample2x(in[0])} }, x)[0]
	want := []float64{
		1, 1, 2, 2, 3, 3,
		1, 1, 2, 2, 3, 3,
		4, 4, 5, 5, 6, 6,
		4, 4, 5, 5, 6, 6,
	}
	if maxAbsDiff(got, want) != 0 {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestFloat32 runs Conv2D's gradient in float32, the dtype training uses.
func TestFloat32(t *testing.T) {
	backend := testBackend(t)
	out := eval(t, backend, func(in []*graph.Node) []*graph.Node {
		x32 := graph.ConvertDType(in[0], dtypes.Float32)
		k32 := graph.ConvertDType(in[1], dtypes.Float32)
		y := Conv2D(x32, k32, 2)
		g := graph.Gradient(graph.ReduceAllSum(graph.Square(y)), x32, k32)
		return []*graph.Node{graph.ConvertDType(g[0], dtypes.Float64), graph.ConvertDType(g[1], dtypes.Float64)}
	}, randTensor(1, 2, 6, 5, 3), randTensor(2, 3, 3, 3, 4))
	if len(out[0]) != 2*6*5*3 || len(out[1]) != 3*3*3*4 {
		t.Fatalf("gradient sizes %d, %d", len(out[0]), len(out[1]))
	}
}

func TestNewBackend(t *testing.T) {
	t.Setenv(EnvBackend, "")
	t.Setenv(EnvGoMLXBackend, "")

	avail := Available()
	if len(avail) < 2 || avail[0] != PatchedName || !slices.Contains(avail, StockName) {
		t.Fatalf("Available() = %v", avail)
	}

	b, err := NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*patchedBackend); !ok {
		t.Errorf("default backend is %T (%s), want the patched one", b, b.Name())
	}
	b, err = backends.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*patchedBackend); !ok {
		t.Errorf("backends.New() gives %T (%s), want the patched one", b, b.Name())
	}
	b, err = NewBackend("go-stock")
	if err != nil || b == nil {
		t.Fatalf("go-stock: %v", err)
	}
	if _, ok := b.(*patchedBackend); ok {
		t.Errorf("go-stock gave the patched backend")
	}
	if _, err = NewBackend("go:parallelism=1"); err != nil {
		t.Errorf("go with config: %v", err)
	}

	t.Setenv(EnvGoMLXBackend, "go-stock")
	if b, err = NewBackend(""); err != nil {
		t.Fatal(err)
	} else if _, ok := b.(*patchedBackend); ok {
		t.Errorf("$%s=go-stock ignored", EnvGoMLXBackend)
	}
	t.Setenv(EnvBackend, "go")
	if b, err = NewBackend(""); err != nil {
		t.Fatal(err)
	} else if _, ok := b.(*patchedBackend); !ok {
		t.Errorf("$%s=go does not take precedence over $%s", EnvBackend, EnvGoMLXBackend)
	}

	checkOneLine := func(t *testing.T, err error, mustContain ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") {
			t.Errorf("error is not one line: %q", msg)
		}
		for _, s := range mustContain {
			if !strings.Contains(msg, s) {
				t.Errorf("error %q does not mention %q", msg, s)
			}
		}
		t.Log(msg)
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := NewBackend("tpu-magic")
		checkOneLine(t, err, `"tpu-magic"`, "go (", "go-stock", "xla")
	})
	t.Run("unknown-from-env", func(t *testing.T) {
		t.Setenv(EnvBackend, "nope")
		_, err := NewBackend("")
		checkOneLine(t, err, `"nope"`, EnvBackend, "go-stock")
	})
	t.Run("bad-config", func(t *testing.T) {
		_, err := NewBackend("go:no_such_option")
		checkOneLine(t, err, "no_such_option", "go-stock")
	})
	t.Run("xla-without-plugin", func(t *testing.T) {
		if !slices.Contains(Available(), "xla") {
			_, err := NewBackend("xla")
			checkOneLine(t, err, "xla", "not compiled")
			return
		}
		// An absolute plugin path skips GoMLX's download attempt.
		_, err := NewBackend("xla:/nonexistent/pjrt_c_api_cpu_plugin.so")
		checkOneLine(t, err, "xla", "PJRT_PLUGIN_LIBRARY_PATH", "internet", `"go"`)
	})
}

// TestStockLacksPad documents why the patched backend exists; if a GoMLX upgrade implements Pad in
// SimpleGo this logs it, and the composition here can go.
func TestStockLacksPad(t *testing.T) {
	stock := stockBackend(t)
	_, err := graph.ExecOnce(stock, func(x *graph.Node) *graph.Node {
		return graph.Pad(x, graph.ScalarZero(x.Graph(), x.DType()), graph.PadAxis{Start: 1})
	}, []float32{1, 2})
	if err == nil {
		t.Log("SimpleGo now implements Pad: the composed Pad in patched.go may be unnecessary")
	}
}
