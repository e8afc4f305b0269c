package family

import (
	"testing"

	"github.com/hypernoise/hypernoise/internal/membudget"
)

// TestChunkRows: the largest chunk whose estimate stays under a quarter of the budget, at most the
// default and at least 1; a fit without per-row figures keeps the default.
func TestChunkRows(t *testing.T) {
	const mib = int64(1) << 20
	// About the small T2I fixture: 424 MiB of process and weights, 170 MiB a row forward, 650 MiB
	// a row with gradients.
	small := &MemoryFit{SampleBase: 424 * mib, ForwardPerRow: 170 * mib, GradPerRow: 650 * mib}
	for _, c := range []struct {
		fit    *MemoryFit
		budget int64
		grad   bool
		limit  int
		want   int
	}{
		{small, 12800 * mib, false, 256, 16}, // a 16 GiB machine: (3200-424)/170
		{small, 12800 * mib, true, 64, 4},    // (3200-424)/650
		{small, 12800 * mib, false, 8, 8},    // never more than the default
		{small, 1000 * mib, false, 256, 1},   // not even one row fits: still 1
		{small, 1 << 50, false, 160, 160},
		{&MemoryFit{SampleBase: 500 * mib, PerImage: 20 << 10}, 1000 * mib, true, 64, 64}, // no per-row figures
		{nil, 1 << 30, false, 256, 256},
		{small, 12800 * mib, false, 0, 1},
	} {
		if got := c.fit.ChunkRows(c.budget, c.grad, c.limit); got != c.want {
			t.Errorf("%+v.ChunkRows(%d MiB, grad %v, limit %d) = %d, want %d", c.fit, c.budget/mib, c.grad, c.limit, got, c.want)
		}
	}
	t.Setenv(membudget.Env, "12800MiB")
	if got := (&Model{Memory: small}).ChunkRows(false, 256); got != 16 {
		t.Errorf("Model.ChunkRows at $%s=12800MiB: %d, want 16", membudget.Env, got)
	}
}
