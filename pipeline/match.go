package pipeline

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/eval/tilt"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/progress"
)

// matchPoolSeed is the base pool's noise seed for a run of training seed s: a stream apart from
// the training batches' and from the evaluation's tilt reference (seeded by eval's --seed).
func matchPoolSeed(s int64) uint64 { return uint64(s) + 1_000_003 }

// tiltReference draws the reference set of spec (hypernet.MatchSpec) for model im, reward and
// tilt temperature beta: Pool base samples per prompt scored by reward, then Size samples per
// prompt resampled with weights exp(r/beta) (with replacement; tilt.Resampler's ReferenceSet and
// ReferenceNoise), as images or as the noises they were generated from, [prompts, Size, values].
// It reports progress around the scoring of the pool (the longest part).
func tiltReference(backend backends.Backend, im *family.Model, reward hypernoise.Reward, beta float64, spec hypernet.MatchSpec, prog progress.Func) (*tensors.Tensor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if !(beta > 0) || math.IsInf(beta, 0) {
		return nil, fmt.Errorf("tilt matching needs the tilt's beta, got %g", beta)
	}
	gen := im.Generator
	np := max(1, len(gen.Prompts()))
	prog.Report(0, 1, fmt.Sprintf("tilt reference: scoring %d base samples per prompt", spec.Pool))
	rs, err := tilt.NewResampler(backend, im, reward, spec.Pool, matchPoolSeed(spec.Seed))
	if err != nil {
		return nil, fmt.Errorf("tilt reference for matching: %w", err)
	}
	prog.Report(1, 1, "tilt reference: scored")
	var ref []float32
	if spec.Space == hypernet.MatchImage {
		ref, _, err = rs.ReferenceSet(beta, spec.Size)
	} else {
		d := 1
		for _, s := range gen.NoiseShape() {
			d *= s
		}
		ref, err = rs.ReferenceNoise(beta, spec.Size, d)
	}
	if err != nil {
		return nil, err
	}
	return tensors.FromFlatDataAndDimensions(ref, np, spec.Size, len(ref)/(np*spec.Size)), nil
}
