package shim

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// opGraph builds our op n on inputs (float64 parameters) plus integer constants (as a traced
// model's scales or sizes are).
func opGraph(n *node, consts ...*tensors.Tensor) func(in []*Node) *Node {
	return func(in []*Node) *Node {
		gr := in[0].Graph()
		b := &builder{g: &Model{}, ctx: context.New(), gr: gr, cur: gr, vals: map[string]*Node{}, consts: map[*Node]*tensors.Tensor{}}
		args := slices.Clone(in)
		for _, c := range consts {
			if c == nil {
				args = append(args, nil)
				continue
			}
			args = append(args, b.mkConst(gr, c))
		}
		return ours[n.op].fn(b, n, args)[0]
	}
}

func seq64(n int, f func(i int) float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = f(i)
	}
	return v
}

// wavy is a test input with no ties (so max pooling's gradient is defined).
func wavy(i int) float64 { return math.Sin(float64(i)*0.77+0.3)*2 + float64(i%7)*0.01 }

func intsAttr(kv ...int) *attr {
	a := &attr{typ: 7}
	for _, v := range kv {
		a.ints = append(a.ints, int64(v))
	}
	return a
}

// checkOp runs op n on x and compares it with want (computed here from the op's definition), then
// its gradient with finite differences.
func checkOp(t *testing.T, be backends.Backend, name string, n *node, x *tensors.Tensor, want []float64, tol float64, consts ...*tensors.Tensor) {
	t.Helper()
	f := opGraph(n, consts...)
	got := tensors.MustCopyFlatData[float64](MustExecOnce(be, func(x *Node) *Node { return f([]*Node{x}) }, x))
	if len(got) != len(want) {
		t.Fatalf("%s: %d outputs, want %d", name, len(got), len(want))
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > tol*math.Max(1, math.Abs(want[i])) {
			t.Fatalf("%s: output %d is %.12g, want %.12g", name, i, got[i], want[i])
		}
	}
	e, err := compute.CheckGradient(be, f, []*tensors.Tensor{x}, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if e > 1e-5 {
		t.Errorf("%s: gradient differs from finite differences by %.3g (relative)", name, e)
	}
}

// poolRef is the definition of 2-D max and average pooling on x [1, 1, h, w].
func poolRef(x []float64, h, w int, k, s, d, pads [2]int, padsEnd [2]int, ceil, isMax, include bool) ([]float64, [2]int) {
	var out [2]int
	dims := [2]int{h, w}
	for i := range 2 {
		span := dims[i] + pads[i] + padsEnd[i] - d[i]*(k[i]-1) - 1
		out[i] = span/s[i] + 1
		if ceil && span%s[i] != 0 && out[i]*s[i] < dims[i]+pads[i] {
			out[i]++
		}
	}
	var y []float64
	for oy := range out[0] {
		for ox := range out[1] {
			acc, cnt := math.Inf(-1), 0
			if !isMax {
				acc = 0
			}
			for ky := range k[0] {
				for kx := range k[1] {
					iy, ix := oy*s[0]+ky*d[0]-pads[0], ox*s[1]+kx*d[1]-pads[1]
					inside := iy >= 0 && iy < h && ix >= 0 && ix < w
					inPad := iy >= -pads[0] && iy < h+padsEnd[0] && ix >= -pads[1] && ix < w+padsEnd[1]
					switch {
					case inside && isMax:
						acc = math.Max(acc, x[iy*w+ix])
					case inside:
						acc += x[iy*w+ix]
						cnt++
					case inPad && include:
						cnt++
					}
				}
			}
			if !isMax {
				acc /= float64(cnt)
			}
			y = append(y, acc)
		}
	}
	return y, out
}

// TestPools checks MaxPool and AveragePool against their definition (computed here) and their
// gradients against finite differences, over pads, strides, dilations, ceil mode and
// count_include_pad.
func TestPools(t *testing.T) {
	const h, w = 7, 6
	x := seq64(h*w, wavy)
	xt := tensors.FromFlatDataAndDimensions(x, 1, 1, h, w)
	be := testutil.Backend(t)
	for _, c := range []struct {
		k, s, d, pb, pe [2]int
		ceil            bool
	}{
		{k: [2]int{3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, pb: [2]int{1, 1}, pe: [2]int{1, 1}},
		{k: [2]int{2, 2}, s: [2]int{2, 2}, d: [2]int{1, 1}},
		{k: [2]int{3, 2}, s: [2]int{2, 3}, d: [2]int{1, 1}, pb: [2]int{1, 0}, pe: [2]int{0, 1}, ceil: true},
		{k: [2]int{2, 2}, s: [2]int{1, 2}, d: [2]int{2, 2}, pb: [2]int{0, 1}, pe: [2]int{1, 1}},
		{k: [2]int{3, 3}, s: [2]int{2, 2}, d: [2]int{1, 1}, pb: [2]int{1, 1}, pe: [2]int{1, 1}, ceil: true},
	} {
		for _, kind := range []string{"MaxPool", "AveragePool", "AveragePool+pad"} {
			op := kind
			include := kind == "AveragePool+pad"
			if include {
				op = "AveragePool"
			}
			n := &node{op: op, attrs: map[string]*attr{"kernel_shape": intsAttr(c.k[0], c.k[1]), "strides": intsAttr(c.s[0], c.s[1]),
				"dilations": intsAttr(c.d[0], c.d[1]), "pads": intsAttr(c.pb[0], c.pb[1], c.pe[0], c.pe[1])}}
			if c.ceil {
				n.attrs["ceil_mode"] = &attr{typ: 2, i: 1}
			}
			if include {
				n.attrs["count_include_pad"] = &attr{typ: 2, i: 1}
			}
			if c.d != [2]int{1, 1} && op == "AveragePool" {
				continue // AveragePool's dilations are opset 19
			}
			want, _ := poolRef(x, h, w, c.k, c.s, c.d, c.pb, c.pe, c.ceil, op == "MaxPool", include)
			checkOp(t, be, fmt.Sprintf("%s %+v", kind, c), n, xt, want, 1e-12)
		}
	}
}

// einsumRef evaluates an equation over explicit labels by summing over every label assignment.
func einsumRef(terms []string, out string, dims map[byte]int, xs [][]float64) []float64 {
	var labels []byte
	for _, t := range append(slices.Clone(terms), out) {
		for i := range len(t) {
			if !slices.Contains(labels, t[i]) {
				labels = append(labels, t[i])
			}
		}
	}
	index := func(t string, val map[byte]int) int {
		k := 0
		for i := range len(t) {
			k = k*dims[t[i]] + val[t[i]]
		}
		return k
	}
	size := 1
	for i := range len(out) {
		size *= dims[out[i]]
	}
	y := make([]float64, size)
	val := map[byte]int{}
	var rec func(j int)
	rec = func(j int) {
		if j == len(labels) {
			p := 1.0
			for k, t := range terms {
				p *= xs[k][index(t, val)]
			}
			y[index(out, val)] += p
			return
		}
		for v := range dims[labels[j]] {
			val[labels[j]] = v
			rec(j + 1)
		}
	}
	rec(0)
	return y
}

// TestEinsum checks Einsum against its definition (a sum over every label assignment, computed
// here) and its gradients against finite differences: the attention forms exports use, implicit
// output, an ellipsis, a sum, an outer product and three operands.
func TestEinsum(t *testing.T) {
	dims := map[byte]int{'b': 2, 'h': 2, 'n': 3, 'm': 4, 'd': 3, 'i': 2, 'j': 3, 'k': 2}
	be := testutil.Backend(t)
	for _, c := range []struct{ eq, ref string }{
		{"bnhd,bmhd->bhnm", "bnhd,bmhd->bhnm"},
		{"bhnm,bmhd->bnhd", "bhnm,bmhd->bnhd"},
		{"ij,jk", "ij,jk->ik"},
		{"...ij,...jk->...ik", "bij,bjk->bik"},
		{"bij->", "bij->"},
		{"ij->ji", "ij->ji"},
		{"i,j->ij", "i,j->ij"},
		{"ij,jk,kd->id", "ij,jk,kd->id"},
		{"bnd,bnd->bn", "bnd,bnd->bn"},
	} {
		lhs, out, _ := cutString(c.ref, "->")
		terms := splitString(lhs, ',')
		var xs [][]float64
		var ts []*tensors.Tensor
		for k, term := range terms {
			var shape []int
			size := 1
			for i := range len(term) {
				shape = append(shape, dims[term[i]])
				size *= dims[term[i]]
			}
			v := seq64(size, func(i int) float64 { return wavy(i + 11*k) })
			xs = append(xs, v)
			ts = append(ts, tensors.FromFlatDataAndDimensions(v, shape...))
		}
		want := einsumRef(terms, out, dims, xs)
		n := &node{op: "Einsum", in: make([]string, len(terms)), attrs: map[string]*attr{"equation": {typ: 3, s: c.eq}}}
		if why := checkEinsum(nil, n); why != "" {
			t.Fatalf("%s refused: %s", c.eq, why)
		}
		f := opGraph(n)
		res := MustExecOnceN(be, func(in []*Node) []*Node { return []*Node{f(in)} }, toAny(ts)...)
		got := tensors.MustCopyFlatData[float64](res[0])
		if len(got) != len(want) {
			t.Fatalf("%s: %d outputs, want %d", c.eq, len(got), len(want))
		}
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-9*math.Max(1, math.Abs(want[i])) {
				t.Fatalf("%s: output %d is %.12g, want %.12g", c.eq, i, got[i], want[i])
			}
		}
		e, err := compute.CheckGradient(be, f, ts, nil)
		if err != nil || e > 1e-5 {
			t.Errorf("%s: gradient vs finite differences: relative error %.3g, %v", c.eq, e, err)
		}
	}
	for _, bad := range []string{"ii->i", "ij,jk->ik", "i..j->ij", "ij->q", "ijk->ijk", "ij->ii"} {
		n := &node{op: "Einsum", in: []string{"a"}, attrs: map[string]*attr{"equation": {typ: 3, s: bad}}}
		ok := checkEinsum(nil, n) == ""
		if ok {
			_, _, ok = parseEinsum(bad, []int{2})
		}
		if ok {
			t.Errorf("equation %q on one rank-2 input accepted", bad)
		}
	}
}

// TestCubicResize checks Resize's cubic mode against Keys' kernel written out here (PyTorch's
// bicubic: a = -0.75, half-pixel coordinates, edge clamping), up and down, and with
// exclude_outside; and its gradient against finite differences.
func TestCubicResize(t *testing.T) {
	const h, w = 5, 6
	x := seq64(h*w, wavy)
	xt := tensors.FromFlatDataAndDimensions(x, 1, 1, h, w)
	be := testutil.Backend(t)
	keys := func(a, d float64) float64 {
		d = math.Abs(d)
		if d <= 1 {
			return (a+2)*d*d*d - (a+3)*d*d + 1
		}
		if d < 2 {
			return a*d*d*d - 5*a*d*d + 8*a*d - 4*a
		}
		return 0
	}
	// weights[o][i] of one axis
	axisWeights := func(in, out int, a float64, exclude bool) [][]float64 {
		m := make([][]float64, out)
		for o := range out {
			m[o] = make([]float64, in)
			src := (float64(o)+0.5)*float64(in)/float64(out) - 0.5
			i0 := math.Floor(src)
			total := 0.0
			for k := -1; k <= 2; k++ {
				i := int(i0) + k
				wgt := keys(a, src-float64(i))
				if exclude && (i < 0 || i >= in) {
					continue
				}
				total += wgt
				m[o][min(max(i, 0), in-1)] += wgt
			}
			if exclude {
				for i := range m[o] {
					m[o][i] /= total
				}
			}
		}
		return m
	}
	for _, c := range []struct {
		oh, ow  int
		a       float64
		exclude bool
	}{{9, 11, -0.75, false}, {3, 4, -0.75, false}, {8, 4, -0.5, true}} {
		my, mx := axisWeights(h, c.oh, c.a, c.exclude), axisWeights(w, c.ow, c.a, c.exclude)
		var want []float64
		for oy := range c.oh {
			for ox := range c.ow {
				s := 0.0
				for iy := range h {
					for ix := range w {
						s += my[oy][iy] * mx[ox][ix] * x[iy*w+ix]
					}
				}
				want = append(want, s)
			}
		}
		n := &node{op: "Resize", attrs: map[string]*attr{"mode": {typ: 3, s: "cubic"}, "cubic_coeff_a": {typ: 1, f: float32(c.a)},
			"coordinate_transformation_mode": {typ: 3, s: "half_pixel"}}}
		if c.exclude {
			n.attrs["exclude_outside"] = &attr{typ: 2, i: 1}
		}
		if why := checkResize(nil, n); why != "" {
			t.Fatalf("refused: %s", why)
		}
		sizes := tensors.FromFlatDataAndDimensions([]int64{1, 1, int64(c.oh), int64(c.ow)}, 4)
		checkOp(t, be, fmt.Sprintf("cubic %+v", c), n, xt, want, 1e-6, nil, nil, sizes) // weights stored as float32
	}
}

// TestRepeatFactor: nearest upsampling by an integer factor, as PyTorch exports
// F.interpolate(scale_factor=2, mode="nearest") (asymmetric, floor) and with ONNX's default
// half_pixel and round_prefer_floor, is recognised as a repeat (built as a broadcast, not a
// product); linear upsampling, a non-integer factor and nearest downsampling are not. The values
// of both forms are checked by the Resize conformance tests.
func TestRepeatFactor(t *testing.T) {
	for _, c := range []struct {
		in, out       int
		mode, ctm, nm string
		k             int
	}{
		{4, 8, "nearest", "asymmetric", "floor", 2},
		{5, 15, "nearest", "half_pixel", "round_prefer_floor", 3},
		{4, 8, "linear", "asymmetric", "floor", 0},
		{4, 6, "nearest", "asymmetric", "floor", 0},
		{8, 4, "nearest", "asymmetric", "floor", 0},
	} {
		m := interpMatrix(c.in, c.out, float64(c.out)/float64(c.in), c.mode, c.ctm, c.nm, true, cubic{a: -0.75})
		k, ok := repeatFactor(m)
		if (c.k > 0) != ok || (ok && k != c.k) {
			t.Errorf("%d -> %d %s %s %s: repeat factor %d (%v), want %d", c.in, c.out, c.mode, c.ctm, c.nm, k, ok, c.k)
		}
	}
}
