package pjrt

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeSite makes a site-packages under root with jax CUDA plugins of the given majors and NVIDIA wheels.
func fakeSite(t *testing.T, root string, majors ...string) string {
	t.Helper()
	sp := filepath.Join(root, "lib", "python3.12", "site-packages")
	for _, m := range majors {
		write(t, filepath.Join(sp, "jax_plugins", "xla_cuda"+m, "xla_cuda_plugin.so"), "ELF")
	}
	write(t, filepath.Join(sp, "nvidia", "cublas", "lib", "libcublas.so.12"), "ELF")
	write(t, filepath.Join(sp, "nvidia", "cuda_runtime", "lib", "libcudart.so.12"), "ELF")
	write(t, filepath.Join(sp, "nvidia", "cuda_nvcc", "bin", "ptxas"), "ELF")
	return sp
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFindPrefersNewestJaxPluginAndItsNvidiaFolders(t *testing.T) {
	root := t.TempDir()
	venv := filepath.Join(root, "venv")
	sp := fakeSite(t, venv, "12", "13")
	f := Finder{Getenv: envOf(map[string]string{"VIRTUAL_ENV": venv})}
	p, err := f.Find()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(sp, "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so"); p.Path != want {
		t.Errorf("plugin %s, want %s", p.Path, want)
	}
	if p.Source != "jax in "+sp {
		t.Errorf("source %q", p.Source)
	}
	wantLibs := []string{filepath.Join(sp, "nvidia", "cublas", "lib"), filepath.Join(sp, "nvidia", "cuda_runtime", "lib")}
	if !reflect.DeepEqual(p.LibDirs, wantLibs) {
		t.Errorf("lib dirs %v, want %v", p.LibDirs, wantLibs)
	}
	if want := []string{filepath.Join(sp, "nvidia", "cuda_nvcc", "bin")}; !reflect.DeepEqual(p.BinDirs, want) {
		t.Errorf("bin dirs %v, want %v", p.BinDirs, want)
	}
}

// TestFindSearchOrder: the virtualenv before sys.path before ~/.local before the system folders, for
// plugins of the same CUDA major; a newer major wins wherever it is.
func TestFindSearchOrder(t *testing.T) {
	root := t.TempDir()
	venv, syspath, home, system := filepath.Join(root, "venv"), filepath.Join(root, "sys"), filepath.Join(root, "home"), filepath.Join(root, "usr")
	spVenv := fakeSite(t, venv, "12")
	spSys := fakeSite(t, syspath, "12")
	spHome := filepath.Join(home, ".local", "lib", "python3.11", "site-packages")
	write(t, filepath.Join(spHome, "jax_plugins", "xla_cuda12", "xla_cuda_plugin.so"), "ELF")
	spSystem := fakeSite(t, system, "12")
	f := Finder{
		Getenv:      envOf(map[string]string{"VIRTUAL_ENV": venv}),
		Home:        home,
		SysPath:     func() []string { return []string{"/nonexistent/lib/python3.zip", spSys} },
		SystemGlobs: []string{filepath.Join(system, "lib", "python3*", "site-packages")},
	}
	for _, c := range []struct {
		drop func(*Finder)
		want string
	}{
		{func(*Finder) {}, spVenv},
		{func(f *Finder) { f.Getenv = envOf(nil) }, spSys},
		{func(f *Finder) { f.SysPath = nil }, spHome},
		{func(f *Finder) { f.Home = "" }, spSystem},
	} {
		c.drop(&f)
		p, err := f.Find()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.Path, c.want+string(filepath.Separator)) {
			t.Errorf("found %s, want the one in %s", p.Path, c.want)
		}
	}
	write(t, filepath.Join(spSystem, "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so"), "ELF")
	f = Finder{Getenv: envOf(map[string]string{"VIRTUAL_ENV": venv}), SystemGlobs: []string{filepath.Join(system, "lib", "python3*", "site-packages")}}
	if p, err := f.Find(); err != nil || !strings.Contains(p.Path, "xla_cuda13") {
		t.Errorf("newer major not preferred: %+v, %v", p, err)
	}
}

func TestFindFromEnvironmentVariable(t *testing.T) {
	root := t.TempDir()
	sp := fakeSite(t, root, "12")
	jaxPlugin := filepath.Join(sp, "jax_plugins", "xla_cuda12", "xla_cuda_plugin.so")
	goxla := filepath.Join(root, "go-xla")
	goxlaPlugin := filepath.Join(goxla, "pjrt_c_api_cuda_plugin.so")
	write(t, goxlaPlugin, "ELF")
	write(t, filepath.Join(goxla, "nvidia", "lib", "libcudnn.so.9"), "ELF")
	for _, c := range []struct{ value, want string }{
		{jaxPlugin, jaxPlugin},
		{sp, jaxPlugin},
		{goxla, goxlaPlugin},
	} {
		f := Finder{Getenv: envOf(map[string]string{EnvPlugin: c.value, "VIRTUAL_ENV": filepath.Join(root, "other")})}
		p, err := f.Find()
		if err != nil {
			t.Fatalf("%s: %v", c.value, err)
		}
		if p.Path != c.want || p.Source != "$"+EnvPlugin {
			t.Errorf("%s: found %+v, want %s", c.value, p, c.want)
		}
		if len(p.LibDirs) == 0 {
			t.Errorf("%s: no NVIDIA library folders found beside %s", c.value, p.Path)
		}
	}
	for _, bad := range []string{filepath.Join(root, "missing.so"), filepath.Join(root, "lib")} {
		_, err := Finder{Getenv: envOf(map[string]string{EnvPlugin: bad})}.Find()
		if err == nil || !strings.Contains(err.Error(), EnvPlugin) || !strings.Contains(err.Error(), FixLine) {
			t.Errorf("%s: want an error naming $%s and the fix, got %v", bad, EnvPlugin, err)
		}
	}
}

func TestFindNothingGivesTheFix(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "lib", "python3.12", "site-packages", "numpy", "__init__.py"), "")
	_, err := Finder{Getenv: envOf(map[string]string{"VIRTUAL_ENV": root})}.Find()
	if err == nil || !strings.HasSuffix(err.Error(), FixLine) || strings.Contains(err.Error(), "\n") {
		t.Errorf("want one line ending with the fix, got %v", err)
	}
}

// TestNeutralizeXLAFlags: the hard-coded data folder go-xla writes is removed, a real one and other
// flags are kept, and go-xla's check is off.
func TestNeutralizeXLAFlags(t *testing.T) {
	real := t.TempDir()
	env := map[string]string{
		"XLA_FLAGS":    "--xla_dump_to=/tmp/d --xla_gpu_cuda_data_dir=/home/janpf/.local/lib/go-xla/nvidia",
		goXLAChecksEnv: "1",
	}
	set := func(k, v string) error { env[k] = v; return nil }
	removed := NeutralizeXLAFlags(envOf(env), set)
	if env["XLA_FLAGS"] != "--xla_dump_to=/tmp/d" || len(removed) != 1 || env[goXLAChecksEnv] != "0" {
		t.Errorf("after neutralizing: %v, removed %v", env, removed)
	}
	env["XLA_FLAGS"] = "--xla_gpu_cuda_data_dir=" + real
	if removed := NeutralizeXLAFlags(envOf(env), set); removed != nil || env["XLA_FLAGS"] != "--xla_gpu_cuda_data_dir="+real {
		t.Errorf("an existing data folder was removed: %v, %v", env, removed)
	}
}
