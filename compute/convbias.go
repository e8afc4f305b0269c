package compute

import (
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// A convolution's per-channel bias folded into the fused convolution node.
//
// An imported convolution with a bias is the convolution followed by Add(y, broadcast(bias)); with
// the lowering (conv_lower.go) y is Transpose(conv) (NHWC back to NCHW), the fused node conv giving
// [B, O..., Cout]. When that node runs on oneDNN's forward primitive (see forwardOnDNNL), the Add is
// built as a copy of the fused node that also takes the bias [Cout] as a third input (oneDNN adds it
// in the primitive; a band run on im2col adds it after its product), transposed likewise: one pass
// over y less. As for the fused normalizations (see unfuse.go), the plain Add is built beside it and
// the copy is a chain whose read is the un-biased node: when the graph's outputs reach that node
// (something else reads the un-biased y), the plain Add replaces the copy at compile time. For a
// convolution of an upsampling computed at the low resolution (upconv.go) the bias, four times over,
// goes into its 2x2 convolution, and the copy is a new interleave node over that.

// convOut is a fused convolution node on oneDNN and the transpose that followed it.
type convOut struct {
	conv   *simplego.Node // the fused node, [B, O..., Cout]
	perm   []int          // the transpose of conv that was returned
	chanAx int            // the channel axis of the returned op
}

var (
	// convBiasOn switches the fold on (tests compare it with the plain Add).
	convBiasOn atomic.Bool
	// statConvBiasBuilt counts biased copies built; statConvBiasFolded those kept at compile time
	// (reached by the outputs); statConvBiasUnfused those replaced by their plain Add (for tests).
	statConvBiasBuilt, statConvBiasFolded, statConvBiasUnfused atomic.Int64
)

func init() { convBiasOn.Store(true) }

// rememberConv records that out is the fused convolution node conv transposed by perm.
func (b *patchedBuilder) rememberConv(out, conv backends.Op, perm []int) {
	on, ok1 := out.(*simplego.Node)
	cn, ok2 := conv.(*simplego.Node)
	if !ok1 || !ok2 {
		return
	}
	if b.convOuts == nil {
		b.convOuts = map[*simplego.Node]convOut{}
	}
	q := inversePerm(perm)
	b.convOuts[on] = convOut{conv: cn, perm: perm, chanAx: q[len(perm)-1]}
}

// convBiasAdd builds lhs + rhs as a biased copy of a fused convolution (see above) when one operand
// is a remembered convolution output and the other its per-channel bias (the output's shape with
// every axis but the channel axis of size 1, or a broadcast of such), else ok=false.
func (b *patchedBuilder) convBiasAdd(lhs, rhs backends.Op) (backends.Op, bool, error) {
	if len(b.convOuts) == 0 || !convBiasOn.Load() {
		return nil, false, nil
	}
	for _, pair := range [2][2]backends.Op{{lhs, rhs}, {rhs, lhs}} {
		yn, ok := pair[0].(*simplego.Node)
		if !ok {
			continue
		}
		co, ok := b.convOuts[yn]
		if !ok {
			continue
		}
		conv, up := co.conv, false
		if _, ok := getNodeData(conv).(*upInterleaveData); ok { // the bias goes into its 2x2 convolution
			if ins, ok := nodeInputs(conv); ok && len(ins) == 1 {
				conv, up = ins[0], true
			}
		}
		d, ok := getNodeData(conv).(*convGemmNodeData)
		ins, ok2 := nodeInputs(conv)
		if !ok || !ok2 || d.bias || len(ins) != 2 {
			continue
		}
		ys, err := b.OpShape(yn)
		if err != nil {
			return nil, false, err
		}
		src := pair[1]
		if t := b.tagOf(src); t.kind == fuseBroadcast {
			src = t.a
		}
		bs, err := b.OpShape(src)
		if err != nil {
			return nil, false, err
		}
		if !isChannelVector(bs, ys, co.chanAx) {
			continue
		}
		plain, err := b.Builder.Add(lhs, rhs)
		if err != nil {
			return nil, false, err
		}
		bias, err := b.Builder.Reshape(src, ys.Dimensions[co.chanAx])
		if err != nil {
			return nil, false, err
		}
		if up { // one copy per phase of the 2x2 convolution's 4·Cout channels
			if bias, err = b.Builder.Concatenate(0, bias, bias, bias, bias); err != nil {
				return nil, false, err
			}
		}
		bn, ok := bias.(*simplego.Node)
		if !ok {
			continue
		}
		cs, err := b.OpShape(conv)
		if err != nil {
			return nil, false, err
		}
		nd := *d
		nd.bias = true
		node := simplegoNewNode(b.Builder, backends.OpTypePad, cs, ins[0], ins[1], bn)
		if !setNodeData(node, &nd) {
			return nil, false, nil
		}
		if up {
			us, err := b.OpShape(co.conv)
			if err != nil {
				return nil, false, err
			}
			if node = simplegoNewNode(b.Builder, backends.OpTypePad, us, node); !setNodeData(node, &upInterleaveData{}) {
				return nil, false, nil
			}
		}
		out, err := b.transposeIfNeeded(node, co.perm)
		if err != nil {
			return nil, false, err
		}
		c := b.newChain(false, co.conv)
		c.bias = true
		c.addSub(out, plain)
		statConvBiasBuilt.Add(1)
		return out, true, nil
	}
	return nil, false, nil
}

// isChannelVector reports whether a value of shape bs is a per-channel vector of ys: the same dtype
// and rank, every axis of size 1 but the channel axis, of ys's size there.
func isChannelVector(bs, ys shapes.Shape, ch int) bool {
	if bs.DType != ys.DType || bs.Rank() != ys.Rank() {
		return false
	}
	for i, n := range bs.Dimensions {
		if (i == ch && n != ys.Dimensions[i]) || (i != ch && n != 1) {
			return false
		}
	}
	return true
}
