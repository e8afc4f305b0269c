package shim

import (
	"math"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// Ops text-to-image exports use that onnx-gomlx v0.3.4 lacks or gets wrong: MaxPool and
// AveragePool (its pools default the strides to the kernel size) and Einsum.
func init() {
	ours["MaxPool"] = op{fn: opMaxPool, check: checkPool}
	ours["AveragePool"] = op{fn: opAveragePool, check: checkPool}
	ours["Einsum"] = op{fn: opEinsum, check: checkEinsum}
}

func checkPool(_ *Model, n *node) string {
	if why := checkConv(nil, n); why != "" {
		return why
	}
	if n.intAttr("storage_order", 0) != 0 {
		return "storage_order=1"
	}
	if n.op == "MaxPool" && len(n.out) > 1 && n.out[1] != "" {
		return "Indices output"
	}
	if len(n.intsAttr("kernel_shape")) == 0 {
		return "no kernel_shape"
	}
	return ""
}

// poolGeometry is one pooling node's windows: per spatial axis the kernel, stride, dilation,
// explicit padding [begin, end], the extra end padding that ceil_mode needs, and the output size.
type poolGeometry struct {
	kernel, strides, dil []int
	pads                 [][2]int
	extra, out           []int
}

// geometry computes the windows of a pooling node over spatial dimensions in:
// out = floor_or_ceil((in + pb + pe - dil (k-1) - 1) / s) + 1, where in ceil mode a window must
// start inside the input or its begin padding (ONNX's and PyTorch's rule).
func geometry(n *node, in []int) poolGeometry {
	k := len(in)
	kernel := n.intsAttr("kernel_shape")
	if len(kernel) != k {
		panicf("%s: kernel_shape %v for %d spatial axes", n, kernel, k)
	}
	p := poolGeometry{kernel: kernel, strides: orOnes(n.intsAttr("strides"), k), dil: orOnes(n.intsAttr("dilations"), k)}
	p.pads = convPads(n, in, p.kernel, p.strides, p.dil)
	p.extra, p.out = make([]int, k), make([]int, k)
	for i := range k {
		span := in[i] + p.pads[i][0] + p.pads[i][1] - p.dil[i]*(p.kernel[i]-1) - 1
		if span < 0 {
			panicf("%s: window %d (dilation %d) larger than the padded input %d", n, p.kernel[i], p.dil[i], in[i]+p.pads[i][0]+p.pads[i][1])
		}
		o := span/p.strides[i] + 1
		if n.intAttr("ceil_mode", 0) != 0 && span%p.strides[i] != 0 {
			if o*p.strides[i] < in[i]+p.pads[i][0] {
				o++
			}
		}
		p.out[i] = o
		p.extra[i] = max(0, (o-1)*p.strides[i]+p.dil[i]*(p.kernel[i]-1)+1-(in[i]+p.pads[i][0]+p.pads[i][1]))
	}
	return p
}

// windows pads x [N, C, spatial...] with fill (explicit pads, then ceil mode's extra) and folds
// the strided slices x[..., o s + j dil, ...] over the kernel offsets j with combine, in the
// offsets' row-major order (so Max's gradient goes to the first maximum, as PyTorch's does).
func (p poolGeometry) windows(x, fill *Node, combine func(acc, v *Node) *Node) *Node {
	k := len(p.kernel)
	padAxes := make([]backends.PadAxis, x.Rank())
	for i := range k {
		padAxes[i+2] = backends.PadAxis{Start: p.pads[i][0], End: p.pads[i][1] + p.extra[i]}
	}
	xp := Pad(x, fill, padAxes...)
	offset := make([]int, k)
	var acc *Node
	for {
		spec := []SliceAxisSpec{AxisRange(), AxisRange()}
		for i := range k {
			start := offset[i] * p.dil[i]
			spec = append(spec, AxisRange(start, start+(p.out[i]-1)*p.strides[i]+1).Stride(p.strides[i]))
		}
		v := Slice(xp, spec...)
		if acc == nil {
			acc = v
		} else {
			acc = combine(acc, v)
		}
		i := k - 1
		for ; i >= 0; i-- {
			if offset[i]++; offset[i] < p.kernel[i] {
				break
			}
			offset[i] = 0
		}
		if i < 0 {
			return acc
		}
	}
}

// lowest is the pad value of max pooling: the dtype's lowest finite value (not -inf, whose
// differences in Max's gradient would be NaN).
func lowest(g *Graph, dt dtypes.DType) *Node {
	switch dt {
	case dtypes.Float64:
		return Const(g, -math.MaxFloat64)
	case dtypes.Float32:
		return Const(g, float32(-math.MaxFloat32))
	}
	return Infinity(g, dt, -1) // integers: the lowest value
}

// opMaxPool: Y[n,c,o] = max_j X[n,c,o s + j dil - pb] over the kernel window, padding ignored.
func opMaxPool(_ *builder, n *node, in []*Node) []*Node {
	x := in[0]
	p := geometry(n, x.Shape().Dimensions[2:])
	return one(p.windows(x, lowest(x.Graph(), x.DType()), Max))
}

// opAveragePool: Y[n,c,o] = sum_j X[n,c,o s + j dil - pb] / count(o), where count is the number
// of window positions inside the input (count_include_pad=0) or inside the input and its explicit
// padding (count_include_pad=1); ceil mode's extra positions are never counted (PyTorch's rule).
func opAveragePool(_ *builder, n *node, in []*Node) []*Node {
	x := in[0]
	spatial := x.Shape().Dimensions[2:]
	p := geometry(n, spatial)
	sum := p.windows(x, ScalarZero(x.Graph(), x.DType()), Add)
	include := n.intAttr("count_include_pad", 0) != 0
	counts := []float64{1}
	for i, d := range spatial {
		lo, hi := p.pads[i][0], p.pads[i][0]+d // the input's span in padded coordinates
		if include {
			lo, hi = 0, d+p.pads[i][0]+p.pads[i][1]
		}
		next := make([]float64, 0, len(counts)*p.out[i])
		for _, c := range counts {
			for o := range p.out[i] {
				m := 0
				for j := range p.kernel[i] {
					if pos := o*p.strides[i] + j*p.dil[i]; pos >= lo && pos < hi {
						m++
					}
				}
				next = append(next, c*float64(m))
			}
		}
		counts = next
	}
	div := make([]float64, len(counts))
	for i, c := range counts {
		div[i] = 1 / c
	}
	w := ConvertDType(Const(x.Graph(), div), x.DType())
	w = Reshape(w, append([]int{1, 1}, p.out...)...)
	return one(Mul(sum, w))
}

// einsumTerm is one operand's labels (runes; an ellipsis expanded to labels of its own).
type einsumTerm []rune

// parseEinsum splits an equation into its input terms and output term, expanding "..." for the
// given input ranks (ellipsis axes align from the right, as in broadcasting). Without "->" the
// output is the ellipsis axes followed by the labels used once, in alphabetical order.
func parseEinsum(eq string, ranks []int) (ins []einsumTerm, out einsumTerm, ok bool) {
	lhs, rhs, explicit := cutString(eq, "->")
	parts := splitString(lhs, ',')
	if len(parts) != len(ranks) {
		return nil, nil, false
	}
	maxEll := 0
	for i, part := range parts {
		letters, hasEll := countLetters(part)
		if letters < 0 || (!hasEll && letters != ranks[i]) || (hasEll && letters > ranks[i]) {
			return nil, nil, false
		}
		if hasEll {
			maxEll = max(maxEll, ranks[i]-letters)
		}
	}
	ell := make([]rune, maxEll) // private labels for the ellipsis axes
	for i := range ell {
		ell[i] = rune(0x10000 + i)
	}
	expand := func(s string, rank int) einsumTerm {
		var t einsumTerm
		for i := 0; i < len(s); i++ {
			if s[i] == '.' {
				letters, _ := countLetters(s)
				t = append(t, ell[maxEll-(rank-letters):]...)
				i += 2
				continue
			}
			t = append(t, rune(s[i]))
		}
		return t
	}
	uses := map[rune]int{}
	for i, part := range parts {
		t := expand(part, ranks[i])
		for j, r := range t {
			if slices.Contains(t[:j], r) {
				return nil, nil, false // a repeated label in one operand (a diagonal): unsupported
			}
			uses[r]++
		}
		ins = append(ins, t)
	}
	if explicit {
		if n, _ := countLetters(rhs); n < 0 {
			return nil, nil, false
		}
		out = expand(rhs, maxEll+countOnly(rhs))
		for j, r := range out {
			if uses[r] == 0 || slices.Contains(out[:j], r) {
				return nil, nil, false
			}
		}
		return ins, out, true
	}
	out = append(out, ell...)
	for r := 'A'; r <= 'z'; r++ {
		if uses[r] == 1 {
			out = append(out, r)
		}
	}
	return ins, out, true
}

// countLetters returns the number of labels of a term and whether it has an ellipsis; -1 when
// the term is malformed.
func countLetters(s string) (int, bool) {
	n, ell := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if ell || i+2 >= len(s) || s[i+1] != '.' || s[i+2] != '.' {
				return -1, false
			}
			ell = true
			i += 2
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			n++
		case c == ' ':
		default:
			return -1, false
		}
	}
	return n, ell
}

func countOnly(s string) int { n, _ := countLetters(s); return n }

func cutString(s, sep string) (before, after string, found bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

func splitString(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == sep {
			parts = append(parts, stripSpaces(s[start:i]))
			start = i + 1
		}
	}
	return parts
}

func stripSpaces(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

func checkEinsum(_ *Model, n *node) string {
	eq := stripSpaces(n.strAttr("equation", ""))
	lhs, _, _ := cutString(eq, "->")
	parts := splitString(lhs, ',')
	if len(parts) != len(n.in) || len(parts) == 0 {
		return "equation=" + eq
	}
	for _, part := range parts {
		if c, _ := countLetters(part); c < 0 {
			return "equation=" + eq
		}
		seen := map[byte]bool{}
		for i := 0; i < len(part); i++ {
			if c := part[i]; c != '.' {
				if seen[c] {
					return "equation=" + eq + " (a repeated index: diagonals are not supported)"
				}
				seen[c] = true
			}
		}
	}
	return ""
}

// opEinsum: Y[out] = sum over the labels not in out of prod_k X_k[term_k]. Operands are
// contracted left to right, each pair with one DotGeneral (shared labels still needed later are
// batch axes, the others contracted); labels used by one operand only and not needed later are
// summed out first.
func opEinsum(_ *builder, n *node, in []*Node) []*Node {
	ranks := make([]int, len(in))
	for i, x := range in {
		ranks[i] = x.Rank()
	}
	terms, out, ok := parseEinsum(stripSpaces(n.strAttr("equation", "")), ranks)
	if !ok {
		panicf("%s: equation %q does not fit inputs of ranks %v", n, n.strAttr("equation", ""), ranks)
	}
	labels := func(ts ...einsumTerm) map[rune]bool {
		set := map[rune]bool{}
		for _, t := range ts {
			for _, r := range t {
				set[r] = true
			}
		}
		return set
	}
	acc, accT := in[0], terms[0]
	for k := 1; k < len(in); k++ {
		acc, accT = contractPair(n, acc, accT, in[k], terms[k], labels(append([]einsumTerm{out}, terms[k+1:]...)...))
	}
	acc, accT = sumOut(acc, accT, labels(out))
	perm := make([]int, len(out))
	for i, r := range out {
		perm[i] = slices.Index(accT, r)
	}
	if len(perm) > 1 && !slices.IsSorted(perm) {
		acc = TransposeAllAxes(acc, perm...)
	}
	return one(acc)
}

// sumOut sums x over the labels of t that keep does not hold.
func sumOut(x *Node, t einsumTerm, keep map[rune]bool) (*Node, einsumTerm) {
	var axes []int
	var rest einsumTerm
	for i, r := range t {
		if keep[r] {
			rest = append(rest, r)
		} else {
			axes = append(axes, i)
		}
	}
	if len(axes) == 0 {
		return x, t
	}
	return ReduceSum(x, axes...), rest
}

// contractPair multiplies a [ta] and b [tb] and sums the shared labels not in needed: the result is
// labelled batch labels, then a's free labels, then b's (DotGeneral's order). A size-1 axis facing
// a larger one is broadcast first.
func contractPair(n *node, a *Node, ta einsumTerm, b *Node, tb einsumTerm, needed map[rune]bool) (*Node, einsumTerm) {
	keepA, keepB := map[rune]bool{}, map[rune]bool{}
	for r := range needed {
		keepA[r], keepB[r] = true, true
	}
	for _, r := range tb {
		keepA[r] = true
	}
	for _, r := range ta {
		keepB[r] = true
	}
	a, ta = sumOut(a, ta, keepA)
	b, tb = sumOut(b, tb, keepB)
	a, b = broadcastShared(n, a, ta, b, tb)
	var batchA, batchB, conA, conB []int
	var res einsumTerm
	for i, r := range ta {
		j := slices.Index(tb, r)
		switch {
		case j < 0:
		case needed[r]:
			batchA, batchB = append(batchA, i), append(batchB, j)
			res = append(res, r)
		default:
			conA, conB = append(conA, i), append(conB, j)
		}
	}
	for _, r := range ta {
		if !slices.Contains(tb, r) {
			res = append(res, r)
		}
	}
	for _, r := range tb {
		if !slices.Contains(ta, r) {
			res = append(res, r)
		}
	}
	return DotGeneral(a, conA, batchA, b, conB, batchB), res
}

// broadcastShared broadcasts a size-1 axis of one operand to the other's size on a shared label.
func broadcastShared(n *node, a *Node, ta einsumTerm, b *Node, tb einsumTerm) (*Node, *Node) {
	da, db := slices.Clone(a.Shape().Dimensions), slices.Clone(b.Shape().Dimensions)
	for i, r := range ta {
		j := slices.Index(tb, r)
		if j < 0 || da[i] == db[j] {
			continue
		}
		switch {
		case da[i] == 1:
			da[i] = db[j]
		case db[j] == 1:
			db[j] = da[i]
		default:
			panicf("%s: label %q has sizes %d and %d", n, string(r), da[i], db[j])
		}
	}
	if !slices.Equal(da, a.Shape().Dimensions) {
		a = BroadcastToDims(a, da...)
	}
	if !slices.Equal(db, b.Shape().Dimensions) {
		b = BroadcastToDims(b, db...)
	}
	return a, b
}
