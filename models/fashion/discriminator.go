package fashion

import (
	"math/rand/v2"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// discriminatorFakes is the number of student samples the discriminator trains on.
const discriminatorFakes = 8192

// discriminator trains the realism critic: logistic regression of real training images (label 1)
// against one-step student samples (label 0), loss softplus(-D(real)) + softplus(D(fake)). It is
// evaluated on test images against fresh student samples.
func (t *trainer) discriminator() (map[string]float64, error) {
	m, err := t.upstream("autoencoder", "student")
	if err != nil {
		return nil, err
	}
	train, test, err := t.loadSplits()
	if err != nil {
		return nil, err
	}
	fakeNoise, fakeLabels := EvalNoise(discriminatorFakes, uint64(t.cfg.Seed))
	fakes, err := t.cachedFloats("fakes", discriminatorFakes*Side*Side, func() ([]float32, error) {
		t.logf("discriminator: generating %d student samples", discriminatorFakes)
		return GenerateImages(t.backend, m, fakeNoise, fakeLabels, 0)
	})
	if err != nil {
		return nil, err
	}
	b := t.cfg.Batch
	loss, wall, err := t.loop().run(t.backend, t.ctx, func(ctx *context.Context, in []*Node) *Node {
		lr := DiscriminatorLogits(ctx, in[0])
		lf := DiscriminatorLogits(ctx, in[1])
		return Add(ReduceAllMean(Softplus(Neg(lr))), ReduceAllMean(Softplus(lf)))
	}, func(step int) []any {
		r := t.rng(step)
		real, _ := imageBatch(train, r, b)
		idx := make([]int, b)
		for i := range idx {
			idx[i] = r.IntN(discriminatorFakes)
		}
		return []any{real, tensors.FromFlatDataAndDimensions(gatherRows(fakes, Side*Side, idx), b, Side, Side, 1)}
	})
	if err != nil {
		return nil, err
	}
	// Held-out evaluation: 2000 test images vs 2000 fresh student samples.
	const n = 2000
	evNoise, evLabels := EvalNoise(n, uint64(t.cfg.Seed)+1)
	m2 := &Model{ctx: m.ctx, parts: m.parts, Guidance: m.Guidance}
	newFakes, err := GenerateImages(t.backend, m2, evNoise, evLabels, 0)
	if err != nil {
		return nil, err
	}
	exec, err := context.NewExec(t.backend, t.ctx, DiscriminatorLogits)
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	r := rand.New(rand.NewPCG(uint64(t.cfg.Seed), 7))
	realIdx := r.Perm(test.N)[:n]
	outR, err := forward(exec, n, 500, func(idx []int) []any {
		sel := make([]int, len(idx))
		for i, k := range idx {
			sel[i] = realIdx[k]
		}
		return []any{imagesTensor(test, sel)}
	})
	if err != nil {
		return nil, err
	}
	outF, err := forward(exec, n, 500, func(idx []int) []any {
		return []any{tensors.FromFlatDataAndDimensions(gatherRows(newFakes, Side*Side, idx), len(idx), Side, Side, 1)}
	})
	if err != nil {
		return nil, err
	}
	correct := 0
	for i := range n {
		if outR[0][i] > 0 {
			correct++
		}
		if outF[0][i] <= 0 {
			correct++
		}
	}
	acc := float64(correct) / float64(2*n)
	t.logf("discriminator: final loss %.4f, held-out accuracy %.1f%% (%d test images vs %d fresh student samples), training %.0fs",
		loss, 100*acc, n, n, wall.Seconds())
	return map[string]float64{"train_loss": loss, "heldout_accuracy": acc, "eval_images": 2 * n}, nil
}
