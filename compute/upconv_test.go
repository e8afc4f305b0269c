package compute

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// repeatAxis repeats each entry of x k times along axis a as models/onnx/shim's repeatAlong does:
// Reshape (a unit axis after a), a broadcast of it to k, Reshape (the two merged).
func repeatAxis(x *graph.Node, a, k int) *graph.Node {
	dims := x.Shape().Dimensions
	split := append(append(append([]int(nil), dims[:a+1]...), 1), dims[a+1:]...)
	wide := append([]int(nil), split...)
	wide[a+1] = k
	out := append([]int(nil), dims...)
	out[a] *= k
	return graph.Reshape(graph.BroadcastToDims(graph.Reshape(x, split...), wide...), out...)
}

// upsampleNCHW is the nearest upsampling of the NCHW x by kh, kw written channels-last, as the
// importer writes it (models/onnx/shim/resize.go, repeatNHWC); wFirst repeats W before H.
func upsampleNCHW(x *graph.Node, kh, kw int, wFirst bool) *graph.Node {
	y := graph.TransposeAllAxes(x, 0, 2, 3, 1)
	if wFirst {
		y = repeatAxis(repeatAxis(y, 2, kw), 1, kh)
	} else {
		y = repeatAxis(repeatAxis(y, 1, kh), 2, kw)
	}
	return graph.TransposeAllAxes(y, 0, 3, 1, 2)
}

// TestUpsampledConv: a 3x3 convolution (stride 1, padding 1) of a nearest 2x upsampling, computed as
// one 2x2 convolution of the low-resolution image and an interleave (upconv.go), gives SimpleGo's
// values of the plain graph within 1e-5 relative, on oneDNN and on the im2col path, with and without
// a bias (folded into the 2x2 convolution, or left to the plain Add when the un-biased output is also
// read), whichever axis is repeated first, and when the upsampled image is an output too; gradients of
// Σ y·sin(y) with respect to the image, the kernel and the bias equal those of the graph with the
// rewrite off. A 3x3 convolution without padding, one of an upsampling by 3, a 2x2 one and one of
// an image under upConvMinPixels are not rewritten.
func TestUpsampledConv(t *testing.T) {
	if !MatmulPath().Fast || convDNNLLib() == nil {
		t.Skip("oneDNN is not in use here: no convolution is rewritten")
	}
	fast, stock := testBackend(t), stockBackend(t)
	defer convDNNLOn.Store(true)
	conv := func(x, k *graph.Node, pad int) *graph.Node {
		c := convVariant{x: x.Shape().Dimensions, strides: []int{1, 1}, pads: [][2]int{{pad, pad}, {pad, pad}}, dil: []int{1, 1}, channelsFirst: true}
		return c.fn([]*graph.Node{x, k})
	}
	const n, cin, cout = 2, 5, 6
	type variant struct {
		name     string
		kh, kw   int // the upsampling
		ksize    int
		pad      int
		bias     bool
		wFirst   bool
		outputs  string // "y", "y+conv" (the un-biased output read too), "y+up" (the upsampled image too)
		rewrites int64
		h, w     int // the low-resolution image
	}
	for _, v := range []variant{
		{"plain", 2, 2, 3, 1, false, false, "y", 1, 23, 29},
		{"bias", 2, 2, 3, 1, true, false, "y", 1, 23, 29},
		{"bias/W first", 2, 2, 3, 1, true, true, "y", 1, 23, 29},
		{"bias/un-biased read", 2, 2, 3, 1, true, false, "y+conv", 1, 23, 29},
		{"upsampled image read", 2, 2, 3, 1, true, false, "y+up", 1, 23, 29},
		{"no padding", 2, 2, 3, 0, false, false, "y", 0, 23, 29},
		{"upsampling by 3", 3, 3, 3, 1, false, false, "y", 0, 23, 29},
		{"2x2 kernel", 2, 2, 2, 1, false, false, "y", 0, 23, 29},
		{"small image", 2, 2, 3, 1, false, false, "y", 0, 15, 17}, // 2·15·17 < the default upConvMinPixels
	} {
		build := func(in []*graph.Node) []*graph.Node {
			up := upsampleNCHW(in[0], v.kh, v.kw, v.wFirst)
			c := conv(up, in[1], v.pad)
			y := c
			if v.bias {
				y = graph.Add(c, graph.Reshape(in[2], 1, cout, 1, 1))
			}
			switch v.outputs {
			case "y+conv":
				return []*graph.Node{y, c}
			case "y+up":
				return []*graph.Node{y, up}
			}
			return []*graph.Node{y}
		}
		inputs := func() []*tensors.Tensor { // fresh tensors for each backend and run
			return []*tensors.Tensor{randFloat32(3, n, cin, v.h, v.w), randFloat32(4, cout, cin, v.ksize, v.ksize), randFloat32(5, cout)}
		}
		compare := func(what string, got []*tensors.Tensor, want [][]float64) {
			t.Helper()
			for k := range want {
				if d, scale := scaledDiff(t, got[k], want[k]); d > 1e-5*scale || math.IsNaN(d) {
					t.Errorf("%s %s: output %d differs by %g (scale %g)", v.name, what, k, d, scale)
				}
			}
		}
		exec, err := graph.NewExec(fast, build)
		if err != nil {
			t.Fatal(err)
		}
		before := statUpConv.Load()
		want := eval(t, stock, build, inputs()...)
		for run := range 2 { // the second on the im2col path
			convDNNLOn.Store(run == 0)
			in := inputs()
			out, err := exec.Exec(in[0], in[1], in[2])
			if err != nil {
				t.Fatal(err)
			}
			compare([]string{"forward", "forward (im2col)"}[run], out, want)
		}
		convDNNLOn.Store(true)
		exec.Finalize()
		if d := statUpConv.Load() - before; d != v.rewrites {
			t.Errorf("%s: %d convolutions rewritten, want %d", v.name, d, v.rewrites)
		}
		if v.rewrites == 0 || v.outputs != "y" {
			continue
		}
		grads := func(in []*graph.Node) []*graph.Node {
			y := build(in)[0]
			return append([]*graph.Node{y}, graph.Gradient(graph.ReduceAllSum(graph.Mul(y, graph.Sin(y))), in...)...)
		}
		upConvOn.Store(false)
		wantG := eval(t, fast, grads, inputs()...)
		upConvOn.Store(true)
		before = statUpConv.Load()
		gexec, err := graph.NewExec(fast, grads)
		if err != nil {
			t.Fatal(err)
		}
		in := inputs()
		out, err := gexec.Exec(in[0], in[1], in[2])
		if err != nil {
			t.Fatal(err)
		}
		gexec.Finalize()
		if statUpConv.Load() == before {
			t.Errorf("%s gradient: the convolution was not rewritten", v.name)
		}
		if !v.bias { // the bias's gradient is then zero, and SimpleGo's graph has no such output
			out, wantG = out[:3], wantG[:3]
		}
		compare("gradient", out, wantG)
	}
}

// TestPhaseKernels: each phase kernel is the sum of the 3x3 kernel's taps it stands for, checked
// against the direct convolution of an upsampled impulse image: convolving U (the upsampling of a
// single 1 at (i, j)) with K at output (2i+a+dr, 2j+b+dc) must equal the phase kernel's tap.
func TestPhaseKernels(t *testing.T) {
	k := make([]float64, 9)
	for i := range k {
		k[i] = float64(i*i + 1)
	}
	out := make([]float64, 16)
	phaseKernelsOf(out, k, 1)
	// conv(U, K)[p, q] = Σ_{r,s} K[r, s]·U[p+r-1, q+s-1], U[x, y] = 1 iff ⌊x/2⌋ = 1 and ⌊y/2⌋ = 1
	// (the impulse at (1, 1) of a 3x3 image, upsampled to 6x6).
	convAt := func(p, q int) float64 {
		s := 0.0
		for r := range 3 {
			for c := range 3 {
				x, y := p+r-1, q+c-1
				if x >= 0 && y >= 0 && x/2 == 1 && y/2 == 1 {
					s += k[r*3+c]
				}
			}
		}
		return s
	}
	// phase (a, b) at low-resolution output (i, j) reads x at rows i+a-1+u, columns j+b-1+v: the
	// impulse at (1, 1) is read by tap (u, v) = (2-i-a, 2-j-b).
	for a := range 2 {
		for b := range 2 {
			for i := range 3 {
				for j := range 3 {
					u, v := 2-i-a, 2-j-b
					want := convAt(2*i+a, 2*j+b)
					got := 0.0
					if u >= 0 && u < 2 && v >= 0 && v < 2 {
						got = out[(2*a+b)*4+u*2+v]
					}
					if got != want {
						t.Errorf("phase (%d,%d) at (%d,%d): %g, want %g", a, b, i, j, got, want)
					}
				}
			}
		}
	}
}
