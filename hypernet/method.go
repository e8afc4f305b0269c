package hypernet

import (
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
)

// Method names of base sampling and HyperNoise inference in the method registry.
const (
	MethodBase       = "base"
	MethodHyperNoise = "hypernoise"
)

// BaseMethod is base sampling, x = g(eps, c): one generator forward per sample.
var BaseMethod = hypernoise.MethodInfo{
	Name:    MethodBase,
	Summary: "the one-step generator on the given noise, x = g(eps, c)",
	New: func(env hypernoise.MethodEnv) (hypernoise.Method, error) {
		return NewSamplerMethod(env, MethodBase, env.Generator, nil)
	},
}

// HyperNoiseMethod is HyperNoise inference, x = g(eps + f(eps, c), c): the trained modulator's
// forward, then the generator.
var HyperNoiseMethod = hypernoise.MethodInfo{
	Name:    MethodHyperNoise,
	Summary: "the noise hypernetwork, then the generator: x = g(eps + f(eps, c), c)",
	Needs:   hypernoise.NeedsModulator,
	New: func(env hypernoise.MethodEnv) (hypernoise.Method, error) {
		return NewSamplerMethod(env, MethodHyperNoise, env.Generator, env.Modulator)
	},
}

// SamplerMethod is a Sampler as a hypernoise.Method.
type SamplerMethod struct {
	name string
	s    *Sampler
}

// NewSamplerMethod is the method that samples x = gen(eps + mod(eps, c), c) (mod may be nil) on
// env's context and lock, labelled name.
func NewSamplerMethod(env hypernoise.MethodEnv, name string, gen hypernoise.Generator, mod hypernoise.Modulator) (*SamplerMethod, error) {
	s, err := NewSharedSampler(env.Backend, env.Context, env.Lock, env.Chunk, gen, mod)
	if err != nil {
		return nil, err
	}
	return &SamplerMethod{name: name, s: s}, nil
}

// Name is the method's label.
func (m *SamplerMethod) Name() string { return m.name }

// Generate samples x for eps [B, NoiseShape...] and prompts [B].
func (m *SamplerMethod) Generate(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernoise.Cost, error) {
	x, _, cost, err := m.s.Sample(eps, prompts)
	return x, cost, err
}

// Close releases the compiled graphs.
func (m *SamplerMethod) Close() { m.s.Finalize() }
