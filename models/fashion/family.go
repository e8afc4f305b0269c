package fashion

import (
	"os"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/family"
)

// FamilyName is the family's name in --model and in hypernet.json.
const FamilyName = "fashion"

// DefaultReward is the reward of methods that need one when nothing names another: prompt
// alignment, log p(c|x) under the reward classifier.
const DefaultReward = "align=1"

// Family is the embedded Fashion-MNIST model family, the toolkit's default: argument "" loads the
// weights embedded in the binary, a folder loads weights written by Train.
var Family = family.Family{
	Name:       FamilyName,
	Summary:    "the embedded Fashion-MNIST one-step generator (argument: a weights folder written by train-models; default: the embedded weights)",
	RewardHelp: Rewards(nil).Help(),
	Load: func(arg string, _ backends.Backend) (*family.Model, error) {
		if arg == "" {
			m, err := Default()
			if err != nil {
				return nil, err
			}
			return ModelOf(m), nil
		}
		if _, err := os.Stat(arg); err != nil {
			return nil, &family.ArgError{Err: err}
		}
		m, err := Load(arg)
		if err != nil {
			return nil, err
		}
		return ModelOf(m), nil
	},
}

// memoryFit is peak resident memory measured with /usr/bin/time -v on the pure-Go backend (issue
// 12 note: train batch 32/256 at rank 8, rank 128 and 256, MLP widths 1024 and 4096; sample base,
// best-of-N and ReNO at several sizes), rounded up.
var memoryFit = family.MemoryFit{
	TrainBase:      100 << 20, // process, embedded models, compiled graphs
	TrainPerSample: 5 << 19,   // 2.5 MiB of activations and gradients per batch sample
	PerLoRARank:    2 << 19,   // 1 MiB per unit of LoRA rank (adapters, optimizer state, activations)
	PerMLPParam:    72,        // weights, gradient, AdamW moments, temporaries
	PromptEmbed:    32,
	SampleBase:     500 << 20, // process, models, graphs
	PerImage:       20 << 10,  // noise, latents, pixels, PNG
}

// ModelOf is the family model of m: the one-step student as generator, the rewards of Rewards(m),
// DefaultReward, a hash of the student's and autoencoder's weights, and the capabilities whose
// parts m holds (the held-out evaluator with the test set's statistics, the teacher sampler), the
// grid writer and the memory fit.
func ModelOf(m *Model) *family.Model {
	fm := &family.Model{Family: FamilyName, Generator: m, Context: m.Context(), Rewards: Rewards(m),
		DefaultReward: DefaultReward, Hash: family.HashScopes(m.Context(), ScopeStudent, ScopeAutoencoder),
		Grid: GridPNG, Memory: &memoryFit, PromptID: PromptID}
	if m.Has(ScopeHeldOut) {
		fm.HeldOut = heldOut{m}
	}
	if m.Has(ScopeTeacher) {
		fm.Teacher = teacher{m}
	}
	return fm
}

// heldOut is the held-out classifier as a family.HeldOut.
type heldOut struct{ m *Model }

func (h heldOut) HeldOut(ctx *context.Context, x *graph.Node) (logits, features *graph.Node) {
	return HeldOut(ctx, x)
}

func (h heldOut) FDReference(backend backends.Backend) (family.FDReference, error) {
	return TestStatsFor(backend, h.m, "")
}

// teacher is the guided teacher flow as a family.Teacher.
type teacher struct{ m *Model }

func (t teacher) TeacherSamples(backend backends.Backend, eps []float32, prompts []int32, steps int, guidance float64) ([]float32, error) {
	if guidance != 0 {
		old := t.m.Guidance
		t.m.Guidance = guidance
		defer func() { t.m.Guidance = old }()
	}
	return GenerateImages(backend, t.m, eps, prompts, steps)
}

func (t teacher) DefaultGuidance() float64 { return DefaultGuidance }
