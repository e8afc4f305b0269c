package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
)

// TestBenchBadInput: bad flags are one line with exit code 2, before any benchmark runs.
func TestBenchBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--steps", "0"}, "--steps must be in [1, 1000]"},
		{[]string{"--torch-dir", "/nonexistent/dir"}, "is not a folder"},
		{[]string{"--torch-dir", ".", "--no-torch"}, "exclude each other"},
		{[]string{"--backend", "nosuch"}, "unknown backend"},
		{[]string{"--nonsense"}, "flag provided but not defined"},
	} {
		var out, errw bytes.Buffer
		code := cli.Main("hypernoise", about, commands, append([]string{"bench"}, c.args...), &out, &errw)
		msg := errw.String()
		if code == 0 || !strings.Contains(msg, c.want) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Errorf("bench %v: exit %d, stderr %q; want an error line mentioning %q", c.args, code, msg, c.want)
		}
	}
}
