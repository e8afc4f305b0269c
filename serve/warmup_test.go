package serve

import (
	"slices"
	"testing"
)

// TestWarmup: the warm-up runs base and every loaded hypernetwork once at each power-of-two batch
// size up to the largest batch (the sizes the pipeline pads to), and builds their methods, so the
// first request finds them ready.
func TestWarmup(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBatch = 6
	s := newServer(t, cfg)
	if got := s.WarmupSizes(); !slices.Equal(got, []int{1, 2, 4, 6}) {
		t.Fatalf("warm-up sizes %v, want [1 2 4 6]", got)
	}
	before := s.p.Cached()
	runs, sec, err := s.Warmup()
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2*4 { // base and the one hypernetwork, four sizes each
		t.Errorf("warm-up made %d runs, want 8", runs)
	}
	if sec <= 0 {
		t.Errorf("warm-up time %g s", sec)
	}
	if after := s.p.Cached(); after < before+2 {
		t.Errorf("methods built: %d before the warm-up, %d after; want base and hypernoise added", before, after)
	}
}
