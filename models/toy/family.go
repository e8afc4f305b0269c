package toy

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/family"
)

// FamilyName is the family's name in --model and in hypernet.json.
const FamilyName = "toy"

// Family is the 2-D toy as a model family: loading trains the quick configuration's teacher and
// student (seeded, so every load gives the same weights and hash; seconds on a CPU); argument
// "full" trains DefaultConfig's instead. Its samples are points, not images: it has no grid
// writer, so sample and serve refuse it; train, eval, tilt and bench run on it.
var Family = family.Family{
	Name:       FamilyName,
	Summary:    "the 2-D toy: 8 Gaussians on a ring, a one-step student trained at load (argument: full for the full-length training)",
	RewardHelp: Rewards(DefaultConfig()).Help(),
	Load: func(arg string, backend backends.Backend) (*family.Model, error) {
		cfg := QuickConfig()
		switch arg {
		case "":
		case "full":
			cfg = DefaultConfig()
		default:
			return nil, &family.ArgError{Err: fmt.Errorf("model family toy takes no argument or \"full\", not %q", arg)}
		}
		ctx := context.New()
		m, _, err := Train(backend, ctx, cfg, nil)
		if err != nil {
			return nil, err
		}
		return &family.Model{Generator: m, Context: ctx, Rewards: Rewards(cfg), DefaultReward: "right=1",
			Hash: family.HashScopes(ctx, cfg.Scope)}, nil
	},
}
