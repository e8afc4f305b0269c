package fashion

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// linearLoop trains w (3 numbers, under /part) on the loss sum_i c_s,i w_i with a step-dependent c:
// the gradient does not depend on w, so Adam's trajectory of w is the same whether or not a moving
// average is kept. It returns w after each step and the final (possibly averaged) w.
// With stopAt > 0 the run is interrupted (a panic) when it asks for that step's batch.
func linearLoop(t *testing.T, ema float64, steps int, state string, stopAt int) (trajectory [][]float32, final []float32) {
	t.Helper()
	be := backendForTest(t)
	ctx := context.New()
	seedContext(ctx, 5)
	w := ctx.InAbsPath("/part").VariableWithValue("w", []float32{0.5, -1, 2})
	l := &loop{name: "test", scopes: []string{"part"}, steps: steps, lr: 0.05, warmup: 2, ema: ema, statePath: state, every: 4}
	l.progress = func(done, total int, _ string) {
		v, err := w.Value()
		if err != nil {
			t.Fatal(err)
		}
		trajectory = append(trajectory, tensors.MustCopyFlatData[float32](v))
	}
	_, _, err := l.run(be, ctx, func(ctx *context.Context, in []*Node) *Node {
		v := ctx.InAbsPath("/part").GetVariableByScopeAndName("/part", "w").ValueGraph(in[0].Graph())
		return ReduceAllSum(Mul(v, in[0]))
	}, func(step int) []any {
		if stopAt > 0 && step == stopAt {
			panic(errInterrupted)
		}
		s := float32(step)
		return []any{[]float32{1 + 0.1*s, -0.5 + 0.2*s, float32(math.Sin(float64(s)))}}
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := w.Value()
	if err != nil {
		t.Fatal(err)
	}
	if v.DType() != dtypes.Float32 {
		t.Fatalf("w is %s", v.DType())
	}
	return trajectory, tensors.MustCopyFlatData[float32](v)
}

var errInterrupted = errors.New("interrupted")

// TestLoopMovingAverage checks that with ema > 0 the loop ends with the weights' exponential moving
// average avg_s = d_s avg_{s-1} + (1-d_s) w_s (d_s = emaDecayAt(s)) over the trajectory of the same
// run without one, and that a run interrupted and resumed from its state ends with the same average.
func TestLoopMovingAverage(t *testing.T) {
	const steps, ema = 12, 0.8
	traj, last := linearLoop(t, 0, steps, "", 0)
	if len(traj) != steps {
		t.Fatalf("%d progress reports, want %d", len(traj), steps)
	}
	l := &loop{ema: ema}
	want := make([]float64, len(last))
	for s, w := range traj {
		d := l.emaDecayAt(s)
		for i := range want {
			want[i] = d*want[i] + (1-d)*float64(w[i])
		}
	}
	_, got := linearLoop(t, ema, steps, "", 0)
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-5 {
			t.Fatalf("averaged w = %v, want %v (last step's w: %v)", got, want, last)
		}
		if math.Abs(float64(got[i])-float64(last[i])) < 1e-3 {
			t.Fatalf("averaged w %v equals the last step's %v: no average was applied", got, last)
		}
	}
	// Interrupted after 8 steps (the state is saved every 4), then resumed to the end.
	state := filepath.Join(t.TempDir(), "state.safetensors")
	func() {
		defer func() {
			if r := recover(); r != errInterrupted {
				t.Fatalf("interrupted run: recovered %v", r)
			}
		}()
		linearLoop(t, ema, steps, state, 8)
	}()
	_, resumed := linearLoop(t, ema, steps, state, 0)
	for i := range want {
		if math.Abs(float64(resumed[i])-want[i]) > 1e-5 {
			t.Fatalf("resumed run ends with %v, want %v", resumed, want)
		}
	}
}
