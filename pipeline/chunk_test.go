package pipeline

import (
	"fmt"
	"math"
	"sync"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/membudget"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/rewards"
)

// TestChunkedEvaluationSameFigures: with a memory fit whose per-row figures leave 3 rows to a
// forward chunk and 1 to a gradient chunk (as an imported 128x128 model's do at a larger scale),
// the reward spread of `--reward-norm std`, the methods, the scoring and the tilt pool run no
// compiled call of more rows than that, and training and evaluation give the same figures, to
// float32 rounding (see near), as with the default chunks (64 rows a method call, 128 the spread, 256 the scoring and
// the pool).
func TestChunkedEvaluationSameFigures(t *testing.T) {
	backend, m := setup(t)
	var mu sync.Mutex
	maxRows := 0
	// rows is the mean pixel value, recording the rows of every graph it is built in.
	rows := func() (hypernoise.Reward, error) {
		return rewards.Func{RewardName: "rows", Fn: func(ctx *context.Context, x, prompts *Node) *Node {
			mu.Lock()
			maxRows = max(maxRows, x.Shape().Dim(0))
			mu.Unlock()
			return ReduceMean(Reshape(x, x.Shape().Dim(0), -1), -1)
		}}, nil
	}
	model := func(chunked bool) *family.Model {
		fm := fashion.ModelOf(m)
		if err := fm.Rewards.Register("rows", "mean pixel value", rows); err != nil {
			t.Fatal(err)
		}
		if chunked {
			fit := *fm.Memory
			fit.ForwardPerRow, fit.GradPerRow = 1<<20, 3<<20
			fm.Memory = &fit
		}
		return fm
	}
	// A budget whose quarter is the sampling base + 3.5 MiB: 3 forward rows, 1 gradient row.
	t.Setenv(membudget.Env, fmt.Sprint(4*(model(false).Memory.SampleBase+7<<19)))
	if fm := model(true); fm.ChunkRows(false, 64) != 3 || fm.ChunkRows(true, 64) != 1 {
		t.Fatalf("chunks %d, %d; want 3 forward rows and 1 gradient row", fm.ChunkRows(false, 64), fm.ChunkRows(true, 64))
	}

	type run struct {
		trainRows, evalRows int
		scale               map[string]float64
		rep                 *EvalReport
	}
	do := func(chunked bool) run {
		fm := model(chunked)
		dir := t.TempDir()
		o := tinyOptions(dir, 3)
		o.Train.BatchSize = 2
		o.RewardSpec, o.RewardNorm = "align=1,rows=1", hypernet.NormStd
		maxRows = 0
		hn, _, err := Train(backend, fm, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		var r run
		r.trainRows, r.scale = maxRows, hn.Config.RewardScale
		p, err := openPipeline(backend, fm, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		eo := EvalOptions{SeedsPerPrompt: 2, Seed: 5, RenoSteps: 2, WarmRenoSteps: 1, SmallN: 2, Batch: 20, TiltPool: 16,
			Methods: []string{"base", "best-of-n", "reno", "hypernoise", "hypernoise-reno"}}
		maxRows = 0
		if r.rep, err = Evaluate(p, p.Hypernets()[0], dir, eo, nil); err != nil {
			t.Fatal(err)
		}
		r.evalRows = maxRows
		return r
	}
	def, chunked := do(false), do(true)
	if def.trainRows <= 3 || def.evalRows <= 3 {
		t.Fatalf("default chunks: calls of at most %d rows (training) and %d (evaluation); the test needs more than 3", def.trainRows, def.evalRows)
	}
	if chunked.trainRows > 3 || chunked.evalRows > 3 {
		t.Errorf("chunked: calls of %d rows (training's reward spread) and %d (evaluation), want at most 3", chunked.trainRows, chunked.evalRows)
	}
	for name, v := range def.scale {
		if !near(v, chunked.scale[name]) {
			t.Errorf("reward spread of %s: %v in default chunks, %v chunked", name, v, chunked.scale[name])
		}
	}
	for _, name := range def.rep.Order {
		a, b := def.rep.Methods[name], chunked.rep.Methods[name]
		if b == nil {
			t.Errorf("%s: missing from the chunked evaluation", name)
			continue
		}
		if !near(a.Reward, b.Reward) || !near(float64(a.HeldoutAlignment), float64(b.HeldoutAlignment)) || !near(float64(a.FD), float64(b.FD)) ||
			!near(a.Diversity, b.Diversity) || !near(a.Brightness, b.Brightness) || a.NFEPerImage != b.NFEPerImage ||
			!allClose(a.Rewards, b.Rewards) || !allClose(a.Grid, b.Grid) {
			t.Errorf("%s: reward %v / %v, align %v / %v, FD %v / %v, diversity %v / %v (default / chunked)", name,
				a.Reward, b.Reward, a.HeldoutAlignment, b.HeldoutAlignment, a.FD, b.FD, a.Diversity, b.Diversity)
		}
	}
	ta, tb := def.rep.Tilt, chunked.rep.Tilt
	if ta == nil || tb == nil || ta.Reference == nil || tb.Reference == nil {
		t.Fatal("no tilt reference")
	}
	if !near(ta.ReferenceMean, tb.ReferenceMean) || !near(ta.BaseMean, tb.BaseMean) || !near(ta.ESSMin, tb.ESSMin) ||
		!allClose(ta.Reference.Rewards, tb.Reference.Rewards) {
		t.Errorf("tilt columns differ: reference mean %v / %v, base mean %v / %v, ESS %v / %v", ta.ReferenceMean, tb.ReferenceMean,
			ta.BaseMean, tb.BaseMean, ta.ESSMin, tb.ESSMin)
	}
	for name, ra := range ta.Methods {
		rb := tb.Methods[name]
		if !near(float64(ra.TiltShare), float64(rb.TiltShare)) || !near(float64(ra.RenoShare), float64(rb.RenoShare)) ||
			!near(float64(ra.Distance), float64(rb.Distance)) {
			t.Errorf("%s: tilt row %+v / %+v (default / chunked)", name, ra, rb)
		}
	}
}

// near says whether a and b agree to float32 rounding: the backend's kernels may sum a row's
// products in another order at another batch size (the same images and rewards to ~1e-7).
func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-5*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func allClose[T float32 | float64](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(float64(a[i]), float64(b[i])) {
			return false
		}
	}
	return true
}
