// Package pjrt finds a PJRT CUDA plugin on this machine and prepares the process to load it: the
// plugin named by $HYPERNOISE_PJRT_PLUGIN, else the CUDA plugin of an installed jax
// (site-packages/jax_plugins/xla_cuda*/xla_cuda_plugin.so), with the NVIDIA libraries pip installs
// beside it (site-packages/nvidia/*/lib) loaded by the program itself, so that nothing has to be
// set by hand.
package pjrt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EnvPlugin names a PJRT plugin file (or a folder holding one, or a site-packages with jax's).
const EnvPlugin = "HYPERNOISE_PJRT_PLUGIN"

// FixLine is the one line that tells a user how to get a CUDA plugin.
const FixLine = `pip install -U "jax[cuda12]" (its CUDA plugin and NVIDIA libraries are found by themselves), ` +
	`or set ` + EnvPlugin + `=/path/to/xla_cuda_plugin.so`

// Plugin is a PJRT plugin found on this machine.
type Plugin struct {
	Path    string   `json:"path"`            // absolute path of the plugin's shared library
	Source  string   `json:"source"`          // where it was found: "$HYPERNOISE_PJRT_PLUGIN" or "jax in <site-packages>"
	LibDirs []string `json:"nvidia_lib_dirs"` // NVIDIA library folders loaded before the plugin
	BinDirs []string `json:"nvidia_bin_dirs"` // NVIDIA tool folders (ptxas) put on PATH
}

// Finder says where to look. The zero value looks nowhere; DefaultFinder looks where Python installs put jax.
type Finder struct {
	Getenv func(string) string // environment (os.Getenv)
	Home   string              // the user's home folder (~/.local/lib/python3.*/site-packages)
	// SysPath lists the folders of the python3 on PATH (its sys.path); nil to skip.
	SysPath func() []string
	// SystemGlobs are the system-wide site-packages patterns searched last.
	SystemGlobs []string
}

// DefaultFinder looks in $HYPERNOISE_PJRT_PLUGIN, then $VIRTUAL_ENV, $CONDA_PREFIX, the sys.path of
// the python3 on PATH, ~/.local and the system's dist-packages and site-packages.
func DefaultFinder() Finder {
	home, _ := os.UserHomeDir()
	return Finder{
		Getenv:  os.Getenv,
		Home:    home,
		SysPath: pythonSysPath,
		SystemGlobs: []string{
			"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
			"/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages", "/usr/lib/python3*/dist-packages",
			"/opt/conda/lib/python3*/site-packages",
		},
	}
}

// Find returns the CUDA plugin to load, or an error that ends with FixLine. A $HYPERNOISE_PJRT_PLUGIN
// that names nothing usable is an error (it is never passed over silently).
func (f Finder) Find() (*Plugin, error) {
	if v := strings.TrimSpace(f.getenv(EnvPlugin)); v != "" {
		return fromEnv(v)
	}
	sites := f.sitePackages()
	var best *Plugin
	bestVersion := -1
	for _, sp := range sites {
		path, version := jaxCUDAPlugin(sp)
		if path != "" && version > bestVersion {
			best, bestVersion = &Plugin{Path: path, Source: "jax in " + sp}, version
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no PJRT CUDA plugin found (looked for jax_plugins/xla_cuda*/xla_cuda_plugin.so in %d "+
			"python folders); to fix: %s", len(sites), FixLine)
	}
	best.LibDirs, best.BinDirs = nvidiaDirs(best.Path)
	return best, nil
}

func (f Finder) getenv(k string) string {
	if f.Getenv == nil {
		return ""
	}
	return f.Getenv(k)
}

// fromEnv resolves $HYPERNOISE_PJRT_PLUGIN: a plugin file, a folder with one pjrt_c_api_*cuda*_plugin.so
// or xla_cuda_plugin.so, or a site-packages holding jax's plugin.
func fromEnv(v string) (*Plugin, error) {
	abs, err := filepath.Abs(v)
	if err != nil {
		return nil, fmt.Errorf("$%s=%q: %v; to fix: %s", EnvPlugin, v, err, FixLine)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("$%s=%q does not exist; to fix: %s", EnvPlugin, v, FixLine)
	}
	path := abs
	if st.IsDir() {
		path, _ = jaxCUDAPlugin(abs)
		if path == "" {
			path = firstFile(abs, "xla_cuda_plugin.so", "pjrt_c_api_cuda_plugin.so", "pjrt_c_api_*cuda*_plugin.so")
		}
		if path == "" {
			return nil, fmt.Errorf("$%s=%q is a folder without a CUDA plugin (xla_cuda_plugin.so, "+
				"pjrt_c_api_cuda_plugin.so or jax_plugins/xla_cuda*/); to fix: %s", EnvPlugin, v, FixLine)
		}
	} else if st.Size() == 0 {
		return nil, fmt.Errorf("$%s=%q is an empty file; to fix: %s", EnvPlugin, v, FixLine)
	}
	p := &Plugin{Path: path, Source: "$" + EnvPlugin}
	p.LibDirs, p.BinDirs = nvidiaDirs(path)
	return p, nil
}

// sitePackages lists the existing python package folders to search, in order of preference, once each.
func (f Finder) sitePackages() []string {
	var globs []string
	for _, k := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if v := f.getenv(k); v != "" {
			globs = append(globs, filepath.Join(v, "lib", "python3*", "site-packages"))
		}
	}
	var out []string
	seen := map[string]bool{}
	add := func(dir string) {
		dir = filepath.Clean(dir)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() || seen[dir] {
			return
		}
		seen[dir] = true
		out = append(out, dir)
	}
	for _, g := range globs {
		for _, m := range sortedGlob(g) {
			add(m)
		}
	}
	if f.SysPath != nil {
		for _, d := range f.SysPath() {
			if strings.HasSuffix(d, "-packages") {
				add(d)
			}
		}
	}
	if f.Home != "" {
		for _, m := range sortedGlob(filepath.Join(f.Home, ".local", "lib", "python3*", "site-packages")) {
			add(m)
		}
	}
	for _, g := range f.SystemGlobs {
		for _, m := range sortedGlob(g) {
			add(m)
		}
	}
	return out
}

// jaxCUDAPlugin returns jax's newest CUDA plugin under site-packages sp (xla_cuda13 before
// xla_cuda12) and its CUDA major version, or "" and -1.
func jaxCUDAPlugin(sp string) (string, int) {
	best, bestV := "", -1
	for _, dir := range sortedGlob(filepath.Join(sp, "jax_plugins", "xla_cuda*")) {
		lib := filepath.Join(dir, "xla_cuda_plugin.so")
		if st, err := os.Stat(lib); err != nil || st.IsDir() || st.Size() == 0 {
			continue
		}
		v, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), "xla_cuda"))
		if err != nil {
			v = 0
		}
		if v > bestV {
			best, bestV = lib, v
		}
	}
	return best, bestV
}

// nvidiaDirs returns the library and tool folders of the NVIDIA wheels beside plugin: an nvidia/ folder
// one, two or three levels up (jax: site-packages/nvidia; go-xla: <prefix>/nvidia), each package's lib/
// (and nvidia/lib itself), and the bin/ folders holding ptxas.
func nvidiaDirs(plugin string) (libs, bins []string) {
	dir := filepath.Dir(plugin)
	for range 3 {
		nv := filepath.Join(dir, "nvidia")
		if st, err := os.Stat(nv); err == nil && st.IsDir() {
			for _, pat := range []string{"lib", "lib64", filepath.Join("*", "lib"), filepath.Join("*", "lib64")} {
				libs = append(libs, sortedGlob(filepath.Join(nv, pat))...)
			}
			for _, pat := range []string{"bin", filepath.Join("*", "bin")} {
				bins = append(bins, sortedGlob(filepath.Join(nv, pat))...)
			}
			return dirsOnly(libs), dirsOnly(bins)
		}
		dir = filepath.Dir(dir)
	}
	return nil, nil
}

func dirsOnly(paths []string) []string {
	var out []string
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

func sortedGlob(pattern string) []string {
	m, _ := filepath.Glob(pattern)
	sort.Strings(m)
	return m
}

func firstFile(dir string, patterns ...string) string {
	for _, p := range patterns {
		for _, m := range sortedGlob(filepath.Join(dir, p)) {
			if st, err := os.Stat(m); err == nil && !st.IsDir() && st.Size() > 0 {
				return m
			}
		}
	}
	return ""
}

// pythonSysPath asks the python3 on PATH for its sys.path (nil when there is none, or after 5 s).
func pythonSysPath() []string {
	py, err := exec.LookPath("python3")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", "import sys; print(chr(10).join(sys.path))").Output()
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}
