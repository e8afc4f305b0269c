package infer

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/hypernet"
)

// Files in a hypernetwork folder (this package owns them: OpenFolder reads one, SaveFolder writes
// one, CheckRunFolder and ClearRunFolder apply the training rules; the resumable checkpoint's
// files are hypernet.CheckpointWeights and hypernet.CheckpointJSON, the fine-tune cache's
// FinetuneFile and FinetuneConfigFile).
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
	KindLoRA   = "lora"   // LoRA copy of the generator's noise-shaped backbone (the paper's)
	KindMLP    = "mlp"    // small standalone network on noise and prompt
	KindDial   = "dial"   // tilt dial: the MLP conditioned on beta, trained over BetaRange
	KindFlow   = "flow"   // invertible coupling flow with an exact log-determinant (hypernet.Flow)
	KindAffine = "affine" // per-prompt affine map b_c + A_c eps (hypernet.Affine)
	// KindGaussian is the affine map in Cholesky form, b_c + L_c eps with an exact log-determinant
	// (hypernet.Gaussian): it trains on the exact KL by default.
	KindGaussian = "gaussian"
)

// DenseMatrix reports whether kind keeps a D x D matrix per prompt (affine, gaussian): such
// modulators are refused past hypernet.MaxAffineParams and need an explicit beta.
func DenseMatrix(kind string) bool { return kind == KindAffine || kind == KindGaussian }

// Flow conditioners (ModulatorSpec.Conditioner).
const (
	ConditionerMLP  = "mlp"
	ConditionerLoRA = "lora"
)

// ModulatorSpec describes the hypernetwork's architecture.
type ModulatorSpec struct {
	Kind   string  `json:"kind"`
	Rank   int     `json:"rank,omitempty"`   // lora
	Alpha  float64 `json:"alpha,omitempty"`  // lora (0: 2*rank)
	Hidden int     `json:"hidden,omitempty"` // mlp, dial, flow (its conditioners)
	Layers int     `json:"layers,omitempty"` // mlp, dial, flow (its conditioners)
	// Couplings is the flow's number of coupling layers; Conditioner what computes each coupling's
	// scales and shifts: "mlp" (default; Hidden, Layers) or "lora" (a LoRA copy of the generator's
	// backbone per coupling; Rank, Alpha).
	Couplings   int    `json:"couplings,omitempty"`
	Conditioner string `json:"conditioner,omitempty"`
	// ShiftScale is the affine and gaussian modulators' shift parametrization b_c = ShiftScale·B_c
	// (hypernet.Affine.ShiftScale).
	ShiftScale float64 `json:"shift_scale,omitempty"`
	// BetaRange is the dial's trained range of beta [lo, hi].
	BetaRange [2]float64 `json:"beta_range,omitzero"`
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
	case KindFlow:
		if s.Couplings <= 0 {
			return fmt.Errorf("flow coupling layers must be positive, got %d", s.Couplings)
		}
		switch s.Conditioner {
		case "", ConditionerMLP:
			if s.Hidden <= 0 || s.Layers <= 0 {
				return fmt.Errorf("MLP hidden width and layers must be positive, got %d and %d", s.Hidden, s.Layers)
			}
		case ConditionerLoRA:
			if s.Rank <= 0 || s.Alpha < 0 {
				return fmt.Errorf("LoRA rank must be positive and alpha >= 0 (0 means 2*rank), got %d and %g", s.Rank, s.Alpha)
			}
		default:
			return fmt.Errorf("unknown flow conditioner %q; allowed: %s, %s", s.Conditioner, ConditionerMLP, ConditionerLoRA)
		}
	case KindAffine, KindGaussian:
		if !(s.ShiftScale > 0) {
			return fmt.Errorf("%s shift scale must be positive, got %g", s.Kind, s.ShiftScale)
		}
	case KindMLP, KindDial:
		if s.Hidden <= 0 || s.Layers <= 0 {
			return fmt.Errorf("MLP hidden width and layers must be positive, got %d and %d", s.Hidden, s.Layers)
		}
		if lo, hi := s.BetaRange[0], s.BetaRange[1]; s.Kind == KindDial && !(lo >= hypernet.MinBeta && hi > lo && hi <= hypernet.MaxBeta) {
			return fmt.Errorf("the tilt dial's beta range must satisfy %g <= lo < hi <= %g, got [%g, %g]", hypernet.MinBeta, hypernet.MaxBeta, lo, hi)
		}
	default:
		return fmt.Errorf("unknown modulator %q; allowed: %s, %s, %s, %s, %s, %s", s.Kind, KindLoRA, KindMLP, KindDial, KindFlow, KindAffine, KindGaussian)
	}
	return s.checkBounds()
}

// Build makes the modulator for gen with its variables under /scope (a single scope name).
// A LoRA modulator needs a generator that implements hypernoise.Backbone; a dial is returned as
// a hypernet.Dial (use hypernet.AtBeta for one beta).
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
	if s.Kind == KindFlow && s.Conditioner == ConditionerLoRA {
		bb, ok := gen.(hypernoise.Backbone)
		if !ok {
			return nil, fmt.Errorf("generator %s has no noise-shaped backbone for a flow with LoRA conditioners; use --conditioner mlp", gen.Name())
		}
		return hypernet.NewLoRAFlow(bb, gen.NoiseShape(), len(gen.Prompts()), s.Rank, s.Alpha, s.Couplings, scope)
	}
	if s.Kind == KindFlow {
		return hypernet.NewFlow(gen.NoiseShape(), len(gen.Prompts()), s.Hidden, s.Layers, s.Couplings, scope)
	}
	if s.Kind == KindAffine {
		m, err := hypernet.NewAffine(gen.NoiseShape(), len(gen.Prompts()), scope)
		if err != nil {
			return nil, err
		}
		m.ShiftScale = s.ShiftScale
		return m, nil
	}
	if s.Kind == KindGaussian {
		m, err := hypernet.NewGaussian(gen.NoiseShape(), len(gen.Prompts()), scope)
		if err != nil {
			return nil, err
		}
		m.ShiftScale = s.ShiftScale
		return m, nil
	}
	if s.Kind == KindDial {
		return hypernet.NewDialMLP(gen.NoiseShape(), len(gen.Prompts()), s.Hidden, s.Layers, s.BetaRange[0], s.BetaRange[1], scope)
	}
	return hypernet.NewMLP(gen.NoiseShape(), len(gen.Prompts()), s.Hidden, s.Layers, scope)
}

// Config is the JSON saved beside a trained hypernetwork's weights.
type Config struct {
	Format    int    `json:"format"`
	Generator string `json:"generator"`
	// Model is the model the hypernetwork was trained on, as a --model value (family.Model.Ref:
	// "fashion", "onnx:/abs/spec.json"), so that the folder finds its model; empty in folders
	// written before it was recorded (the default family).
	Model      string               `json:"model,omitempty"`
	BaseHash   string               `json:"base_model_sha256"` // of the generator's weights
	RewardSpec string               `json:"reward_spec"`
	Modulator  ModulatorSpec        `json:"modulator"`
	Reg        hypernet.Regularizer `json:"regularizer"`
	RegWeight  float64              `json:"reg_weight"`
	// Beta is the tilt temperature trained for (hypernet.Objective.TiltBeta; for mean-sq 2*weight/D),
	// in the units of the reward trained on (see RewardNorm); a dial's default beta (1 if in range).
	Beta float64 `json:"beta,omitempty"`
	// RewardNorm "std" ("std-within"): each reward term was divided by its spread (its pooled
	// within-prompt spread) under the base generator, RewardScale[name] (measured before training),
	// so the tilt is exp(Σ w_k r_k/s_k / beta).
	RewardNorm  string             `json:"reward_norm,omitempty"`
	RewardScale map[string]float64 `json:"reward_scale,omitempty"`
	LogDet      *hypernet.LogDet   `json:"logdet,omitempty"` // the logdet regularizer's estimator
	// TiltMatch: the energy distance to a resampled tilt reference was part of the loss.
	TiltMatch *hypernet.MatchSpec `json:"tilt_match,omitempty"`
	// TiltMatchSkipped says why a default (Auto) TiltMatch was left out of the loss: its pool
	// could not resample the tilt. The run trained without it.
	TiltMatchSkipped string               `json:"tilt_match_skipped,omitempty"`
	Train            hypernet.TrainConfig `json:"train"`
	Result           *TrainSummary        `json:"result,omitempty"`
}

// TrainSummary is what training reached.
type TrainSummary struct {
	Steps       int     `json:"steps"`
	Skipped     int     `json:"skipped_steps"`
	Seconds     float64 `json:"seconds"`
	RewardFirst float64 `json:"reward_first_steps"` // mean batch reward over the first 10% of steps
	RewardLast  float64 `json:"reward_last_steps"`  // ... and over the last 10%
	// Diverged: for the logdet regularizer, the fraction of training samples whose series was
	// detected as diverging (and so not trained on), over all steps.
	Diverged float64 `json:"logdet_diverged,omitempty"`
	// RegLast is the regularizer's batch mean over the last 10% of steps (for kl 1/2||f||^2, for
	// logdet the KL estimate); SeriesLast, for logdet, the part of it beyond 1/2||f||^2
	// (Σ_{k>=2} (-1)^k tr(J^k)/k, the volume term the surrogate drops).
	RegLast        float64 `json:"reg_last_steps"`
	SeriesLast     float64 `json:"logdet_series_last_steps,omitempty"`
	FinishedAtTime string  `json:"finished_at"`
}

// CheckBeta says whether the hypernetwork can sample at tilt temperature beta: a tilt dial
// anywhere in its trained range, any other hypernetwork only at the beta it was trained for.
func (c Config) CheckBeta(beta float64) error {
	if c.Modulator.Kind == KindDial {
		if lo, hi := c.Modulator.BetaRange[0], c.Modulator.BetaRange[1]; !(beta >= lo && beta <= hi) {
			return fmt.Errorf("beta %g is outside the range this tilt dial was trained on, [%g, %g]", beta, lo, hi)
		}
		return nil
	}
	if c.Reg.HasTilt() && c.Beta > 0 && beta == c.Beta {
		return nil
	}
	if c.Reg.HasTilt() && c.Beta > 0 {
		return fmt.Errorf("this %s hypernetwork was trained for beta %g only; --beta needs a tilt dial (train --modulator dial)", c.Modulator.Kind, c.Beta)
	}
	return fmt.Errorf("this %s hypernetwork was trained with the %s regularizer, which has no beta; --beta needs a tilt dial (train --modulator dial)", c.Modulator.Kind, c.Reg)
}

// DialDefaultBeta is the beta a dial samples at without --beta: 1 if in [lo, hi], else sqrt(lo hi).
func DialDefaultBeta(lo, hi float64) float64 {
	if lo <= 1 && 1 <= hi {
		return 1
	}
	return math.Sqrt(lo * hi)
}

// inScope reports whether scope is root or below it.
func inScope(scope, root string) bool {
	return scope == root || strings.HasPrefix(scope, root+context.ScopeSeparator)
}
