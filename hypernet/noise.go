package hypernet

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// NoiseMode says which noise the trainer draws at each step (the reference code's modes).
type NoiseMode string

const (
	// NoiseFresh draws fresh eps ~ N(0, I) for every row of every step (reference name "inf").
	NoiseFresh NoiseMode = "fresh"
	// NoiseOne uses one fixed noise (and prompt) for every row of every step.
	NoiseOne NoiseMode = "one"
	// NoiseMulti uses a fixed set of TrainConfig.NoiseSetSize noises (and prompts), cycled through
	// in order: row i of step k is element (k*B + i) mod M of the set.
	NoiseMulti NoiseMode = "multi"
	// NoiseBatch draws one fresh noise per step, shared by every row of the batch; the prompts
	// are fresh per row.
	NoiseBatch NoiseMode = "batch"
)

// NoiseModes lists the valid noise modes.
func NoiseModes() []NoiseMode { return []NoiseMode{NoiseFresh, NoiseOne, NoiseMulti, NoiseBatch} }

// ParseNoiseMode parses a noise mode name; "inf" is accepted for "fresh".
func ParseNoiseMode(s string) (NoiseMode, error) {
	if s == "inf" {
		return NoiseFresh, nil
	}
	for _, m := range NoiseModes() {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, 0, 4)
	for _, m := range NoiseModes() {
		names = append(names, string(m))
	}
	return "", fmt.Errorf("unknown noise mode %q; allowed: %s", s, strings.Join(names, ", "))
}

// Random streams: every random draw of the toolkit is a pure function of (seed, stream, index),
// so a run can be resumed at any step and reproduce the uninterrupted run exactly.
const (
	streamTrainStep uint64 = 1 << 40 // + step
	streamTrainSet  uint64 = 2 << 40
	// streamTrainPrompts + e: the e-th permutation of the prompts (StratifiedPrompts).
	streamTrainPrompts uint64 = 3 << 40
)

// rng returns a generator for (seed, stream).
func rng(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream^0x9e3779b97f4a7c15))
}

// Normal returns n independent N(0, 1) draws, a pure function of (seed, stream).
func Normal(seed int64, stream uint64, n int) []float32 {
	r := rng(seed, stream)
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// NoiseTensor returns a [n, shape...] float32 tensor of N(0, I) draws for (seed, stream).
func NoiseTensor(seed int64, stream uint64, n int, shape []int) *tensors.Tensor {
	d := size(shape)
	return tensors.FromFlatDataAndDimensions(Normal(seed, stream, n*d), append([]int{n}, shape...)...)
}

// PromptIDs returns n prompt ids uniform in [0, numPrompts) for (seed, stream); all zero when
// numPrompts <= 0 (unconditional generator).
func PromptIDs(seed int64, stream uint64, n, numPrompts int) []int32 {
	out := make([]int32, n)
	if numPrompts <= 0 {
		return out
	}
	r := rng(seed, stream)
	for i := range out {
		out[i] = int32(r.IntN(numPrompts))
	}
	return out
}

func size(shape []int) int {
	d := 1
	for _, s := range shape {
		d *= s
	}
	return d
}

// StepBatch is the noise and prompt ids the trainer uses at step (0-based) under cfg:
// TrainingBatch's, except that cfg.PromptsPerStep = k > 0 (NoiseFresh and NoiseBatch only)
// replaces the rows' independent uniform prompts by StratifiedPrompts' k prompts per step. The
// noise is the same either way. cfg.NoiseSetSize must be set (0 reads as cfg.BatchSize).
func StepBatch(cfg TrainConfig, step int, shape []int, numPrompts int) ([]float32, []int32) {
	setSize := cfg.NoiseSetSize
	if setSize == 0 {
		setSize = cfg.BatchSize
	}
	eps, prompts := TrainingBatch(cfg.Noise, cfg.Seed, step, cfg.BatchSize, setSize, shape, numPrompts)
	if cfg.PromptsPerStep > 0 && numPrompts > 0 && (cfg.Noise == NoiseFresh || cfg.Noise == NoiseBatch) {
		prompts = StratifiedPrompts(cfg.Seed, step, cfg.BatchSize, numPrompts, cfg.PromptsPerStep)
	}
	return eps, prompts
}

// StratifiedPrompts returns the prompt ids [batch] of step (0-based) when every step holds k
// prompts (1 <= k <= batch): rows are split into k contiguous groups, as equal as possible (the
// first batch mod k groups one row larger), and every row of a group gets the group's prompt.
// The groups' prompts are read in order from a sequence of random permutations of all numPrompts
// prompts (permutation e, a pure function of (seed, e), covers positions e*numPrompts to
// (e+1)*numPrompts - 1; step s reads positions s*k to s*k + k - 1), so every prompt is trained on
// equally often, up to one permutation. k = 1 holds the prompt fixed for the whole batch: the
// batch's gradient is then one prompt's, averaged over batch noises.
func StratifiedPrompts(seed int64, step, batch, numPrompts, k int) []int32 {
	out := make([]int32, batch)
	if numPrompts <= 0 || batch <= 0 {
		return out
	}
	k = min(max(k, 1), batch)
	perms := map[int][]int{}
	row := 0
	for g := range k {
		pos := step*k + g
		e := pos / numPrompts
		if perms[e] == nil {
			perms[e] = rng(seed, streamTrainPrompts+uint64(e)).Perm(numPrompts)
		}
		p := int32(perms[e][pos%numPrompts])
		n := batch / k
		if g < batch%k {
			n++
		}
		for range n {
			out[row] = p
			row++
		}
	}
	return out
}

// TrainingBatch returns the noise (flat, batch*prod(shape) values, row-major [batch, shape...])
// and prompt ids [batch] the trainer uses at step (0-based) for the given mode, with independent
// prompts (TrainConfig.PromptsPerStep = 0; see StepBatch). It is a pure function of its
// arguments. setSize is the size of the fixed set in NoiseMulti mode.
func TrainingBatch(mode NoiseMode, seed int64, step, batch, setSize int, shape []int, numPrompts int) ([]float32, []int32) {
	d := size(shape)
	stepStream := streamTrainStep + uint64(step)
	eps := make([]float32, batch*d)
	var prompts []int32
	switch mode {
	case NoiseOne:
		one := Normal(seed, streamTrainSet, d)
		p := PromptIDs(seed, streamTrainSet+1, 1, numPrompts)[0]
		prompts = make([]int32, batch)
		for i := range batch {
			copy(eps[i*d:], one)
			prompts[i] = p
		}
	case NoiseMulti:
		set := Normal(seed, streamTrainSet, setSize*d)
		setPrompts := PromptIDs(seed, streamTrainSet+1, setSize, numPrompts)
		prompts = make([]int32, batch)
		for i := range batch {
			j := (step*batch + i) % setSize
			copy(eps[i*d:], set[j*d:(j+1)*d])
			prompts[i] = setPrompts[j]
		}
	case NoiseBatch:
		one := Normal(seed, stepStream, d)
		for i := range batch {
			copy(eps[i*d:], one)
		}
		prompts = PromptIDs(seed, stepStream+(1<<32), batch, numPrompts)
	default: // NoiseFresh
		eps = Normal(seed, stepStream, batch*d)
		prompts = PromptIDs(seed, stepStream+(1<<32), batch, numPrompts)
	}
	return eps, prompts
}
