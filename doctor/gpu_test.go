package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/compute/pjrt"
)

// TestCheckCUDA: doctor reports the plugin of a fake jax install with its NVIDIA folders, and without
// one the problem and the one-line fix.
func TestCheckCUDA(t *testing.T) {
	root := t.TempDir()
	sp := filepath.Join(root, "lib", "python3.12", "site-packages")
	for _, f := range []string{"jax_plugins/xla_cuda12/xla_cuda_plugin.so", "nvidia/cudnn/lib/libcudnn.so.9"} {
		path := filepath.Join(sp, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("ELF"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "nvidia0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(old string) { deviceGlob = old }(deviceGlob)
	deviceGlob = filepath.Join(root, "nvidia[0-9]*")
	env := func(k string) string {
		if k == "VIRTUAL_ENV" {
			return root
		}
		return ""
	}
	c := checkCUDA(pjrt.Finder{Getenv: env})
	if c.Plugin == nil || !strings.HasSuffix(c.Plugin.Path, "xla_cuda12/xla_cuda_plugin.so") || len(c.Plugin.LibDirs) != 1 || c.Problem != "" {
		t.Errorf("with a fake jax install: %+v", c)
	}
	deviceGlob = filepath.Join(root, "none[0-9]*")
	if c := checkCUDA(pjrt.Finder{Getenv: env}); c.Plugin == nil || !strings.Contains(c.Problem, "no NVIDIA device") || c.Fix == "" {
		t.Errorf("without a device: %+v", c)
	}
	c = checkCUDA(pjrt.Finder{})
	if c.Plugin != nil || c.Fix != pjrt.FixLine || !strings.Contains(c.Problem, "no PJRT CUDA plugin") {
		t.Errorf("with nothing installed: %+v", c)
	}
}
