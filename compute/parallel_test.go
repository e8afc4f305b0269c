package compute

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func randF32(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// TestParallelKernelsMatchOnePass runs im2col, col2im, Pad and broadcasting Add/Sub/Mul on tensors
// large enough to be cut over goroutines and checks each against one pass of the same kernel, bit for
// bit, and that the cut path was taken (when GOMAXPROCS > 1).
func TestParallelKernelsMatchOnePass(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	before := statParallelOps.Load()
	same := func(name string, got, want []float32) {
		t.Helper()
		if !slices.Equal(got, want) {
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("%s: entry %d = %g, one pass gives %g", name, i, got[i], want[i])
					return
				}
			}
		}
	}
	// im2col of a [32, 30, 30, 16] input, 3x3 kernel, stride 1: output [32, 28, 28, 9, 16].
	xDims := []int{32, 30, 30, 16}
	x := randF32(r, 32*30*30*16)
	ip := &im2colNodeData{k: []int{3, 3}, strides: []int{1, 1}, dil: []int{1, 1}, out: []int{28, 28}}
	got, want := make([]float32, 32*28*28*9*16), make([]float32, 32*28*28*9*16)
	im2colParallel(got, x, xDims, ip)
	im2colKernel(want, x, xDims, ip)
	same("im2col", got, want)

	// col2im of Q [32, 14, 14, 4, 16] (2x2 kernel, stride 2) onto y [32, 28, 28, 16].
	qDims := []int{32, 14, 14, 4, 16}
	q := randF32(r, 32*14*14*4*16)
	cp := &col2imNodeData{k: []int{2, 2}, strides: []int{2, 2}, dil: []int{1, 1}, off: []int{0, 0}, out: []int{28, 28}}
	gotY, wantY := make([]float32, 32*28*28*16), make([]float32, 32*28*28*16)
	col2imParallel(gotY, q, qDims, cp)
	col2imKernel(wantY, q, qDims, cp)
	same("col2im", gotY, wantY)

	// Pad of [32, 28, 28, 16] by 1 on both spatial axes (batch axis not padded).
	inDims, outDims := []int{32, 28, 28, 16}, []int{32, 30, 30, 16}
	cfg := []backends.PadAxis{{}, {Start: 1, End: 1}, {Start: 1, End: 1}, {}}
	gotP, wantP := make([]float32, 32*30*30*16), make([]float32, 32*30*30*16)
	padParallel(gotP, wantY, 0.5, inDims, cfg, outDims)
	padKernel(wantP, wantY, 0.5, inDims, cfg, outDims)
	same("pad", gotP, wantP)

	// Binary ops: equal shapes, a per-channel operand, and a leading unit axis with a broadcast lhs.
	for _, c := range []struct {
		op           backends.OpType
		lDims, rDims []int
	}{
		{backends.OpTypeAdd, []int{64, 4096}, []int{64, 4096}},
		{backends.OpTypeMul, []int{32, 28, 28, 16}, []int{1, 1, 1, 16}},
		{backends.OpTypeSub, []int{1, 1, 2048}, []int{1, 96, 2048}},
	} {
		outDims := make([]int, len(c.lDims))
		for a := range outDims {
			outDims[a] = max(c.lDims[a], c.rDims[a])
		}
		size := func(d []int) int {
			n := 1
			for _, v := range d {
				n *= v
			}
			return n
		}
		l, rr := randF32(r, size(c.lDims)), randF32(r, size(c.rDims))
		gotB, wantB := make([]float32, size(outDims)), make([]float32, size(outDims))
		broadcastBinaryParallel(c.op, gotB, l, rr, c.lDims, c.rDims, outDims)
		broadcastBinary(c.op, wantB, l, rr, c.lDims, c.rDims, outDims)
		same(c.op.String(), gotB, wantB)
	}
	if n := statParallelOps.Load() - before; runtime.GOMAXPROCS(0) > 1 && n != 6 {
		t.Errorf("%d of 6 kernels were cut over goroutines with GOMAXPROCS %d", n, runtime.GOMAXPROCS(0))
	}
}

// TestLargeBinaryMatchesStock runs large Add/Mul (equal shapes, which the patched backend takes over
// only when large, and a broadcast operand) on the patched backend and on unpatched SimpleGo.
func TestLargeBinaryMatchesStock(t *testing.T) {
	fast := testBackend(t)
	stock := stockBackend(t)
	for _, c := range []struct {
		name string
		f    func(a, b *graph.Node) *graph.Node
		dims [][]int
	}{
		{"add/equal", graph.Add, [][]int{{64, 4096}, {64, 4096}}},
		{"mul/channel", graph.Mul, [][]int{{32, 28, 28, 16}, {1, 1, 1, 16}}},
	} {
		in := func() []*tensors.Tensor {
			return []*tensors.Tensor{toFloat32(randTensor(1, c.dims[0]...)), toFloat32(randTensor(2, c.dims[1]...))}
		}
		fn := func(n []*graph.Node) []*graph.Node { return []*graph.Node{c.f(n[0], n[1])} }
		got := eval(t, fast, fn, in()...)[0]
		want := eval(t, stock, fn, in()...)[0]
		if !slices.Equal(got, want) {
			t.Errorf("%s: differs from SimpleGo", c.name)
		}
	}
}

// TestIm2colPaddingMatchesPad: the im2col node's own zero padding equals padding first (padKernel) and
// then the unpadded im2col, bit for bit, on 1-D, 2-D and 3-D inputs with strides, dilations, padding
// wider than the kernel and windows that end before the padded edge.
func TestIm2colPaddingMatchesPad(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, c := range []struct {
		x, k, s, d []int
		pads       [][2]int
	}{
		{[]int{2, 5, 6, 3}, []int{3, 3}, []int{1, 1}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}},
		{[]int{2, 7, 6, 2}, []int{4, 4}, []int{2, 2}, []int{1, 1}, [][2]int{{1, 2}, {0, 1}}},
		{[]int{1, 4, 4, 2}, []int{3, 3}, []int{1, 1}, []int{1, 1}, [][2]int{{3, 3}, {3, 2}}},
		{[]int{1, 7, 7, 2}, []int{3, 3}, []int{1, 2}, []int{2, 2}, [][2]int{{2, 2}, {2, 1}}},
		{[]int{3, 9, 4}, []int{4}, []int{2}, []int{1}, [][2]int{{1, 2}}},
		{[]int{2, 8, 3}, []int{3}, []int{1}, []int{3}, [][2]int{{4, 0}}},
		{[]int{1, 3, 4, 5, 2}, []int{2, 3, 2}, []int{1, 2, 1}, []int{1, 1, 2}, [][2]int{{1, 0}, {1, 1}, {0, 2}}},
		{[]int{2, 5, 5, 1}, []int{1, 1}, []int{1, 1}, []int{1, 1}, [][2]int{{0, 0}, {2, 0}}},
	} {
		n := len(c.k)
		padDims := slices.Clone(c.x)
		cfg := make([]backends.PadAxis, n+2)
		out := make([]int, n)
		kpos := 1
		for i := range n {
			padDims[1+i] += c.pads[i][0] + c.pads[i][1]
			cfg[1+i] = backends.PadAxis{Start: c.pads[i][0], End: c.pads[i][1]}
			out[i] = (padDims[1+i]-(c.k[i]-1)*c.d[i]-1)/c.s[i] + 1
			kpos *= c.k[i]
		}
		size := func(d []int) int {
			s := 1
			for _, v := range d {
				s *= v
			}
			return s
		}
		x := randF32(r, size(c.x))
		xp := make([]float32, size(padDims))
		padKernel(xp, x, 0, c.x, cfg, padDims)
		pDims := slices.Concat(c.x[:1], out, []int{kpos, c.x[n+1]})
		want, got := make([]float32, size(pDims)), make([]float32, size(pDims))
		for i := range got {
			got[i] = float32(math.NaN()) // every entry must be written
		}
		im2colKernel(want, xp, padDims, &im2colNodeData{k: c.k, strides: c.s, dil: c.d, out: out})
		lo := make([]int, n)
		for i := range n {
			lo[i] = c.pads[i][0]
		}
		im2colParallel(got, x, c.x, &im2colNodeData{k: c.k, strides: c.s, dil: c.d, out: out, lo: lo})
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("x %v k %v s %v d %v pads %v: entry %d = %g, pad then im2col gives %g", c.x, c.k, c.s, c.d, c.pads, i, got[i], want[i])
				break
			}
		}
	}
}
