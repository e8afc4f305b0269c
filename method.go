package hypernoise

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Cost is what a method spends per sample: network evaluations (forward and backward passes of a
// generator-sized network; a modulator's forward counts as one whatever its size) and wall time.
type Cost struct {
	Forward  float64 `json:"forward_per_sample"`
	Backward float64 `json:"backward_per_sample"`
	Seconds  float64 `json:"seconds_per_sample"`
	// Skipped counts, over the batch, the candidates (best-of-N) or iterates (ReNO) left out because
	// the reward was not finite; the commands report it when it is not zero.
	Skipped int `json:"skipped_non_finite,omitempty"`
}

// NFE is the number of network evaluations per sample, forward plus backward.
func (c Cost) NFE() float64 { return c.Forward + c.Backward }

// Method is one way of turning noise into samples: base sampling, best-of-N, ReNO, a fine-tuned
// generator, HyperNoise, HyperNoise followed by ReNO steps. Every method of the toolkit is built
// from a MethodEnv through the registry (RegisterMethod, LookupMethod).
type Method interface {
	// Name is the method's label in reports, e.g. "base", "best-of-4", "hypernoise".
	Name() string
	// Generate maps noise eps [B, NoiseShape...] (float32) and prompt ids [B] (int32) to samples
	// x [B, ...] and reports the method's cost per sample. It is safe for concurrent use, runs in
	// chunks of a bounded number of rows (memory does not grow with B beyond the inputs and
	// outputs), and is deterministic: the same eps and prompts give the same x.
	Generate(eps, prompts *tensors.Tensor) (x *tensors.Tensor, cost Cost, err error)
	// Close releases the compiled graphs; the method must not be used afterwards.
	Close()
}

// DefaultChunk is the most rows (samples, or best-of-N candidates) a method runs in one compiled
// call when MethodEnv.Chunk is 0. Batches are padded up to a power of two at most Chunk, so a method
// keeps at most log2(Chunk)+1 compiled graphs.
const DefaultChunk = 64

// MethodEnv is what a method is built from. Generator, Reward, Modulator and Finetuned must keep
// their variables in Context.
type MethodEnv struct {
	Backend backends.Backend
	// Context holds the weights of the generator, the rewards and the modulators (frozen).
	Context *context.Context
	// Lock is shared by everything that builds graphs on Context: graphs are built (and variables
	// added) under Lock.Lock, and run under Lock.RLock. nil: the method uses a private one (then
	// nothing else may build graphs on Context while the method runs).
	Lock *sync.RWMutex

	Generator Generator
	Reward    Reward    // methods that need one (MethodInfo.Needs has NeedsReward)
	Modulator Modulator // the hypernetwork (NeedsModulator)
	Finetuned Generator // the fine-tuned generator (NeedsFinetuned)

	N     int // best-of-N candidates per sample (NeedsN)
	Steps int // optimization steps (NeedsSteps)
	Chunk int // most rows per compiled call; 0: DefaultChunk
}

// ChunkOrDefault is Chunk, or DefaultChunk when Chunk <= 0.
func (e MethodEnv) ChunkOrDefault() int {
	if e.Chunk <= 0 {
		return DefaultChunk
	}
	return e.Chunk
}

// Needs says which parts of a MethodEnv a method uses.
type Needs uint

const (
	NeedsReward    Needs = 1 << iota // a reward to maximize
	NeedsModulator                   // a trained hypernetwork
	NeedsFinetuned                   // a fine-tuned generator
	NeedsN                           // a candidate count N
	NeedsSteps                       // a step count
)

// Has reports whether n includes all of what.
func (n Needs) Has(what Needs) bool { return n&what == what }

// MethodInfo is a registry entry: a method's name (its one spelling, on the command line, in the
// HTTP API and in reports), what it needs, and its constructor.
type MethodInfo struct {
	Name    string
	Summary string
	Needs   Needs
	// Defaults are the method's knobs when neither the model (family.Model.MethodDefaults) nor
	// the request sets them, Max their largest allowed values; only the knobs in Needs count.
	Defaults, Max Knobs
	// New builds the method. It checks env against Needs and returns a clear error.
	New func(env MethodEnv) (Method, error)
}

// Knobs are a method's integer settings; a zero field is unset.
type Knobs struct {
	N     int `json:"n,omitempty"`     // best-of-N candidates (NeedsN)
	Steps int `json:"steps,omitempty"` // optimization steps (NeedsSteps)
}

// over returns k with the set fields of top replacing its own.
func (k Knobs) over(top Knobs) Knobs {
	if top.N != 0 {
		k.N = top.N
	}
	if top.Steps != 0 {
		k.Steps = top.Steps
	}
	return k
}

// Settle layers the method's knobs the way every command applies them: the registry's Defaults,
// over them the model's, over them the request's (set fields win), and checks each knob the
// method needs against [1, Max]; the knobs it does not need are returned zero.
func (info MethodInfo) Settle(model, request Knobs) (Knobs, error) {
	k := info.Defaults.over(model).over(request)
	if err := info.CheckKnobs(k); err != nil {
		return Knobs{}, err
	}
	var out Knobs
	if info.Needs.Has(NeedsN) {
		out.N = k.N
	}
	if info.Needs.Has(NeedsSteps) {
		out.Steps = k.Steps
	}
	return out, nil
}

// CheckKnobs checks each knob the method needs against [1, Max] (0 is out of range here).
func (info MethodInfo) CheckKnobs(k Knobs) error {
	if info.Needs.Has(NeedsN) && (k.N < 1 || info.Max.N > 0 && k.N > info.Max.N) {
		return fmt.Errorf("%s needs N in [1, %d], got %d", info.Name, info.Max.N, k.N)
	}
	if info.Needs.Has(NeedsSteps) && (k.Steps < 1 || info.Max.Steps > 0 && k.Steps > info.Max.Steps) {
		return fmt.Errorf("%s needs steps in [1, %d], got %d", info.Name, info.Max.Steps, k.Steps)
	}
	return nil
}

// CheckKnobs checks knobs against the limits of the registered method name (see
// MethodInfo.CheckKnobs); an unknown name is an error listing the methods.
func CheckKnobs(name string, k Knobs) error {
	info, err := LookupMethod(name)
	if err != nil {
		return err
	}
	return info.CheckKnobs(k)
}

// KnobHelp describes the knob defaults and limits of every registered method that has some,
// e.g. "best-of-n: N 16 (at most 10000); reno: steps 50 (at most 1000)", for usage texts.
func KnobHelp() string {
	var parts []string
	for _, name := range MethodNames() {
		info, _ := LookupMethod(name)
		if info.Needs.Has(NeedsN) {
			parts = append(parts, fmt.Sprintf("%s: N %d (at most %d)", name, info.Defaults.N, info.Max.N))
		}
		if info.Needs.Has(NeedsSteps) {
			parts = append(parts, fmt.Sprintf("%s: steps %d (at most %d)", name, info.Defaults.Steps, info.Max.Steps))
		}
	}
	return strings.Join(parts, "; ")
}

// CheckEnv returns an error naming the first part of env that the method needs and lacks.
func (info MethodInfo) CheckEnv(env MethodEnv) error {
	switch {
	case env.Backend == nil || env.Context == nil || env.Generator == nil:
		return fmt.Errorf("method %s needs a backend, a context and a generator", info.Name)
	case info.Needs.Has(NeedsReward) && env.Reward == nil:
		return fmt.Errorf("method %s needs a reward", info.Name)
	case info.Needs.Has(NeedsModulator) && env.Modulator == nil:
		return fmt.Errorf("method %s needs a hypernetwork", info.Name)
	case info.Needs.Has(NeedsFinetuned) && env.Finetuned == nil:
		return fmt.Errorf("method %s needs a fine-tuned generator", info.Name)
	case info.Needs.Has(NeedsN) && env.N < 1:
		return fmt.Errorf("method %s needs N >= 1, got %d", info.Name, env.N)
	case info.Needs.Has(NeedsSteps) && env.Steps < 1:
		return fmt.Errorf("method %s needs steps >= 1, got %d", info.Name, env.Steps)
	}
	return nil
}

var registry struct {
	sync.RWMutex
	order []string
	infos map[string]MethodInfo
}

// RegisterMethod adds a method to the registry (package methods registers the toolkit's own, in
// report order); the registered constructor's methods fail on samples holding NaN or Inf (see
// CheckFiniteSamples). It panics on an empty or duplicate name: that is a programming error.
func RegisterMethod(info MethodInfo) {
	registry.Lock()
	defer registry.Unlock()
	if info.Name == "" || info.New == nil {
		panic("hypernoise: RegisterMethod needs a name and a constructor")
	}
	if registry.infos == nil {
		registry.infos = map[string]MethodInfo{}
	}
	if _, dup := registry.infos[info.Name]; dup {
		panic(fmt.Sprintf("hypernoise: method %q registered twice", info.Name))
	}
	info.New = checkedNew(info.New) // every method's samples are checked for NaN and Inf
	registry.infos[info.Name] = info
	registry.order = append(registry.order, info.Name)
}

// MethodNames lists the registered methods in registration order.
func MethodNames() []string {
	registry.RLock()
	defer registry.RUnlock()
	return slices.Clone(registry.order)
}

// LookupMethod returns a registered method; an unknown name is an error listing the names.
func LookupMethod(name string) (MethodInfo, error) {
	registry.RLock()
	defer registry.RUnlock()
	info, ok := registry.infos[name]
	if !ok {
		return MethodInfo{}, fmt.Errorf("unknown method %q; methods: %s", name, strings.Join(registry.order, ", "))
	}
	return info, nil
}

// NewMethod looks name up and builds it from env.
func NewMethod(name string, env MethodEnv) (Method, error) {
	info, err := LookupMethod(name)
	if err != nil {
		return nil, err
	}
	if err := info.CheckEnv(env); err != nil {
		return nil, err
	}
	return info.New(env)
}

// noiseStream is the PCG stream of the toolkit's sampling noise (the evaluation's stream since
// the first release, so evaluation figures are unchanged by the unification).
const noiseStream = 7001 ^ 0x9e3779b97f4a7c15

// Noise is the toolkit's one noise scheme: the first n noises (each of the given shape) of the
// N(0, I) stream of seed, as a [n, shape...] float32 tensor. Every command and method draws from
// it (see PromptNoise for how prompts share it), so a seed fixes the images; methods that need
// more randomness (best-of-N's candidates) derive it from the noise they are given.
func Noise(seed uint64, n int, shape []int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(NoiseFlat(seed, n, shape), append([]int{n}, shape...)...)
}

// NoiseFlat is Noise as a flat slice of n*prod(shape) values.
func NoiseFlat(seed uint64, n int, shape []int) []float32 {
	return noiseRange(seed, 0, n, shape)
}

// PromptNoise is the noise of n images of prompt id p: noises p*n .. p*n+n-1 of the seed's stream
// (flat). An evaluation with n seeds per prompt lays its prompts out the same way (image k of
// prompt p is noise p*n+k), so `sample --prompt P --n N --seed S`, `eval --seeds N --seed S` and
// the server draw the same images of P; every image of an evaluation has its own noise.
func PromptNoise(seed uint64, p, n int, shape []int) []float32 {
	return noiseRange(seed, p*n, n, shape)
}

// noiseRange returns noises [start, start+n) of the seed's stream.
func noiseRange(seed uint64, start, n int, shape []int) []float32 {
	d := 1
	for _, s := range shape {
		d *= s
	}
	r := rand.New(rand.NewPCG(seed, noiseStream))
	for range start * d {
		r.NormFloat64()
	}
	out := make([]float32, n*d)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// finiteMethod checks every sample a method returns: a generator that emits NaN or Inf makes
// Generate fail, naming the generator, instead of producing black images.
type finiteMethod struct {
	Method
	gen Generator
}

func (m finiteMethod) Generate(eps, prompts *tensors.Tensor) (*tensors.Tensor, Cost, error) {
	x, c, err := m.Method.Generate(eps, prompts)
	if err != nil {
		return x, c, err
	}
	if err := CheckFiniteSamples("the generator "+Describe(m.gen), x); err != nil {
		if nf, ok := err.(*NonFiniteError); ok {
			nf.Context = "method " + m.Name()
		}
		return nil, c, err
	}
	return x, c, nil
}

// checkedNew wraps a method constructor so that the method's samples are checked for finiteness.
func checkedNew(newFn func(MethodEnv) (Method, error)) func(MethodEnv) (Method, error) {
	return func(env MethodEnv) (Method, error) {
		m, err := newFn(env)
		if err != nil || m == nil {
			return m, err
		}
		return finiteMethod{Method: m, gen: env.Generator}, nil
	}
}
