package compositional

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/nn"
	"github.com/hypernoise/hypernoise/rewards"
	"github.com/hypernoise/hypernoise/rewards/imagerewards"
)

// Generator is the embedded default seen through the compositional prompts: its prompt ids index
// Prompts(), and the frozen generator receives only each prompt's class. Under a LoRA context (the
// LoRA hypernetwork's copy of the backbone) the backbone also sees the whole prompt: a learned,
// low-rank, zero-initialized offset per prompt is added to its noise input, so the modulator can
// tell "a dark sneaker" from "a small dark sneaker" while f_phi = 0 still holds at initialization.
type Generator struct {
	M       *fashion.Model
	prompts []Prompt
	classes []int32
}

var _ hypernoise.Backbone = (*Generator)(nil)

// NewGenerator wraps the fashion model m (which needs its autoencoder and student) for the
// benchmark's prompts.
func NewGenerator(m *fashion.Model) (*Generator, error) { return NewGeneratorFor(m, Prompts()) }

// NewGeneratorFor wraps the fashion model m for the given prompts.
func NewGeneratorFor(m *fashion.Model, prompts []Prompt) (*Generator, error) {
	if err := m.Need("autoencoder", "student"); err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		return nil, fmt.Errorf("compositional: no prompts")
	}
	g := &Generator{M: m, prompts: append([]Prompt(nil), prompts...)}
	for _, p := range g.prompts {
		g.classes = append(g.classes, int32(p.Class))
	}
	return g, nil
}

// Name implements hypernoise.Generator.
func (g *Generator) Name() string { return "fashion-compositional" }

// NoiseShape implements hypernoise.Generator (the fashion model's).
func (g *Generator) NoiseShape() []int { return g.M.NoiseShape() }

// Prompts implements hypernoise.Generator: the compositional prompts' texts.
func (g *Generator) Prompts() []string {
	out := make([]string, len(g.prompts))
	for i, p := range g.prompts {
		out[i] = p.Text
	}
	return out
}

// Benchmark returns the prompts with their classes and bands.
func (g *Generator) Benchmark() []Prompt { return append([]Prompt(nil), g.prompts...) }

// Classes maps prompt ids [B] to class ids [B].
func (g *Generator) Classes(prompts *Node) *Node {
	table := Const(prompts.Graph(), g.classes)
	return Gather(table, ExpandAxes(ConvertDType(prompts, dtypes.Int32), -1))
}

// Generate implements hypernoise.Generator: the fashion generator for each prompt's class.
func (g *Generator) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return fashion.Decode(ctx, g.Backbone(ctx, eps, prompts))
}

// Backbone implements hypernoise.Backbone: the student for each prompt's class; under LoRA its
// noise input is shifted by the prompt's learned offset (see Generator).
func (g *Generator) Backbone(ctx *context.Context, eps, prompts *Node) *Node {
	if nn.AdapterOf(ctx).Rank > 0 {
		b := eps.Shape().Dim(0)
		onehot := OneHot(ConvertDType(prompts, dtypes.Int32), len(g.prompts), eps.DType())
		shift := nn.ZeroDense(ctx.In("compositional_prompt"), onehot, fashion.LatentDim)
		eps = Add(eps, Reshape(shift, append([]int{b}, eps.Shape().Dimensions[1:]...)...))
	}
	return fashion.Student(ctx, eps, g.Classes(prompts))
}

// Reward names.
const (
	// RewardName is the compositional reward: class alignment plus the attribute penalty.
	RewardName = "compositional"
	// AttrRewardName is the attribute penalty alone.
	AttrRewardName = "attribute"
)

// attrScale is the statistic's scale in the attribute penalty (how far outside the band one unit
// of penalty is): tone, area, width.
var attrScale = [NumStats]float64{Tone: 0.03, Area: 0.02, Width: 0.008}

// AttributeReward is r(x, p) = -sum_{a in p} softplus(s_a (t_a - u_a) / scale_a) -
// softplus((f_p - area) / 0.02), summed over the attributes a of prompt p: t_a is a's statistic on
// the soft ink mask (imagerewards.SoftInkStats), u_a its band's threshold moved one scale inside
// the band, s_a = +1 for an upper bound ("dark", "small", "narrow"), -1 for a lower bound
// ("bright", "large", "wide"), and f_p the area floor plus 0.02. It is about 0 when every
// statistic is well inside its band at a realistic size, and falls linearly (slope 1/scale)
// outside each band.
func (g *Generator) AttributeReward() hypernoise.Reward {
	n := len(g.prompts)
	// Per prompt and statistic (row-major [n, NumStats]): whether the prompt bounds it, the sign
	// and the target of the bound, the statistic's scale.
	active := make([]float32, n*int(NumStats))
	sign := make([]float32, n*int(NumStats))
	target := make([]float32, n*int(NumStats))
	scale := make([]float32, n*int(NumStats))
	floor := make([]float32, n)
	for i, p := range g.prompts {
		floor[i] = float32(p.AreaFloor + attrScale[Area])
		for s := range NumStats {
			scale[i*int(NumStats)+int(s)] = float32(attrScale[s])
		}
		for _, c := range p.Conds {
			k := i*int(NumStats) + int(c.Attr.Stat)
			sc := attrScale[c.Attr.Stat]
			active[k] = 1
			if c.Attr.Below {
				sign[k], target[k] = 1, float32(c.Threshold-sc)
			} else {
				sign[k], target[k] = -1, float32(c.Threshold+sc)
			}
		}
	}
	return rewards.Func{RewardName: AttrRewardName, Fn: func(_ *context.Context, x, prompts *Node) *Node {
		gr := x.Graph()
		ids := ExpandAxes(ConvertDType(prompts, dtypes.Int32), -1)
		shape := []int{n, int(NumStats)}
		stats := imagerewards.SoftInkStats(x, InkLevel) // [B, NumStats]
		get := func(v []float32) *Node {                // the rows of prompts: [B, NumStats]
			return ConvertDType(Gather(Reshape(Const(gr, v), shape...), ids), x.DType())
		}
		band := Mul(get(active), Softplus(Div(Mul(get(sign), Sub(stats, get(target))), get(scale))))
		area := Slice(stats, AxisRange(), AxisElem(int(Area)))
		f := ConvertDType(Gather(Const(gr, floor), ids), x.DType()) // [B]
		small := Softplus(DivScalar(Sub(f, Reshape(area, -1)), attrScale[Area]))
		return Neg(Add(ReduceSum(band, -1), small))
	}}
}

// Reward is the compositional training reward r(x, p) = log p_cls(class(p) | x) + attribute(x, p):
// the reward classifier's log-probability of the prompt's class plus AttributeReward.
func (g *Generator) Reward() (hypernoise.Reward, error) {
	align, err := fashion.AlignReward(g.M)
	if err != nil {
		return nil, err
	}
	attr := g.AttributeReward()
	return rewards.Func{RewardName: RewardName, Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		return Add(align.Score(ctx, x, g.Classes(prompts)), attr.Score(ctx, x, prompts))
	}}, nil
}

// Registry returns the rewards for the compositional prompts: "compositional" (class + attribute),
// "attribute", and the image rewards that do not depend on the prompt (realism, brightness,
// contrast); "align" reads the class of each prompt.
func (g *Generator) Registry() *rewards.Registry {
	r := rewards.NewRegistry()
	must := func(err error) {
		if err != nil {
			panic(fmt.Sprintf("compositional: %v", err)) // programming error: fixed names
		}
	}
	must(r.Register(RewardName, "class log-probability plus the attribute's band penalty",
		func() (hypernoise.Reward, error) { return g.Reward() }))
	must(r.Register(AttrRewardName, "the attribute's band penalty (0 inside the band)",
		func() (hypernoise.Reward, error) { return g.AttributeReward(), nil }))
	must(r.Register(fashion.Align, "log-probability of the prompt's class under the reward classifier",
		func() (hypernoise.Reward, error) {
			a, err := fashion.AlignReward(g.M)
			if err != nil {
				return nil, err
			}
			return rewards.Func{RewardName: fashion.Align, Fn: func(ctx *context.Context, x, p *Node) *Node {
				return a.Score(ctx, x, g.Classes(p))
			}}, nil
		}))
	must(r.Register(fashion.Realism, "log-probability that the image is real under the discriminator",
		func() (hypernoise.Reward, error) { return fashion.RealismReward(g.M) }))
	must(imagerewards.Pixel(r))
	return r
}
