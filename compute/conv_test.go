package compute

import (
	"fmt"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// convVariant is one graph.Convolve configuration.
type convVariant struct {
	name          string
	x, k          []int // see fn
	strides       []int
	pads          [][2]int // nil: no padding
	dil           []int
	groups        int
	channelsFirst bool
}

// fn is graph.ConvGeneral with the variant's layout: channels last x [B, S..., Cin] with kernel
// [K..., Cin/G, Cout], or channels first (ONNX's NCHW/OIHW) x [B, Cin, S...] with kernel [Cout, Cin/G, K...].
func (c convVariant) fn(in []*graph.Node) *graph.Node {
	n := len(c.x) - 2
	var axes backends.ConvolveAxesConfig
	if c.channelsFirst {
		axes = backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: iotaFrom(2, n),
			KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: iotaFrom(2, n),
			OutputBatch: 0, OutputChannels: 1, OutputSpatial: iotaFrom(2, n)}
	} else {
		axes = backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: n + 1, InputSpatial: iotaFrom(1, n),
			KernelInputChannels: n, KernelOutputChannels: n + 1, KernelSpatial: iotaFrom(0, n),
			OutputBatch: 0, OutputChannels: n + 1, OutputSpatial: iotaFrom(1, n)}
	}
	pads := c.pads
	if pads == nil {
		pads = make([][2]int, n)
	}
	return graph.ConvGeneral(in[0], in[1], axes, c.strides, pads, nil, c.dil, max(c.groups, 1), 1)
}

// convVariants cover odd and even kernels, strides, paddings beyond 2·floor((k-1)/2) (where GoMLX's own
// rule panics), dilations, channel groups, 1-D and channels-first layouts.
var convVariants = []convVariant{
	{"3x3/s1/pad1", []int{2, 5, 6, 3}, []int{3, 3, 3, 4}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false},
	{"2x2/s2/patch", []int{2, 6, 4, 3}, []int{2, 2, 3, 5}, []int{2, 2}, nil, nil, 1, false},
	{"4x4/s4/patch", []int{1, 8, 8, 2}, []int{4, 4, 2, 3}, []int{4, 4}, nil, nil, 1, false},
	{"2x2/s1/pad(0,1)", []int{1, 5, 5, 2}, []int{2, 2, 2, 3}, []int{1, 1}, [][2]int{{0, 1}, {0, 1}}, nil, 1, false},
	{"2x3/s(2,1)/pad(1,2)", []int{2, 5, 6, 2}, []int{2, 3, 2, 2}, []int{2, 1}, [][2]int{{1, 2}, {2, 1}}, nil, 1, false},
	{"3x3/s1/pad3(large)", []int{1, 4, 4, 2}, []int{3, 3, 2, 2}, []int{1, 1}, [][2]int{{3, 3}, {3, 2}}, nil, 1, false},
	{"4x4/s2/pad1", []int{1, 7, 6, 2}, []int{4, 4, 2, 3}, []int{2, 2}, [][2]int{{1, 1}, {1, 1}}, nil, 1, false},
	{"3x3/dil2/pad2", []int{1, 7, 7, 2}, []int{3, 3, 2, 3}, []int{1, 1}, [][2]int{{2, 2}, {2, 2}}, []int{2, 2}, 1, false},
	{"2x2/dil3/s2", []int{1, 9, 8, 2}, []int{2, 2, 2, 2}, []int{2, 2}, [][2]int{{1, 0}, {0, 1}}, []int{3, 3}, 1, false},
	{"3x3/groups2", []int{2, 5, 5, 4}, []int{3, 3, 2, 6}, []int{1, 1}, [][2]int{{1, 1}, {1, 1}}, nil, 2, false},
	{"depthwise3x3/s2", []int{1, 6, 6, 3}, []int{3, 3, 1, 3}, []int{2, 2}, [][2]int{{1, 1}, {1, 1}}, nil, 3, false},
	{"1d/k4/s2", []int{2, 9, 3}, []int{4, 3, 2}, []int{2}, [][2]int{{1, 2}}, nil, 1, false},
	{"channels-first/3x2/s2", []int{2, 3, 6, 5}, []int{2, 3, 3, 2}, []int{2, 2}, [][2]int{{1, 1}, {0, 1}}, nil, 1, true},
}

// TestConvGradient checks the registered ConvGeneral rule against finite differences on every variant.
func TestConvGradient(t *testing.T) {
	backend := testBackend(t)
	for _, c := range convVariants {
		t.Run(c.name, func(t *testing.T) {
			e, err := CheckGradient(backend, c.fn, gradCase{dims: [][]int{c.x, c.k}}.inputs(3), nil)
			if err != nil {
				t.Fatal(err)
			}
			if e > gradTol {
				t.Errorf("max relative error %.3g > %g", e, gradTol)
			}
		})
	}
}

// TestStockConvGradientIsWrong documents why the rule is replaced: GoMLX's own rule, checked the same
// way on an even-kernel patch convolution, is far off (or panics). If this starts passing, GoMLX has
// been fixed and the replacement can be reconsidered.
func TestStockConvGradientIsWrong(t *testing.T) {
	backend := testBackend(t)
	vjpMu.Lock()
	ours := graph.VJPRegistration[graph.NodeTypeConvGeneral]
	graph.VJPRegistration[graph.NodeTypeConvGeneral] = stockConvVJP
	vjpMu.Unlock()
	defer func() {
		vjpMu.Lock()
		graph.VJPRegistration[graph.NodeTypeConvGeneral] = ours
		vjpMu.Unlock()
	}()
	c := convVariants[1] // 2x2 stride 2
	e, err := CheckGradient(backend, c.fn, gradCase{dims: [][]int{c.x, c.k}}.inputs(3), nil)
	if err == nil && e < 1e-3 {
		t.Fatalf("GoMLX's own conv gradient now checks out on %s (error %.3g)", c.name, e)
	}
	t.Logf("GoMLX's own rule on %s: error %.3g, %v", c.name, e, err)
}

func ExampleCheckGradient_conv() {
	backend, _ := NewBackend("go")
	c := convVariants[1]
	e, _ := CheckGradient(backend, c.fn, gradCase{dims: [][]int{c.x, c.k}}.inputs(3), nil)
	fmt.Println(e < 1e-6)
	// Output: true
}
