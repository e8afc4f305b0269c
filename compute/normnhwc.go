package compute

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Normalizations that hand a convolution its input channels-last.
//
// The convolutions run on oneDNN in NHWC (convdnnl.go), so in an ONNX (NCHW) graph each one reads
// Transpose(x, NCHW→NHWC) and its output is transposed back. In a diffusion UNet or a VAE decoder
// the input of most convolutions is SiLU(GroupNorm(h)), and h is often another convolution's
// output. When the lowering of a convolution meets that pattern, with the GroupNorm built as a fused
// normalization node (normfuse.go) whose per-channel coefficients are constant over each channel's
// positions, it builds a twin of that node that writes its output as [N, H, W, C] (and, when the
// normalization's input is itself a transposed convolution output, reads that NHWC output instead),
// applies the SiLU in the twin (y·σ(y) with σ the backend's own logistic, logistic.go, so the values
// are those of the separate Logistic and Mul), and hands the result to the convolution without a
// Transpose. The NCHW chain stays in the graph for whatever else reads it; SimpleGo skips it when
// nothing does.
//
// The twin computes each row's statistics as the fused node does (the same float64 sums in the
// same order when it reads NCHW rows; per group over channels-last positions when it reads NHWC),
// each channel's coefficients as the fused node does, and writes (x - mean)·A + B with them, so
// reading NCHW it gives the fused node's values exactly, transposed. In a graph that computes
// gradients the normalization chain is replaced by its plain ops (unfuse.go); the twin is then
// replaced too, by the plain Transpose of the SiLU it stands for, since it is registered with the
// same chain.

// normNHWC is the layout of a twin normalization node (normNodeData.nhwc): the fused node's output
// is [N, c, hw] in NCHW order, the twin writes [N, hw, c].
type normNHWC struct {
	n, c, hw int
	dims     []int // the twin's shape, [N, H, W, C]
	inNHWC   bool  // x (input 0) is [N, hw, c]: the NCHW normalization input, transposed
	silu     bool  // the twin writes SiLU(y) = y·σ(y) of the normalization's y
}

var (
	// nhwcNormOn switches the twins on (tests compare them with the transposes).
	nhwcNormOn atomic.Bool
	// statNormNHWC counts twins built, statNormNHWCIn those reading an NHWC input (for tests).
	statNormNHWC, statNormNHWCIn atomic.Int64
)

func init() { nhwcNormOn.Store(true) }

// transposeRec is a Transpose the builder made: its operand and permutation.
type transposeRec struct {
	src  backends.Op
	perm []int
}

var (
	permToNHWC = []int{0, 2, 3, 1}
	permToNCHW = []int{0, 3, 1, 2}
)

// rememberTranspose records that out = Transpose(src, perm).
func (b *patchedBuilder) rememberTranspose(out, src backends.Op, perm []int) {
	if n, ok := out.(*simplego.Node); ok && b.fastPad {
		if b.transposes == nil {
			b.transposes = map[*simplego.Node]transposeRec{}
		}
		b.transposes[n] = transposeRec{src: src, perm: slices.Clone(perm)}
	}
}

// rememberReshape records that out = Reshape(src).
func (b *patchedBuilder) rememberReshape(out, src backends.Op) {
	n, ok1 := out.(*simplego.Node)
	s, ok2 := src.(*simplego.Node)
	if ok1 && ok2 && b.fastPad {
		if b.reshapes == nil {
			b.reshapes = map[*simplego.Node]*simplego.Node{}
		}
		b.reshapes[n] = s
	}
}

// nhwcConvInput returns Transpose(input, perm) built without the transpose, as described above, or
// ok=false when input is not (a SiLU of) a fused normalization this applies to.
func (b *patchedBuilder) nhwcConvInput(input backends.Op, perm []int) (out backends.Op, ok bool, err error) {
	if !nhwcNormOn.Load() || !b.normOn() || !slices.Equal(perm, permToNHWC) {
		return nil, false, nil
	}
	v, silu := input, false
	if t := b.tagOf(input); t.kind == fuseVSigma {
		if st := b.tags[t.sigma]; st.kind == fuseLogistic && st.x == t.v {
			v, silu = t.v, true
		}
	}
	nt := b.ntagOf(v)
	if nt.kind != normOut || nt.node == nil || nt.chain == nil {
		return nil, false, nil
	}
	d, ok := getNodeData(nt.node).(*normNodeData)
	ins, ok2 := nodeInputs(nt.node)
	if !ok || !ok2 || d.nhwc != nil || len(ins) == 0 {
		return nil, false, nil
	}
	vs, err := b.OpShape(v)
	if err != nil || vs.Rank() != 4 || !isFloatShape(vs) {
		return nil, false, err
	}
	n, c, hw := vs.Dimensions[0], vs.Dimensions[1], vs.Dimensions[2]*vs.Dimensions[3]
	if hw == 0 || d.m%hw != 0 || (c*hw)%d.m != 0 || d.run%hw != 0 {
		return nil, false, nil // a channel's positions would not share one row and one coefficient run
	}
	ins = slices.Clone(ins)
	layout := &normNHWC{n: n, c: c, hw: hw, dims: []int{n, vs.Dimensions[2], vs.Dimensions[3], c}, silu: silu}
	if y, ok := b.nhwcSource(ins[0], vs); ok {
		ins[0], layout.inNHWC = y, true
	}
	nd := *d
	nd.nhwc = layout
	twin := simplegoNewNode(b.Builder, backends.OpTypePad, shapes.Make(vs.DType, layout.dims...), ins...)
	if !setNodeData(twin, &nd) {
		return nil, false, nil
	}
	out = twin
	plain, err := b.Builder.Transpose(input, perm...)
	if err != nil {
		return nil, false, err
	}
	nt.chain.addSub(out, plain)
	statNormNHWC.Add(1)
	if layout.inNHWC {
		statNormNHWCIn.Add(1)
	}
	return out, true, nil
}

// nhwcSource returns y when x (the normalization's input, possibly a Reshape of it) is
// Transpose(y, NHWC→NCHW) of shape vs: a transposed convolution output, read channels-last instead.
func (b *patchedBuilder) nhwcSource(x *simplego.Node, vs shapes.Shape) (*simplego.Node, bool) {
	u := x
	if r, ok := b.reshapes[u]; ok {
		u = r
	}
	tr, ok := b.transposes[u]
	if !ok || !slices.Equal(tr.perm, permToNCHW) {
		return nil, false
	}
	us, err := b.OpShape(u)
	y, ok := tr.src.(*simplego.Node)
	if err != nil || !ok || !slices.Equal(us.Dimensions, vs.Dimensions) {
		return nil, false
	}
	return y, true
}

// normNHWCRun computes the twin's output out [N, hw, c] from x and the stages' operands (flats).
func normNHWCRun[T float32 | float64](out []T, flats []any, d *normNodeData) {
	l := d.nhwc
	x := flats[0].([]T)
	params := make([][]T, len(flats))
	for i, f := range flats[1:] {
		params[i+1] = f.([]T)
	}
	groups := l.n * l.c * l.hw / d.m // the normalized rows, over all batch entries
	sp := poolSlice[float64](&normStatScratch, 2*groups+3*l.n*l.c)
	defer normStatScratch.Put(sp)
	mean, variance := (*sp)[:groups], (*sp)[groups:2*groups]
	normNHWCStats(mean, variance, (*sp)[2*groups:], x, d)
	// Per (batch entry, channel): mean, A and B, as normRows computes them for the channel's run.
	nc := l.n * l.c
	per := l.hw * l.c
	rows := min(max(16, nhwcTile/l.c), l.hw)
	span := rows * l.c
	ts := poolSlice[T](&normCoefScratch, 3*nc+3*l.n*span)
	defer normCoefScratch.Put(ts)
	mu, ta, tb := (*ts)[:nc], (*ts)[nc:2*nc], (*ts)[2*nc:3*nc]
	for k := range mu {
		e := k * l.hw // the channel's first entry in NCHW order
		r := e / d.m
		a, bias := foldStages(params, d.stages, e, 1/math.Sqrt(variance[r]+d.eps))
		mu[k], ta[k], tb[k] = T(mean[r]), T(a), T(bias)
	}
	// The affine map and the SiLU run over chunks of whole positions (at least 16, about nhwcTile
	// values) rather than one position's c values at a time, with each batch entry's per-channel
	// mean, A and B repeated over a chunk. Reading NCHW, a task first transposes transposeSpan
	// positions' values into place (as transposeBlock does: whole cache lines of every channel's
	// row), then runs its chunks.
	taskRows := rows
	if !l.inNHWC {
		taskRows = min(l.hw, (transposeSpan+rows-1)/rows*rows)
	}
	tasks := (l.hw + taskRows - 1) / taskRows
	ns := l.n * span
	rm, ra, rb := (*ts)[3*nc:3*nc+ns], (*ts)[3*nc+ns:3*nc+2*ns], (*ts)[3*nc+2*ns:3*nc+3*ns]
	for i := range rm {
		b, ch := i/span, i%l.c
		rm[i], ra[i], rb[i] = mu[b*l.c+ch], ta[b*l.c+ch], tb[b*l.c+ch]
	}
	parallelAxis(l.n*tasks, len(out), func(lo, hi int) {
		var tmp []T
		if l.silu {
			tp := poolSlice[T](&normSiluScratch, span)
			defer normSiluScratch.Put(tp)
			tmp = *tp
		}
		for u := lo; u < hi; u++ {
			b, t0 := u/tasks, (u%tasks)*taskRows
			t1 := min(t0+taskRows, l.hw)
			xb, ob := x[b*per:(b+1)*per], out[b*per:(b+1)*per]
			src := xb
			if !l.inNHWC {
				// ob[p·c + ch] = xb[ch·hw + p] for the task's positions p, channels in bands.
				for c0 := 0; c0 < l.c; c0 += transposeSpan {
					c1 := min(c0+transposeSpan, l.c)
					if l.hw >= l.c {
						transposeTileSrcRows(ob, l.c, xb, l.hw, t0, t1, c0, c1)
					} else {
						transposeTileDstRows(ob, l.c, xb, l.hw, t0, t1, c0, c1)
					}
				}
				src = ob
			}
			for q0 := t0; q0 < t1; q0 += rows {
				e0, e1 := q0*l.c, min(q0+rows, t1)*l.c
				dst := ob[e0:e1]
				affineRow(dst, src[e0:e1], rm[b*span:], ra[b*span:], rb[b*span:])
				if l.silu {
					siluInPlace(dst, tmp)
				}
			}
		}
	})
}

// normNHWCStats sets mean[r] and variance[r] (biased, in float64) of each of the twin's normalized
// rows of x; work holds at least 3·N·c values of scratch.
func normNHWCStats[T float32 | float64](mean, variance, work []float64, x []T, d *normNodeData) {
	l := d.nhwc
	if !l.inNHWC {
		parallelAxis(len(mean), len(x), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				mean[r], variance[r] = rowStats(x[r*d.m : (r+1)*d.m])
			}
		})
		return
	}
	// Per channel sums over the positions, in blocks of 16 channels (each channel's sum in the same
	// order whatever the cut), then per group.
	g, nc := len(mean)/l.n, l.n*l.c
	shift, sum, sq := work[:nc], work[nc:2*nc], work[2*nc:3*nc]
	clear(sum)
	clear(sq)
	blocks := (l.c + 15) / 16
	parallelAxis(l.n*blocks, len(x), func(lo, hi int) {
		for u := lo; u < hi; u++ {
			b, c0 := u/blocks, (u%blocks)*16
			o := b * l.c
			chanStatsNHWC(shift[o:o+l.c], sum[o:o+l.c], sq[o:o+l.c], x[b*l.hw*l.c:(b+1)*l.hw*l.c], l.c, l.hw, g, c0, min(l.c, c0+16))
		}
	})
	for b := range l.n {
		o := b * l.c
		groupsFromChannels(mean[b*g:(b+1)*g], variance[b*g:(b+1)*g], shift[o:o+l.c], sum[o:o+l.c], sq[o:o+l.c], l.hw)
	}
}

// nhwcTile is about the number of values a task of the channels-last twin writes.
const nhwcTile = 2048

// siluInPlace replaces each y of ys by y·σ(y), σ computed as the backend's Logistic computes it
// (logistic32f for float32); tmp holds at least len(ys) values.
func siluInPlace[T float32 | float64](ys, tmp []T) {
	switch v := any(ys).(type) {
	case []float32:
		t := any(tmp).([]float32)[:len(v)]
		logistic32f(t, v)
		n := 0
		if binaryVector {
			n = len(v) &^ 7
		}
		if n > 0 {
			mulF32AVX2(v[:n], v[:n], t[:n])
		}
		for i := n; i < len(v); i++ {
			v[i] *= t[i]
		}
	case []float64:
		for i, y := range v {
			v[i] = y * logistic64(y)
		}
	}
}

// affineRow writes dst[ch] = (src[ch] - m[ch])·a[ch] + b[ch] (eight channels at a time in AVX2
// for float32, the same operations in the same order).
func affineRow[T float32 | float64](dst, src, m, a, b []T) {
	n := 0
	if binaryVector {
		n = len(src) &^ 7
	}
	if n > 0 {
		if d, ok := any(dst).([]float32); ok {
			affineF32AVX2(d[:n], any(src).([]float32)[:n], any(m).([]float32), any(a).([]float32), any(b).([]float32))
		} else {
			n = 0
		}
	}
	for ch := n; ch < len(src); ch++ {
		dst[ch] = (src[ch]-m[ch])*a[ch] + b[ch]
	}
}

// chanStatsNHWC sets, for the channels [c0, c1) of x [hw, c] (at most 16; channels in g equal
// groups), shift[ch] to the channel's group's first entry and s[ch], q[ch] to the sums over the
// positions of x - shift and of its square, in float64, position after position.
func chanStatsNHWC[T float32 | float64](shift, s, q []float64, x []T, c, hw, g, c0, c1 int) {
	cg := c / g
	for ch := c0; ch < c1; ch++ {
		shift[ch] = float64(x[(ch/cg)*cg])
	}
	if xf, ok := any(x).([]float32); ok && binaryVector && hw > 0 && c1-c0 == 16 {
		chanSums16AVX2(s[c0:], q[c0:], shift[c0:], xf[c0:], c, hw)
		return
	}
	for p := range hw {
		row := x[p*c+c0 : p*c+c1 : p*c+c1]
		for k, v := range row {
			ch := c0 + k
			dv := float64(v) - shift[ch]
			s[ch] += dv
			q[ch] += dv * dv
		}
	}
}

// groupsFromChannels sets mean[j] and variance[j] (biased) of group j from its channels' shifted
// sums (chanStatsNHWC) over hw positions each.
func groupsFromChannels(mean, variance, shift, s, q []float64, hw int) {
	g := len(mean)
	cg := len(s) / g
	n := float64(cg * hw)
	for j := range g {
		var sj, qj float64
		for ch := j * cg; ch < (j+1)*cg; ch++ {
			sj += s[ch]
			qj += q[ch]
		}
		mean[j] = shift[j*cg] + sj/n
		variance[j] = max(qj-sj*sj/n, 0) / n
	}
}

// logistic64 is σ(x) in float64 as SimpleGo's Logistic computes it: 1/(1+e^-x) for x ≥ 0,
// e^x/(1+e^x) below.
func logistic64(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// normStatScratch, normCoefScratch and normSiluScratch hold a channels-last normalization's float64
// statistics, its per-channel coefficients and each band's SiLU scratch between calls (one pool
// each, so that a slice of one size is not handed to a use that needs another). Allocated afresh on every call
// (about half a MiB a call, 17 MB a batch-16 forward of the small T2I fixture), they were memory the
// collector reclaims only every few dozen forwards, so until then every forward took about 5,500
// new pages from the system, 3 ms of system time per image (docs/bring-your-model.md, section 6).
var normStatScratch, normCoefScratch, normSiluScratch sync.Pool
