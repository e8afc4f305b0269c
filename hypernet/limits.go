package hypernet

import (
	"fmt"
	"math"
)

// Documented bounds of a training configuration. They keep every accepted value finite in float32
// inside the graph and every size within what a machine can hold; beyond them a value is almost
// certainly a mistake. Memory for the accepted sizes is checked separately (see package limits).
const (
	MaxSteps       = 200_000 // the per-step history lives in the checkpoint
	MaxBatchSize   = 4096
	MaxLR          = 10.0
	MaxClipNorm    = 1e6
	MaxWeightDecay = 1.0
	MaxNoiseSet    = 1 << 20
	MaxBeta        = 1e6 // tilt temperature
	MinBeta        = 1e-6
	MaxRegWeight   = 1e6
	// MaxBudgetSeconds bounds a training time budget (a week).
	MaxBudgetSeconds = 7 * 24 * 3600
)

// CheckRange reports an error unless v is a finite number in [lo, hi] (NaN and ±Inf are refused).
func CheckRange(name string, v, lo, hi float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%s must be a finite number, got %g", name, v)
	}
	if v < lo || v > hi {
		return fmt.Errorf("%s must be in [%g, %g], got %g", name, lo, hi, v)
	}
	return nil
}

// CheckIntRange reports an error unless lo <= v <= hi.
func CheckIntRange(name string, v, lo, hi int) error {
	if lo == 1 && (v < lo || v > hi) {
		return fmt.Errorf("%s must be positive and at most %d, got %d", name, hi, v)
	}
	if v < lo || v > hi {
		return fmt.Errorf("%s must be in [%d, %d], got %d", name, lo, hi, v)
	}
	return nil
}
