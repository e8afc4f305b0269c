package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/hypernoise/hypernoise/doctor"
)

// printCUDA prints what `--backend cuda` would load, or the problem and the one line that fixes it.
func printCUDA(w io.Writer, c doctor.CUDA) {
	if c.Plugin != nil {
		fmt.Fprintf(w, "cuda plugin:    %s (%s), %d NVIDIA library folder(s) beside it\n", c.Plugin.Path, c.Plugin.Source, len(c.Plugin.LibDirs))
	}
	if len(c.Devices) > 0 {
		fmt.Fprintf(w, "nvidia devices: %s\n", strings.Join(c.Devices, " "))
	}
	if c.Problem != "" {
		if c.Plugin == nil {
			fmt.Fprintf(w, "cuda plugin:    none found; to fix: %s\n", c.Fix)
		} else {
			fmt.Fprintf(w, "cuda:           %s; to fix: %s\n", c.Problem, c.Fix)
		}
	}
}
