package main

import (
	"testing"
)

// TestToyBadInput: every bad input is one line naming what is allowed, with exit code 2, before
// any work starts.
func TestToyBadInput(t *testing.T) {
	checkUsageErrors(t, []string{"toy"}, []usageCase{
		{[]string{"--beta", "0"}, "--beta must be in [0.001, 1000], got 0"},
		{[]string{"--beta", "-2"}, "--beta must be in [0.001, 1000], got -2"},
		{[]string{"--reward", "left"}, "available rewards: bump, right, up"},
		{[]string{"--reward", "right=abc"}, "not a number"},
		{[]string{"--methods", "base,magic"}, "allowed: base, best-of-n, reno, finetune, hypernoise, hypernoise_mlp, hypernoise_exact_kl, hypernoise_logdet, hypernoise_dial"},
		{[]string{"--probes", "0"}, "--probes must be in [1, 64], got 0"},
		{[]string{"--terms", "0"}, "--terms must be in [1, 32], got 0"},
		{[]string{"--rank", "0"}, "--rank must be in [1, 64], got 0"},
		{[]string{"--steps", "0"}, "steps must be positive"},
		{[]string{"--batch", "-1"}, "--batch must be in [1, 4096], got -1"},
		{[]string{"--best-of", "0"}, "--best-of must be in [1, 10000], got 0"},
		{[]string{"--samples", "0"}, "samples must be positive"},
		{[]string{"--nonsense"}, "flag provided but not defined"},
	})
}
