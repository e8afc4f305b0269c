package pipeline

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
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
// prompt resampled with weights exp(r/beta) (with replacement; tilt.DrawReference, which keeps
// only the drawn images, and tilt.Resampler.ReferenceNoise), as images or as the noises they were
// generated from, [prompts, Size, values]. An Auto spec whose pool cannot resample the tilt (an
// effective sample size under Size/4 for some prompt) returns no reference and the reason. It
// reports progress around the scoring of the pool (the longest part).
func tiltReference(backend backends.Backend, im *family.Model, reward hypernoise.Reward, beta float64, spec hypernet.MatchSpec, prog progress.Func) (ref *tensors.Tensor, skipped string, err error) {
	if err := spec.Validate(); err != nil {
		return nil, "", err
	}
	if !(beta > 0) || math.IsInf(beta, 0) {
		return nil, "", fmt.Errorf("tilt matching needs the tilt's beta, got %g", beta)
	}
	gen := im.Generator
	np := max(1, len(gen.Prompts()))
	prog.Report(0, 1, fmt.Sprintf("tilt reference: scoring %d base samples per prompt", spec.Pool))
	var flat []float32
	var ess []float64
	if spec.Space == hypernet.MatchImage {
		flat, ess, err = tilt.DrawReference(backend, im, reward, spec.Pool, matchPoolSeed(spec.Seed), beta, spec.Size)
	} else {
		var rs *tilt.Resampler
		if rs, err = tilt.NewRewards(backend, im, reward, spec.Pool, matchPoolSeed(spec.Seed)); err == nil {
			ess = rs.ESS(beta)
			flat, err = rs.ReferenceNoise(beta, spec.Size, shapes.Make(dtypes.Float32, gen.NoiseShape()...).Size())
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("tilt reference for matching: %w", err)
	}
	low := slices.Min(ess)
	prog.Report(1, 1, fmt.Sprintf("tilt reference: drawn (effective sample size %.0f to %.0f of %d per prompt)", low, slices.Max(ess), spec.Pool))
	if spec.Auto && low < float64(spec.Size)/4 {
		return nil, fmt.Sprintf("the pool of %d base samples per prompt resamples the tilt at beta %g with an effective sample size of %.1f (under %d, a quarter of the reference)", spec.Pool, beta, low, spec.Size/4), nil
	}
	return tensors.FromFlatDataAndDimensions(flat, np, spec.Size, len(flat)/(np*spec.Size)), "", nil
}
