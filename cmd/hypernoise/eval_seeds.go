package main

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/pipeline"
	"github.com/hypernoise/hypernoise/progress"
)

// evalSeeds is `eval --train-seeds K`: the hypernetwork's own evaluation, K-1 more training seeds
// of its configuration, and the trained methods' mean and standard deviation over them.
func evalSeeds(env *cli.Env, backend backends.Backend, m *family.Model, p *infer.Pipeline, hn *infer.Hypernet, dir string, k int, o pipeline.EvalOptions, asJSON bool, prog progress.Func) error {
	load := func() (*family.Model, error) { return family.Load(m.Ref(), backend) }
	reps, sum, err := pipeline.EvaluateSeeds(backend, load, p, hn, dir, k, o, prog)
	if err != nil {
		return err
	}
	if asJSON {
		return cli.WriteJSON(env.Stdout, map[string]any{"reports": reps, "train_seeds": sum})
	}
	fmt.Fprint(env.Stdout, reps[0].Text())
	fmt.Fprint(env.Stdout, sum.Text())
	return nil
}
