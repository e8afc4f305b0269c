package compute

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"github.com/hypernoise/hypernoise/compute/mixed"
)

func TestDTypeOption(t *testing.T) {
	t.Setenv(EnvBackend, "")
	t.Setenv(EnvGoMLXBackend, "")
	for _, c := range []struct{ name, dtype, want string }{
		{"", "bf16", "go:dtype=bf16"},
		{"go:parallelism=1", "bf16", "go:parallelism=1,dtype=bf16"},
		{"cuda:dtype=f32", "bf16", "cuda:dtype=bf16"},
		{"xla:cuda", "", "xla:cuda"},
	} {
		if got := WithDType(c.name, c.dtype); got != c.want {
			t.Errorf("WithDType(%q, %q) = %q, want %q", c.name, c.dtype, got, c.want)
		}
	}
	b, err := NewBackend("go:dtype=bf16")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	if inner, dt := mixed.Unwrap(b); dt != dtypes.BFloat16 || inner.String() != PatchedName {
		t.Errorf("go:dtype=bf16 gave %s (%s) around %s", b.Name(), dt, inner.String())
	}
	if _, err := NewBackend("go:dtype=fp8"); err == nil || !strings.Contains(err.Error(), "fp8") {
		t.Errorf("unknown dtype: %v", err)
	}
}
