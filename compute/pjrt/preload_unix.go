//go:build linux || darwin || freebsd

package pjrt

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ebitengine/purego"
)

// Preload loads every shared library in dirs into the process (RTLD_LAZY|RTLD_LOCAL, never closed). A
// library that needs one not loaded yet fails; it is retried after the others, in passes, until a pass
// loads nothing more, so the order of dependencies need not be known. It returns the libraries loaded,
// in load order, and those that never loaded. Symbolic links to a file already listed count once.
func Preload(dirs []string) (loaded, failed []string) {
	pending := sharedLibraries(dirs)
	for len(pending) > 0 {
		var next []string
		for _, lib := range pending {
			if _, err := purego.Dlopen(lib, purego.RTLD_LAZY|purego.RTLD_LOCAL); err != nil {
				next = append(next, lib)
				continue
			}
			loaded = append(loaded, lib)
		}
		if len(next) == len(pending) {
			return loaded, next
		}
		pending = next
	}
	return loaded, nil
}

// sharedLibraries lists the files named lib*.so or lib*.so.N... in dirs, sorted, resolving symbolic
// links so that each file appears once.
func sharedLibraries(dirs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasPrefix(name, "lib") || !(strings.HasSuffix(name, ".so") || strings.Contains(name, ".so.")) {
				continue
			}
			path := filepath.Join(d, name)
			real, err := filepath.EvalSymlinks(path)
			if err != nil || seen[real] {
				continue
			}
			if st, err := os.Stat(real); err != nil || st.IsDir() {
				continue
			}
			seen[real] = true
			out = append(out, path)
		}
	}
	sort.Strings(out)
	return out
}
