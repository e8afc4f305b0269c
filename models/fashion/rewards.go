package fashion

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/rewards"
	"github.com/hypernoise/hypernoise/rewards/imagerewards"
)

// The embedded model's rewards, each scoring images x [B,28,28,1] in [0,1] for prompts c [B],
// differentiable in x:
//
//	align       log p_cls(c | x): log-probability of the prompt's class under the reward classifier
//	realism     log D(x) = log sigmoid(d(x)): the discriminator's log-probability that x is real
//	brightness  the mean pixel value (package imagerewards)
//	contrast    the pixel standard deviation (package imagerewards)
//
// realism uses log D rather than the raw logit d so that the reward is bounded above by 0 and a
// generator cannot gain without limit by pushing one logit.
const (
	Align   = "align"
	Realism = "realism"
)

// root is ctx at the root scope, where the fashion models' weights live; the rewards must be
// evaluated in a context holding those weights (the Model's context).
func root(ctx *context.Context) *context.Context { return ctx.InAbsPath(context.ScopeSeparator) }

// AlignReward is r(x, c) = log softmax(classifier(x))[c], using m's reward classifier
// (Score must run in m.Context(), which holds its weights).
func AlignReward(m *Model) (hypernoise.Reward, error) {
	if err := m.Need(ScopeClassifier); err != nil {
		return nil, err
	}
	return rewards.Func{RewardName: Align, Fn: func(ctx *context.Context, x, prompts *Node) *Node {
		logp := LogSoftmax(ClassifierLogits(root(ctx), x))
		oneHot := OneHot(prompts, logp.Shape().Dim(-1), logp.DType())
		return ReduceSum(Mul(logp, oneHot), -1)
	}}, nil
}

// RealismReward is r(x) = log sigmoid(d(x)), d the realism discriminator of m.
func RealismReward(m *Model) (hypernoise.Reward, error) {
	if err := m.Need(ScopeDiscriminator); err != nil {
		return nil, err
	}
	return rewards.Func{RewardName: Realism, Fn: func(ctx *context.Context, x, _ *Node) *Node {
		d := DiscriminatorLogits(root(ctx), x)
		// log sigmoid(d) = -softplus(-d), computed stably.
		return Neg(Softplus(Neg(d)))
	}}, nil
}

// Rewards returns the rewards of the models in m (nil: for checking specs and help texts only),
// ready for specs like "align=1,realism=0.5".
func Rewards(m *Model) *rewards.Registry {
	r := rewards.NewRegistry()
	must := func(err error) {
		if err != nil {
			panic(fmt.Sprintf("fashion rewards: %v", err)) // programming error: fixed names
		}
	}
	must(r.Register(Align, "log-probability of the prompt's class under the reward classifier",
		func() (hypernoise.Reward, error) { return AlignReward(m) }))
	must(r.Register(Realism, "log-probability that the image is real under the discriminator",
		func() (hypernoise.Reward, error) { return RealismReward(m) }))
	must(imagerewards.Pixel(r))
	return r
}
