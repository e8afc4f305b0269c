package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/cli"
)

// TestZooAndCompositionalBadInput: bad input is one line with exit code 2, before any work starts.
func TestZooAndCompositionalBadInput(t *testing.T) {
	checkUsageErrors(t, nil, []usageCase{
		{[]string{"zoo", "train", "teacher", "--arch", "v3"}, "--arch must be v1 or v2"},
		{[]string{"zoo", "train", "wings"}, "unknown part"},
		{[]string{"zoo", "info", "--weights", "/nonexistent/folder"}, "--weights"},
		{[]string{"compositional", "--weights", "/nonexistent/folder"}, "--weights"},
		{[]string{"compositional", "--nonsense"}, "flag provided but not defined"},
		{[]string{"compositional", "extra"}, `unexpected argument "extra"`},
		{[]string{"compositional", "--seed", "x"}, `invalid value "x" for flag -seed`},
	})
}

// TestZooInfoJSONKeepsFDs: zoo info --json gives the student's and the teacher's held-out FD.
func TestZooInfoJSONKeepsFDs(t *testing.T) {
	var out, errw bytes.Buffer
	if code := cli.Main("hypernoise", about, commands, []string{"zoo", "info", "--json"}, &out, &errw); code != 0 {
		t.Fatalf("exit %d: %s", code, errw.String())
	}
	s := out.String()
	for _, key := range []string{`"student"`, `"teacher"`, `"fd_heldout"`, `"teacher_fd_heldout"`} {
		if !strings.Contains(s, key) {
			t.Errorf("zoo info --json lacks %s", key)
		}
	}
}
