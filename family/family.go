// Package family is the seam between model families and everything that uses a model. A model
// family (the embedded Fashion-MNIST default, an ONNX spec, the 2-D toy, your own) is a package
// that exports one Family; package models lists them (one line each). Every command resolves
// --model through Load and gets a *Model: the frozen generator, the context holding its weights,
// its rewards, its default reward and its weights' hash, plus optional capabilities (a held-out
// evaluator with FD statistics, a grid writer, a teacher sampler, a memory fit) that the commands
// use only where present.
//
// The roles a model plays are those of package hypernoise (Generator, Reward; the Modulator and
// the Method are the toolkit's side of the seam).
package family

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/internal/safeio"
	"github.com/hypernoise/hypernoise/rewards"
)

// Model is a loaded model of some family: what every command needs.
type Model struct {
	// Family is the registry name of the model's family; Arg its argument ("" for the family's
	// default; an ONNX spec's path). Ref joins them into the --model value that reloads it.
	Family, Arg string

	Generator hypernoise.Generator
	// Context holds the frozen weights of the generator and of its rewards.
	Context *context.Context
	// Rewards are the rewards reward specs may name (e.g. "align=1,brightness=0.1").
	Rewards *rewards.Registry
	// DefaultReward is the reward spec of methods that need one when nothing names another.
	DefaultReward string
	// Hash identifies the generator's weights (see HashScopes): a hypernetwork trained for other
	// weights is refused.
	Hash string

	// Optional capabilities: nil where the family has none.

	// HeldOut is an evaluator no method trains against (held-out alignment, FD).
	HeldOut HeldOut
	// Grid writes generated samples as a PNG grid.
	Grid GridFunc
	// Teacher samples the multi-step teacher the generator was distilled from.
	Teacher Teacher
	// Memory is a fit of peak memory, used to refuse sizes that cannot fit before allocating.
	Memory *MemoryFit
	// PromptID resolves a prompt name (spellings beyond the exact names); nil: case-insensitive
	// match of Generator.Prompts().
	PromptID func(prompt string) (int, error)
	// MethodDefaults override the method registry's defaults for this model (method name ->
	// knobs; zero fields keep the registry's). See hypernoise.MethodInfo.Defaults.
	MethodDefaults map[string]hypernoise.Knobs
	// DefaultModulator is the hypernetwork kind `train` builds when no flag names one ("mlp", ...;
	// "": the toolkit's default, the LoRA copy of the generator).
	DefaultModulator string
}

// Ref is the --model value that loads this model again: "family" or "family:arg".
func (m *Model) Ref() string { return JoinRef(m.Family, m.Arg) }

// JoinRef is "family" or "family:arg".
func JoinRef(family, arg string) string {
	if arg == "" {
		return family
	}
	return family + ":" + arg
}

// GridFunc lays out n samples (flat, as the generator returns them, n*prod(sample shape)
// values) in a PNG grid of cols columns, each pixel scale x scale, pad pixels apart.
type GridFunc func(samples []float32, n, cols, scale, pad int) ([]byte, error)

// HeldOut is a held-out evaluator: a classifier of the prompts no method trains against, whose
// features also give a Fréchet distance to real data.
type HeldOut interface {
	// HeldOut builds logits [B, prompts] and features [B, F] of samples x [B, ...] in ctx (the
	// model's context, which holds its weights).
	HeldOut(ctx *context.Context, x *graph.Node) (logits, features *graph.Node)
	// FDReference returns the reference Gaussian of real data's features (nil, nil: none).
	FDReference(backend backends.Backend) (FDReference, error)
}

// FDReference is the Gaussian of real data's held-out features.
type FDReference interface {
	// FD is the Fréchet distance between the Gaussian fitted to feats and the reference.
	FD(feats [][]float64) (float64, error)
}

// Teacher samples the multi-step teacher of a distilled generator.
type Teacher interface {
	// TeacherSamples integrates the teacher's flow ODE from eps (flat, n noises) with steps Euler
	// steps at guidance scale guidance (0: the teacher's default) and returns the samples, flat.
	TeacherSamples(backend backends.Backend, eps []float32, prompts []int32, steps int, guidance float64) ([]float32, error)
	// DefaultGuidance is the teacher's own guidance scale.
	DefaultGuidance() float64
}

// MemoryFit is a family's measured peak resident memory, in bytes, as a linear fit in the sizes
// of a run (see pipeline.EstimateTrainBytes and EstimateSampleBytes).
type MemoryFit struct {
	TrainBase      int64 // training: process, models, compiled graphs
	TrainPerSample int64 // activations and gradients per batch sample
	PerLoRARank    int64 // per unit of LoRA rank
	PerMLPParam    int64 // per MLP modulator parameter
	PromptEmbed    int64 // width of the MLP modulator's prompt embedding
	SampleBase     int64 // sampling: process, models, graphs
	PerImage       int64 // per generated image kept
	// ForwardPerRow and GradPerRow are the memory of one row (sample) of a compiled call: one that
	// runs the generator and the rewards forward (sampling, best-of-N, scoring, the tilt pool, the
	// reward spread) and one that also takes their gradients (ReNO). They size the chunks those
	// calls run in (Model.ChunkRows); 0: the family's chunks are not bounded by them (their
	// default sizes are part of SampleBase, as measured) and keep their default sizes.
	ForwardPerRow int64
	GradPerRow    int64
}

// LoRAChecker is implemented by generators that can say, before training, whether a LoRA
// hypernetwork can start at f = 0 on their backbone (an error says why not).
type LoRAChecker interface {
	CheckLoRA() error
}

// ArgError is a mistake in a family's argument (a malformed spec, an unknown family): a usage
// error of the command that passed it.
type ArgError struct{ Err error }

func (e *ArgError) Error() string { return e.Err.Error() }
func (e *ArgError) Unwrap() error { return e.Err }

// Family is a registry entry: a model family's name (its spelling in --model and in
// hypernet.json), what it is, and how to load one of its models.
type Family struct {
	Name    string
	Summary string
	// Load loads the model that arg names ("" for the family's default). A mistake in arg is
	// returned as an *ArgError; a missing or broken file as another error.
	Load func(arg string, backend backends.Backend) (*Model, error)
	// RewardHelp lists the rewards its models offer, for usage texts ("" when they depend on the
	// argument, as an ONNX spec's do).
	RewardHelp string
	// Accepts reports whether a bare --model value (no "family:" prefix) names a model of this
	// family, e.g. a path to an ONNX spec; nil: never.
	Accepts func(ref string) bool
	// WeightBytes, when set, reads how much memory the weights of the model arg names will hold
	// once loaded, without loading them, so that a command can refuse a model over its memory
	// budget before allocating it. nil: the family's models are small enough not to check.
	WeightBytes func(arg string) (int64, error)
}

var registry struct {
	sync.RWMutex
	order []string
	all   map[string]Family
}

// Register adds a family (package models registers the toolkit's own; the first registered is
// the default). It panics on an empty or duplicate name: that is a programming error.
func Register(f Family) {
	registry.Lock()
	defer registry.Unlock()
	if f.Name == "" || f.Load == nil || strings.Contains(f.Name, ":") {
		panic("family: Register needs a name without ':' and a loader")
	}
	if registry.all == nil {
		registry.all = map[string]Family{}
	}
	if _, dup := registry.all[f.Name]; dup {
		panic(fmt.Sprintf("family: %q registered twice", f.Name))
	}
	registry.all[f.Name] = f
	registry.order = append(registry.order, f.Name)
}

// Names lists the registered families, the default first.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	return slices.Clone(registry.order)
}

// Lookup returns a registered family; an unknown name is an *ArgError listing the names.
func Lookup(name string) (Family, error) {
	registry.RLock()
	defer registry.RUnlock()
	f, ok := registry.all[name]
	if !ok {
		return Family{}, &ArgError{fmt.Errorf("unknown model family %q; families: %s", name, strings.Join(registry.order, ", "))}
	}
	return f, nil
}

// Resolve splits a --model value into its family and argument: "" is the default family;
// "name" or "name:arg" a registered family; any other value the family that Accepts it (e.g. a
// spec path). An unresolvable value is an *ArgError.
func Resolve(ref string) (Family, string, error) {
	registry.RLock()
	order := slices.Clone(registry.order)
	registry.RUnlock()
	if len(order) == 0 {
		return Family{}, "", fmt.Errorf("no model family is registered (import package models)")
	}
	if ref == "" {
		f, err := Lookup(order[0])
		return f, "", err
	}
	name, arg, _ := strings.Cut(ref, ":")
	if f, err := Lookup(name); err == nil {
		return f, arg, nil
	}
	for _, n := range order {
		if f, _ := Lookup(n); f.Accepts != nil && f.Accepts(ref) {
			return f, ref, nil
		}
	}
	return Family{}, "", &ArgError{fmt.Errorf("unknown model %q: name a family (%s), family:argument, or a model spec (.json)",
		ref, strings.Join(order, ", "))}
}

// Load resolves a --model value and loads its model, recording the family and argument in it
// (a family may have put its argument in canonical form, e.g. an absolute path: that is kept).
func Load(ref string, backend backends.Backend) (*Model, error) {
	f, arg, err := Resolve(ref)
	if err != nil {
		return nil, err
	}
	m, err := f.Load(arg, backend)
	if err != nil {
		return nil, err
	}
	m.Family = f.Name
	if m.Arg == "" {
		m.Arg = arg
	}
	return m, nil
}

// DefaultRewardHelp is the default family's RewardHelp.
func DefaultRewardHelp() string {
	names := Names()
	if len(names) == 0 {
		return ""
	}
	f, _ := Lookup(names[0])
	return f.RewardHelp
}

// IsArgError reports whether err is (or wraps) an *ArgError.
func IsArgError(err error) bool {
	var ae *ArgError
	return errors.As(err, &ae)
}

// Prompt resolves a prompt against the model's prompts: its id, or every id for "all"
// (case-insensitive, blanks collapsed); an unconditional model has the one prompt id 0.
func (m *Model) Prompt(prompt string) ([]int, error) {
	prompts := m.Generator.Prompts()
	p := strings.ToLower(strings.Join(strings.Fields(prompt), " "))
	if len(prompts) == 0 {
		if p != "" && p != "all" {
			return nil, fmt.Errorf("model %s is unconditional (it has no prompts), so a prompt (%s) cannot be followed; leave --prompt out",
				m.Generator.Name(), safeio.Shorten(prompt, 60))
		}
		return []int{0}, nil
	}
	if p == "all" {
		ids := make([]int, len(prompts))
		for i := range ids {
			ids[i] = i
		}
		return ids, nil
	}
	if m.PromptID != nil {
		id, err := m.PromptID(prompt)
		if err != nil {
			return nil, err
		}
		return []int{id}, nil
	}
	for i, name := range prompts {
		if strings.ToLower(strings.Join(strings.Fields(name), " ")) == p {
			return []int{i}, nil
		}
	}
	return nil, fmt.Errorf("unknown prompt %s; the model's prompts: %s (or all)", safeio.Shorten(prompt, 80), strings.Join(prompts, ", "))
}

// NumPrompts is the number of prompt ids of the model (1 for an unconditional one).
func (m *Model) NumPrompts() int { return max(1, len(m.Generator.Prompts())) }
