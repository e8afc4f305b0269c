package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
)

// TestEveryNumericFlagHasARange: every numeric flag of every command (and subcommand) has a
// documented range, shown in its --help.
func TestEveryNumericFlagHasARange(t *testing.T) {
	cli.RequireRanges = true
	defer func() { cli.RequireRanges = false }()
	lines := [][]string{{"zoo", "train", "--help"}, {"zoo", "info", "--help"}}
	for _, c := range commands {
		lines = append(lines, []string{c.Name, "--help"})
	}
	for _, args := range lines {
		var stdout, stderr bytes.Buffer
		code := cli.Main("hypernoise", about, commands, args, &stdout, &stderr)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
	}
}
