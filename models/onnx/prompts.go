package onnx

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hypernoise/hypernoise/internal/safeio"
)

// ReservedPrompt is the word the command line uses for "every prompt"; no prompt may be named so.
const ReservedPrompt = "all"

// PromptKey is the form under which prompts are compared: lower case, blanks trimmed and runs of
// blanks made one space ("A  Cat " and "a cat" are the same prompt).
func PromptKey(p string) string { return strings.ToLower(strings.Join(strings.Fields(p), " ")) }

// checkPrompts refuses an empty prompt, two prompts with the same PromptKey (one would shadow the
// other) and the reserved word.
func checkPrompts(path string, prompts []string) error {
	if len(prompts) > MaxPrompts {
		return specErr(path, "prompts", "lists %d prompts; at most %d are supported", len(prompts), MaxPrompts)
	}
	seen := map[string]int{}
	for i, p := range prompts {
		field := fmt.Sprintf("prompts[%d]", i)
		k := PromptKey(p)
		switch {
		case k == "":
			return specErr(path, field, "empty prompt")
		case k == ReservedPrompt:
			return specErr(path, field, "%q is reserved (it means every prompt on the command line); rename the prompt", p)
		}
		if j, dup := seen[k]; dup {
			return specErr(path, field, "%s is the same prompt as prompts[%d] %s (prompts are matched ignoring case and spaces)",
				safeio.Shorten(p, 60), j, safeio.Shorten(prompts[j], 60))
		}
		seen[k] = i
	}
	return nil
}

// resolve locates a file named by the spec: relative to the spec's folder, or as it is if absolute.
func resolve(specDir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(specDir, p)
}

// checkPromptTables compares the spec's prompt count with the embedding tables that the generator's
// and rewards' prompt inputs index: prompt ids past a table's last row would silently reuse its last
// row (the backend clamps gathers), so more prompts than rows is a spec error.
func (m *Model) checkPromptTables() error {
	n := len(m.Spec.Prompts)
	check := func(field, file, input string, rows []int) error {
		for _, r := range rows {
			if n > r {
				return m.specErr("prompts", "the spec lists %d prompts, but %s's input %q indexes a table of %d rows (%s); list at most %d prompts",
					n, file, input, r, field, r)
			}
		}
		return nil
	}
	g := m.Spec.Generator
	if g.PromptInput != "" {
		if err := check("generator.prompt_input", g.ONNX, g.PromptInput, m.gen.IndexTables(g.PromptInput)); err != nil {
			return err
		}
	}
	for _, rn := range m.Spec.RewardNames() {
		rs := m.Spec.Rewards[rn]
		if rs.PromptInput != "" {
			if err := check("rewards."+rn+".prompt_input", rs.ONNX, rs.PromptInput, m.rewards[rn].IndexTables(rs.PromptInput)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ranges of the spec's numeric fields (docs/bring-your-model.md states them): within them, every
// quantity the toolkit derives (the pixel map 1/(hi-lo), a sample's size) stays finite and
// addressable.
const (
	MaxNoiseRank     = 8       // generator.noise_shape: at most 8 dimensions,
	MaxNoiseDim      = 1 << 20 // each in [1, 1048576],
	MaxNoiseElements = 1 << 26 // and at most 67,108,864 values per sample
	MaxRangeAbs      = 1e6     // generator.range: lo and hi in [-1e6, 1e6]
	MinRangeWidth    = 1e-6    // and hi - lo >= 1e-6
	MaxPrompts       = 1 << 16 // prompts: at most 65,536
)

// checkNoiseShape refuses a noise shape outside the documented ranges.
func checkNoiseShape(path string, shape []int) error {
	const f = "generator.noise_shape"
	if len(shape) > MaxNoiseRank {
		return specErr(path, f, "has %d dimensions; at most %d are supported", len(shape), MaxNoiseRank)
	}
	n := 1
	for _, d := range shape {
		if d < 1 || d > MaxNoiseDim {
			return specErr(path, f, "each dimension must be in [1, %d], got %v", MaxNoiseDim, shape)
		}
		n *= d
		if n > MaxNoiseElements {
			return specErr(path, f, "%v has more than %d values per sample (the most supported)", shape, MaxNoiseElements)
		}
	}
	return nil
}

// checkPixelRange refuses a pixel range that is not [lo, hi] with finite bounds in [-1e6, 1e6] and
// hi - lo >= 1e-6 (nil means the default [0, 1]).
func checkPixelRange(path string, r []float64) error {
	if r == nil {
		return nil
	}
	if len(r) != 2 || !(r[0] >= -MaxRangeAbs && r[1] <= MaxRangeAbs && r[1]-r[0] >= MinRangeWidth) {
		return specErr(path, "generator.range", "must be [lo, hi] with -%g <= lo, hi <= %g and hi - lo >= %g, got %v",
			MaxRangeAbs, MaxRangeAbs, MinRangeWidth, r)
	}
	return nil
}
