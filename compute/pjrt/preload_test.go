//go:build linux

package pjrt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebitengine/purego"
)

// cc builds a shared library named soname in dir from C source, linked against the given library
// files, which it then needs by their soname only (no run path), as the plugin needs the NVIDIA wheels'.
func cc(t *testing.T, dir, soname, src string, needs ...string) string {
	t.Helper()
	c := filepath.Join(t.TempDir(), "x.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, soname)
	args := []string{"-shared", "-fPIC", "-o", out, "-Wl,-soname," + soname, c}
	args = append(args, needs...)
	if msg, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, msg)
	}
	return out
}

// TestPreloadPutsLibrariesOnTheLoadersPath: a "plugin" that needs libraries of two NVIDIA-like folders
// by name (one of which needs the other) does not load until Preload has loaded those folders, in
// whatever order their dependencies ask.
func TestPreloadPutsLibrariesOnTheLoadersPath(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler to build the test libraries")
	}
	root := t.TempDir()
	runtimeDir := filepath.Join(root, "nvidia", "cuda_runtime", "lib")
	blasDir := filepath.Join(root, "nvidia", "cublas", "lib")
	pluginDir := filepath.Join(root, "jax_plugins", "xla_cuda12")
	for _, d := range []string{runtimeDir, blasDir, pluginDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Unique sonames per run, so no earlier test in this process has loaded them.
	tag := strings.ReplaceAll(filepath.Base(root), "-", "_")
	rt := "libhnrt" + tag + ".so.12"
	blas := "libhnblas" + tag + ".so.12"
	rtFile := cc(t, runtimeDir, rt, "int hn_rt(void){return 7;}")
	// The BLAS folder is listed first, so its first load attempt must fail.
	blasFile := cc(t, blasDir, blas, "int hn_rt(void); int hn_blas(void){return hn_rt()*6;}", rtFile)
	plugin := cc(t, pluginDir, "xla_cuda_plugin.so", "int hn_blas(void); int GetPjrtApi(void){return hn_blas();}", blasFile)
	if _, err := purego.Dlopen(plugin, purego.RTLD_LAZY|purego.RTLD_LOCAL); err == nil {
		t.Fatal("the plugin loaded before Preload: the test libraries are on the loader's path already")
	}
	loaded, failed := Preload([]string{blasDir, runtimeDir})
	if len(loaded) != 2 || failed != nil {
		t.Fatalf("loaded %v, failed %v", loaded, failed)
	}
	if filepath.Base(loaded[0]) != rt || filepath.Base(loaded[1]) != blas {
		t.Errorf("load order %v: the runtime must load before the library that needs it", loaded)
	}
	h, err := purego.Dlopen(plugin, purego.RTLD_LAZY|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatalf("plugin still does not load after Preload: %v", err)
	}
	var api func() int32
	purego.RegisterLibFunc(&api, h, "GetPjrtApi")
	if got := api(); got != 42 {
		t.Errorf("plugin computed %d through the preloaded libraries, want 42", got)
	}
}

func TestPreloadReportsWhatCannotLoad(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "libnotelf.so.1"), "not a shared library")
	write(t, filepath.Join(dir, "README"), "")
	loaded, failed := Preload([]string{dir, filepath.Join(dir, "missing")})
	if loaded != nil || len(failed) != 1 || filepath.Base(failed[0]) != "libnotelf.so.1" {
		t.Errorf("loaded %v, failed %v", loaded, failed)
	}
}
