package infer

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/rewards"
)

// Documented bounds of a hypernetwork's architecture (see also the memory estimate in
// pipeline.EstimateTrainBytes). The paper's LoRA rank is 128; alpha is its scale numerator (alpha/rank
// multiplies the adapters' output, default 2).
const (
	MaxRank         = 512
	MaxAlphaPerRank = 16
	MaxHidden       = 8192
	MaxLayers       = 16
	MaxCouplings    = 64
	MaxShiftScale   = 1000
)

// checkBounds checks the spec's sizes against the documented bounds.
func (s ModulatorSpec) checkBounds() error {
	switch s.Kind {
	case KindAffine, KindGaussian:
		return hypernet.CheckRange(s.Kind+" shift scale", s.ShiftScale, 0, MaxShiftScale)
	case KindLoRA:
		if err := hypernet.CheckIntRange("LoRA rank", s.Rank, 1, MaxRank); err != nil {
			return err
		}
		return hypernet.CheckRange("LoRA alpha (0: 2*rank)", s.Alpha, 0, float64(MaxAlphaPerRank*s.Rank))
	case KindFlow:
		if err := hypernet.CheckIntRange("flow coupling layers", s.Couplings, 1, MaxCouplings); err != nil {
			return err
		}
		if s.Conditioner == ConditionerLoRA {
			return (ModulatorSpec{Kind: KindLoRA, Rank: s.Rank, Alpha: s.Alpha}).checkBounds()
		}
		return (ModulatorSpec{Kind: KindMLP, Hidden: s.Hidden, Layers: s.Layers}).checkBounds()
	case KindMLP, KindDial:
		if err := hypernet.CheckIntRange("MLP hidden width", s.Hidden, 1, MaxHidden); err != nil {
			return err
		}
		return hypernet.CheckIntRange("MLP hidden layers", s.Layers, 1, MaxLayers)
	}
	return nil
}

// Validate checks a hypernetwork config read from disk before anything is built from it: known
// format, well-formed hashes, reward spec syntax, architecture within bounds, regularizer and
// weights in range and finite, a valid training configuration and a consistent result.
func (c Config) Validate() error {
	if c.Format != ConfigFormat {
		return fmt.Errorf("unsupported format %d (want %d)", c.Format, ConfigFormat)
	}
	if c.Generator == "" {
		return fmt.Errorf("no generator named")
	}
	if len(c.BaseHash) != 64 || strings.Trim(c.BaseHash, "0123456789abcdef") != "" {
		return fmt.Errorf("base_model_sha256 is not a SHA-256 in hex")
	}
	if _, err := rewards.ParseSpec(c.RewardSpec); err != nil {
		return err
	}
	if err := c.Modulator.Validate(); err != nil {
		return err
	}
	if err := CheckObjective(c.Reg, c.RegWeight, c.Beta); err != nil {
		return err
	}
	if c.LogDet != nil {
		if err := c.LogDet.Validate(); err != nil {
			return err
		}
	}
	if c.Modulator.Kind == KindDial {
		if err := c.CheckBeta(c.Beta); err != nil {
			return err
		}
	}
	if err := c.Train.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if r := c.Result; r != nil {
		switch {
		case r.Steps < 0 || r.Steps > c.Train.Steps || r.Skipped < 0 || r.Skipped > r.Steps:
			return fmt.Errorf("result: %d steps (%d skipped) for a run of %d", r.Steps, r.Skipped, c.Train.Steps)
		case !finite(r.Seconds) || r.Seconds < 0 || !finite(r.RewardFirst) || !finite(r.RewardLast):
			return fmt.Errorf("result holds non-finite or negative figures")
		}
	}
	return nil
}

// CheckObjective checks a regularizer name and its weight and tilt temperature: the weight in
// [0, hypernet.MaxRegWeight], beta in [hypernet.MinBeta, hypernet.MaxBeta] for the tempered
// (KL) regularizers (else 0 or in that range); all finite.
func CheckObjective(reg hypernet.Regularizer, weight, beta float64) error {
	if _, err := hypernet.ParseRegularizer(string(reg)); err != nil {
		return err
	}
	if err := hypernet.CheckRange("regularizer weight", weight, 0, hypernet.MaxRegWeight); err != nil {
		return err
	}
	if reg.Tempered() || beta != 0 {
		return hypernet.CheckRange("beta", beta, hypernet.MinBeta, hypernet.MaxBeta)
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// ParseConfig decodes and validates a hypernet.json: strictly (unknown fields are errors), with
// the weights hash it records (see ckpt.ParseConfig).
func ParseConfig(data []byte) (Config, string, error) {
	var c Config
	sha, err := ckpt.ParseConfig(data, &c)
	if err != nil {
		return Config{}, "", err
	}
	if err := c.Validate(); err != nil {
		return Config{}, "", err
	}
	return c, sha, nil
}

// Defines lists what defines the model and its objective (beside the training configuration,
// compared separately): resuming a run with any other value is refused, naming the entry.
func (c Config) Defines() map[string]string {
	mod, _ := json.Marshal(c.Modulator)
	logdet, _ := json.Marshal(c.LogDet)
	d := map[string]string{
		"generator":   c.Generator,
		"base_model":  c.BaseHash,
		"reward_spec": c.RewardSpec,
		"modulator":   string(mod),
		"regularizer": string(c.Reg),
		"reg_weight":  fmt.Sprint(c.RegWeight),
		"beta":        fmt.Sprint(c.Beta),
		"logdet":      string(logdet),
	}
	if c.TiltMatch != nil { // only when set: checkpoints written before it existed still resume
		tm, _ := json.Marshal(c.TiltMatch)
		d["tilt_match"] = string(tm)
	}
	return d
}
