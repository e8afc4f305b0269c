package hypernet

import (
	"math"
	"testing"

	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestLRFactor: the cosine schedule is the warm-up's ramp, then 1 at the warm-up's end, 1/2
// half-way to the last step and near 0 at it; the constant schedule stays at 1 after warm-up.
func TestLRFactor(t *testing.T) {
	const warm, total = 10, 110
	for _, c := range []struct {
		schedule string
		step     int
		want     float64
	}{
		{ScheduleCosine, 0, 0.1},
		{ScheduleCosine, warm, 1},
		{ScheduleCosine, warm + 50, 0.5},
		{ScheduleCosine, total - 1, 0.5 * (1 + math.Cos(math.Pi*99/100))},
		{ScheduleConstant, total - 1, 1},
		{"", warm + 50, 1},
	} {
		if got := LRFactor(c.schedule, c.step, warm, total); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("LRFactor(%q, %d) = %g, want %g", c.schedule, c.step, got, c.want)
		}
	}
}

// TestTimeBudget: a budget far below one step's time stops the run after the probe steps, one far
// above leaves Steps as it is; the result's configuration records the steps done.
func TestTimeBudget(t *testing.T) {
	b := testutil.Backend(t)
	for _, c := range []struct {
		budget float64
		want   int
	}{{1e-9, budgetProbeSteps}, {1e5, 40}} {
		cfg := DefaultAdamW()
		cfg.Steps, cfg.BatchSize, cfg.Schedule, cfg.BudgetSeconds = 40, 4, ScheduleCosine, c.budget
		gen, p := hyperProblem(t)
		ctx := testgen.Seeded(1)
		initGen(t, b, ctx, gen)
		res, err := Train(b, ctx, p, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Steps != c.want || res.Config.Steps != c.want || len(res.Loss) != c.want {
			t.Errorf("budget %gs: %d steps done, config %d, %d losses; want %d", c.budget, res.Steps, res.Config.Steps, len(res.Loss), c.want)
		}
	}
	cfg := DefaultAdamW()
	cfg.BudgetSeconds, cfg.Resume, cfg.CheckpointDir = 10, true, t.TempDir()
	if err := cfg.Validate(); err == nil {
		t.Error("a time budget on a resumed run was accepted")
	}
}
