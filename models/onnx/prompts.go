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
