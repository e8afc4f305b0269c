package pipeline

import (
	"strings"
	"testing"
)

// TestTiltWarning: the tilt columns warn when a resampled pool's ESS is below MinTiltESS and when
// the tilt's gain over the base is within MinGainSEs standard errors of zero (or zero), and not
// otherwise.
func TestTiltWarning(t *testing.T) {
	for _, c := range []struct {
		name string
		cols TiltColumns
		want []string // substrings; none: no warning
	}{
		{"clear", TiltColumns{Sampler: TiltSIR, ESSMin: 50, ReferenceMean: 1, BaseMean: 0.5, GainSE: 0.1}, nil},
		{"low ESS", TiltColumns{Sampler: TiltSIR, ESSMin: 2, ReferenceMean: 1, BaseMean: 0.5, GainSE: 0.1}, []string{"effective sample size of 2.0"}},
		{"SMC, low ESS not applicable", TiltColumns{Sampler: TiltSMC, ESSMin: 2, ReferenceMean: 1, BaseMean: 0.5, GainSE: 0.1}, nil},
		{"gain in the noise", TiltColumns{Sampler: TiltSMC, ESSMin: 8, ReferenceMean: 0.52, BaseMean: 0.5, GainSE: 0.01}, []string{"gain over the base, 0.02, is within 3 standard errors (0.01 each)"}},
		{"no gain", TiltColumns{Sampler: TiltSIR, ESSMin: 50, ReferenceMean: 0.5, BaseMean: 0.5}, []string{"gain over the base, 0, is within 3"}},
		{"both", TiltColumns{Sampler: TiltSIR, ESSMin: 1, ReferenceMean: 0.5, BaseMean: 0.5, GainSE: 0.2}, []string{"effective sample size of 1.0", "; the tilt's reward gain"}},
	} {
		got := c.cols.warning()
		if len(c.want) == 0 && got != "" {
			t.Errorf("%s: warning %q, want none", c.name, got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: warning %q, want it to contain %q", c.name, got, w)
			}
		}
	}
}
