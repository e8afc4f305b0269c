package infer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/hypernet"
)

// Files in a hypernetwork folder (written by pipeline.TrainHypernet).
const (
	WeightsFile = "hypernet.safetensors"
	ConfigFile  = "hypernet.json"
	CurveFile   = "curve.png"
)

// ConfigFormat is the version of hypernet.json this package reads and writes.
const ConfigFormat = 1

// SavedScope is the scope a hypernetwork's weights are saved under in hypernet.safetensors
// (whatever scope it is loaded into).
const SavedScope = "hypernet"

// Modulator kinds.
const (
	KindLoRA = "lora" // LoRA copy of the generator's noise-shaped backbone (the paper's)
	KindMLP  = "mlp"  // small standalone network on noise and prompt
)

// ModulatorSpec describes the hypernetwork's architecture.
type ModulatorSpec struct {
	Kind   string  `json:"kind"`
	Rank   int     `json:"rank,omitempty"`   // lora
	Alpha  float64 `json:"alpha,omitempty"`  // lora (0: 2*rank)
	Hidden int     `json:"hidden,omitempty"` // mlp
	Layers int     `json:"layers,omitempty"` // mlp
}

// Validate checks the spec; errors name what is allowed.
func (s ModulatorSpec) Validate() error {
	switch s.Kind {
	case KindLoRA:
		if s.Rank <= 0 {
			return fmt.Errorf("LoRA rank must be positive, got %d", s.Rank)
		}
		if s.Alpha < 0 {
			return fmt.Errorf("LoRA alpha must be >= 0 (0 means 2*rank), got %g", s.Alpha)
		}
	case KindMLP:
		if s.Hidden <= 0 || s.Layers <= 0 {
			return fmt.Errorf("MLP hidden width and layers must be positive, got %d and %d", s.Hidden, s.Layers)
		}
	default:
		return fmt.Errorf("unknown modulator %q; allowed: %s, %s", s.Kind, KindLoRA, KindMLP)
	}
	return nil
}

// Build makes the modulator for gen with its variables under /scope (a single scope name).
// A LoRA modulator needs a generator that implements hypernoise.Backbone.
func (s ModulatorSpec) Build(gen hypernoise.Generator, scope string) (hypernoise.Modulator, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Kind == KindLoRA {
		bb, ok := gen.(hypernoise.Backbone)
		if !ok {
			return nil, fmt.Errorf("generator %s has no noise-shaped backbone for a LoRA modulator; use --modulator mlp", gen.Name())
		}
		return hypernet.NewLoRA(bb, s.Rank, s.Alpha, scope)
	}
	return hypernet.NewMLP(gen.NoiseShape(), len(gen.Prompts()), s.Hidden, s.Layers, scope)
}

// Config is the JSON saved beside a trained hypernetwork's weights.
type Config struct {
	Format     int                  `json:"format"`
	Generator  string               `json:"generator"`
	BaseHash   string               `json:"base_model_sha256"` // of the generator's weights
	RewardSpec string               `json:"reward_spec"`
	Modulator  ModulatorSpec        `json:"modulator"`
	Reg        hypernet.Regularizer `json:"regularizer"`
	RegWeight  float64              `json:"reg_weight"`
	Beta       float64              `json:"beta,omitempty"`
	Train      hypernet.TrainConfig `json:"train"`
	Result     *TrainSummary        `json:"result,omitempty"`
}

// TrainSummary is what training reached.
type TrainSummary struct {
	Steps          int     `json:"steps"`
	Skipped        int     `json:"skipped_steps"`
	Seconds        float64 `json:"seconds"`
	RewardFirst    float64 `json:"reward_first_steps"` // mean batch reward over the first 10% of steps
	RewardLast     float64 `json:"reward_last_steps"`  // ... and over the last 10%
	FinishedAtTime string  `json:"finished_at"`
}

// HashScopes is a SHA-256 over the variables of ctx under the given top-level scopes (names and
// raw values, in name order): it identifies a generator's weights, so that a hypernetwork can
// refuse a generator it was not trained for.
func HashScopes(ctx *context.Context, scopes ...string) string {
	h := sha256.New()
	var names []string
	vars := map[string]*context.Variable{}
	for v := range ctx.IterVariables() {
		for _, top := range scopes {
			if inScope(v.Scope(), context.ScopeSeparator+strings.TrimPrefix(top, context.ScopeSeparator)) {
				names = append(names, v.ScopeAndName())
				vars[v.ScopeAndName()] = v
				break
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		h.Write([]byte(n))
		if t, err := vars[n].Value(); err == nil {
			_ = t.ConstBytes(func(b []byte) { h.Write(b) })
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// inScope reports whether scope is root or below it.
func inScope(scope, root string) bool {
	return scope == root || strings.HasPrefix(scope, root+context.ScopeSeparator)
}
