package pjrt

import (
	"os"
	"path/filepath"
	"strings"
)

// Prepared is what Prepare did to the process.
type Prepared struct {
	Loaded   []string `json:"loaded"`            // NVIDIA libraries loaded, in load order
	Failed   []string `json:"failed,omitempty"`  // libraries that would not load (their dependencies missing)
	XLAFlags string   `json:"xla_flags"`         // $XLA_FLAGS after neutralizing
	Removed  []string `json:"removed,omitempty"` // XLA_FLAGS entries removed (data dirs that do not exist)
}

// Prepare readies this process to load p: it neutralizes go-xla's CUDA check (see NeutralizeXLAFlags),
// puts p's NVIDIA tool folders (ptxas) on PATH, and loads the NVIDIA libraries from p's folders into
// the process, so that when the plugin asks the loader for libcudart.so.12 (say) by name it gets the
// one already loaded: the dynamic loader reads LD_LIBRARY_PATH only when a process starts, so setting
// it here would not reach the plugin. LD_LIBRARY_PATH is left alone, so that child processes (the
// PyTorch scripts of bench, with their own NVIDIA libraries) are not handed jax's.
func Prepare(p *Plugin) Prepared {
	var out Prepared
	out.Removed = NeutralizeXLAFlags(os.Getenv, os.Setenv)
	out.XLAFlags = os.Getenv("XLA_FLAGS")
	prependPath("PATH", p.BinDirs)
	out.Loaded, out.Failed = Preload(p.LibDirs)
	return out
}

// goXLAChecksEnv turns off go-xla v0.1.4's CUDA check, which (when it finds an nvidia/ folder beside the
// plugin) writes a path from its author's machine into $XLA_FLAGS as --xla_gpu_cuda_data_dir.
const goXLAChecksEnv = "GOPJRT_CUDA_CHECKS"

// NeutralizeXLAFlags turns go-xla's CUDA check off for this process and removes from $XLA_FLAGS every
// --xla_gpu_cuda_data_dir whose folder does not exist (the check's hard-coded path, left by a parent
// process), returning the entries removed. XLA then uses its own search for the CUDA data folder.
func NeutralizeXLAFlags(getenv func(string) string, setenv func(string, string) error) []string {
	_ = setenv(goXLAChecksEnv, "0")
	flags := strings.Fields(getenv("XLA_FLAGS"))
	var kept, removed []string
	for _, f := range flags {
		if dir, ok := strings.CutPrefix(f, "--xla_gpu_cuda_data_dir="); ok {
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				removed = append(removed, f)
				continue
			}
		}
		kept = append(kept, f)
	}
	if len(removed) > 0 {
		_ = setenv("XLA_FLAGS", strings.Join(kept, " "))
	}
	return removed
}

// prependPath puts dirs before the current value of the ':'-separated variable key, once each.
func prependPath(key string, dirs []string) {
	if len(dirs) == 0 {
		return
	}
	parts := append([]string(nil), dirs...)
	seen := map[string]bool{}
	for _, d := range dirs {
		seen[d] = true
	}
	for _, d := range filepath.SplitList(os.Getenv(key)) {
		if d != "" && !seen[d] {
			parts = append(parts, d)
			seen[d] = true
		}
	}
	_ = os.Setenv(key, strings.Join(parts, string(os.PathListSeparator)))
}
