package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
)

// runKept says, after an interrupt, what a training-run folder holds and how to continue: the
// finished hypernetwork, the checkpoint of step K of N (resumable with --resume), or nothing yet.
// again is the command line to repeat (with --resume added where it continues a run).
func runKept(dir string, total int, again []string) string {
	if _, err := os.Stat(filepath.Join(dir, infer.WeightsFile)); err == nil {
		return fmt.Sprintf("the trained hypernetwork in %s is kept", dir)
	}
	var st struct {
		Step int `json:"step"`
	}
	if err := ckpt.ReadJSON(filepath.Join(dir, hypernet.CheckpointJSON), &st); err == nil && st.Step > 0 {
		return fmt.Sprintf("the checkpoint of step %d of %d in %s is kept; continue with: %s", st.Step, total, dir, commandLine(withResume(again)))
	}
	return fmt.Sprintf("no checkpoint was written yet in %s; start again with: %s", dir, commandLine(again))
}

// withResume returns args with --resume (and without --force).
func withResume(args []string) []string {
	out := []string{}
	for _, a := range args {
		switch strings.TrimLeft(a, "-") {
		case "resume", "force", "resume=true", "force=true":
			continue
		}
		out = append(out, a)
	}
	return append(out, "--resume")
}

// commandLine quotes args for a shell, after "hypernoise".
func commandLine(args []string) string {
	parts := []string{"hypernoise"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$\\*?[]{}()<>|&;`!#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	s := strings.Join(parts, " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
