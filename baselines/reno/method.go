package reno

import (
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/hypernet"
)

// Method names in the registry.
const (
	Name     = "reno"            // ReNO from the given noise
	WarmName = "hypernoise-reno" // ReNO from the hypernetwork's modulated noise
)

// Method is the registry entry of ReNO with the paper's settings and env.Steps iterations.
var Method = hypernoise.MethodInfo{
	Name:    Name,
	Summary: "ReNO test-time optimization of each sample's noise (paper settings; steps = iterations)",
	Needs:   hypernoise.NeedsReward | hypernoise.NeedsSteps,
	// The paper's 50 iterations by default, at most 1000.
	Defaults: hypernoise.Knobs{Steps: 50}, Max: hypernoise.Knobs{Steps: 1000},
	New: func(env hypernoise.MethodEnv) (hypernoise.Method, error) {
		return newMethod(env, Name, nil)
	},
}

// WarmMethod is HyperNoise followed by env.Steps ReNO iterations from eps' = eps + f(eps, c).
var WarmMethod = hypernoise.MethodInfo{
	Name:    WarmName,
	Summary: "the hypernetwork's modulated noise, then ReNO steps from it (warm start)",
	Needs:   hypernoise.NeedsReward | hypernoise.NeedsModulator | hypernoise.NeedsSteps,
	// 10 iterations after the hypernetwork by default, at most 1000.
	Defaults: hypernoise.Knobs{Steps: 10}, Max: hypernoise.Knobs{Steps: 1000},
	New: func(env hypernoise.MethodEnv) (hypernoise.Method, error) {
		return newMethod(env, WarmName, env.Modulator)
	},
}

type method struct {
	name string
	o    *Optimizer
	warm *hypernet.Sampler // nil: start from the given noise
}

func newMethod(env hypernoise.MethodEnv, name string, mod hypernoise.Modulator) (*method, error) {
	cfg := DefaultConfig()
	cfg.Steps = env.Steps
	o, err := NewShared(env.Backend, env.Context, env.Lock, env.ChunkOrDefault(), env.Generator, env.Reward, cfg)
	if err != nil {
		return nil, err
	}
	m := &method{name: name, o: o}
	if mod != nil {
		if m.warm, err = hypernet.NewSharedSampler(env.Backend, env.Context, env.Lock, env.Chunk, env.Generator, mod); err != nil {
			o.Finalize()
			return nil, err
		}
	}
	return m, nil
}

func (m *method) Name() string { return m.name }

// Generate runs ReNO from eps (or from the hypernetwork's eps'); the warm start's modulator and
// generator forward passes are added to the cost.
func (m *method) Generate(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernoise.Cost, error) {
	var pre hypernoise.Cost
	if m.warm != nil {
		_, ep, c, err := m.warm.Sample(eps, prompts)
		if err != nil {
			return nil, pre, err
		}
		eps, pre = ep, c
	}
	res, err := m.o.Run(eps, prompts)
	if err != nil {
		return nil, pre, err
	}
	c := res.Cost
	c.Forward += pre.Forward
	c.Seconds += pre.Seconds
	return res.X, c, nil
}

func (m *method) Close() {
	m.o.Finalize()
	if m.warm != nil {
		m.warm.Finalize()
	}
}
