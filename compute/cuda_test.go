//go:build ((linux && amd64) || darwin) && cgo && !noxla

package compute

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hypernoise/hypernoise/compute/pjrt"
)

// TestCUDABackendUsesTheFoundPlugin: "cuda" and "xla:cuda" load the plugin $HYPERNOISE_PJRT_PLUGIN
// names (here a file that is not a shared library, so loading fails, with a one-line error naming
// it); with nothing to find, the error is the one-line fix.
func TestCUDABackendUsesTheFoundPlugin(t *testing.T) {
	for _, k := range []string{"PATH", "XLA_FLAGS", "GOPJRT_CUDA_CHECKS", "VIRTUAL_ENV", "CONDA_PREFIX"} {
		t.Setenv(k, os.Getenv(k))
	}
	fake := filepath.Join(t.TempDir(), "xla_cuda_plugin.so")
	if err := os.WriteFile(fake, []byte("not a plugin"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(pjrt.EnvPlugin, fake)
	t.Setenv("XLA_FLAGS", "--xla_gpu_cuda_data_dir=/home/janpf/.local/lib/go-xla/nvidia")
	for _, name := range []string{"cuda", "xla:cuda"} {
		_, err := NewBackend(name)
		if err == nil || !strings.Contains(err.Error(), fake) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: want a one-line error naming %s, got %v", name, fake, err)
		}
	}
	if v := os.Getenv("XLA_FLAGS"); strings.Contains(v, "janpf") {
		t.Errorf("go-xla's path left in XLA_FLAGS: %q", v)
	}
	t.Setenv(pjrt.EnvPlugin, filepath.Join(t.TempDir(), "missing.so"))
	if _, err := NewBackend("cuda"); err == nil || !strings.Contains(err.Error(), pjrt.FixLine) {
		t.Errorf("missing plugin: want the fix line, got %v", err)
	}
}

func TestCUDAClientOptions(t *testing.T) {
	rest, opts, err := clientOptions("tf32,preallocate=false,memory_fraction=0.5")
	if err != nil || rest != "tf32" || opts["preallocate"] != false || opts["memory_fraction"] != float32(0.5) {
		t.Errorf("got %q %v %v", rest, opts, err)
	}
	for _, bad := range []string{"preallocate=maybe", "memory_fraction=2"} {
		if _, _, err := clientOptions(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
