package fashion

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/progress"
)

// loop is one training run of a single part: Adam with a linear warm-up and a cosine decay to 10%
// of the peak learning rate, optionally an exponential moving average of the weights, a periodic
// atomic checkpoint of all the training state (weights, averages, optimizer moments, step) and
// resumption from that checkpoint.
type loop struct {
	name   string   // for progress lines
	scopes []string // the trained variables' scopes, e.g. "teacher"
	steps  int
	lr     float64
	warmup int
	// ema, when > 0, is the decay of an exponential moving average of the weights under
	// emaScopes (default: scopes), which replaces them when the run ends (see emaDecayAt).
	ema       float64
	emaScopes []string
	statePath string // checkpoint for resuming; "" disables checkpoints
	every     int    // checkpoint period in steps
	progress  progress.Func
	log       func(format string, args ...any)
}

// seedContext seeds ctx's random number generator and its variable initializers.
func seedContext(ctx *context.Context, seed int64) {
	ctx.SetParam(context.ParamInitialSeed, seed)
	if err := ctx.SetRNGStateFromSeed(seed); err != nil {
		panic(err)
	}
}

// freezeOutside marks trainable exactly the variables under one of the scopes /scope.
func freezeOutside(ctx *context.Context, scopes ...string) {
	for v := range ctx.IterVariables() {
		s := v.Scope()
		train := false
		for _, scope := range scopes {
			prefix := context.ScopeSeparator + scope
			train = train || s == prefix || strings.HasPrefix(s, prefix+context.ScopeSeparator)
		}
		v.SetTrainable(train)
	}
}

// lrAt is the learning rate at step s (0-based).
func (l *loop) lrAt(s int) float64 {
	if s < l.warmup {
		return l.lr * float64(s+1) / float64(l.warmup)
	}
	p := float64(s-l.warmup) / float64(max(l.steps-l.warmup, 1))
	return l.lr * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*p)))
}

// emaScope is the root scope under which the moving averages of the weights live during training
// (the average of /teacher/x/w is /_ema/teacher/x/w); it is in the resumable state, never shipped.
const emaScope = "_ema"

// emaDecayAt is the decay of the weights' moving average after step s (0-based): with d = l.ema,
// min(d, s/(s+10)), so the average starts as the weights themselves (decay 0 at step 0) and
// forgets its early, poor values quickly before settling at d:
//
//	avg_s = decay_s * avg_{s-1} + (1 - decay_s) * w_s
func (l *loop) emaDecayAt(s int) float64 {
	return min(l.ema, float64(s)/float64(s+10))
}

// averaged lists the trainable variables whose moving average the loop keeps.
func (l *loop) averaged(ctx *context.Context) []*context.Variable {
	scopes := l.emaScopes
	if len(scopes) == 0 {
		scopes = l.scopes
	}
	var vs []*context.Variable
	for v := range ctx.IterVariables() {
		for _, scope := range scopes {
			if v.Trainable && inScope(v.Scope(), context.ScopeSeparator+scope) {
				vs = append(vs, v)
				break
			}
		}
	}
	return vs
}

// emaOf is the moving-average variable of v (loaded from a resumed state, or created zero-filled),
// not trainable.
func emaOf(ctx *context.Context, v *context.Variable) *context.Variable {
	scope := context.ScopeSeparator + emaScope + v.Scope()
	if e := ctx.GetVariableByScopeAndName(scope, v.Name()); e != nil { // resumed from the state
		return e.SetTrainable(false)
	}
	ec := ctx.InAbsPath(scope).WithInitializer(
		func(g *Graph, shape shapes.Shape) *Node { return Zeros(g, shape) })
	return ec.VariableWithShape(v.Name(), v.Shape()).SetTrainable(false)
}

// useAverages replaces the averaged weights by their moving averages.
func (l *loop) useAverages(ctx *context.Context) error {
	for _, v := range l.averaged(ctx) {
		e := ctx.GetVariableByScopeAndName(context.ScopeSeparator+emaScope+v.Scope(), v.Name())
		if e == nil {
			return fmt.Errorf("%s: no moving average of %s", l.name, v.ScopeAndName())
		}
		val, err := e.Value()
		if err != nil {
			return err
		}
		c, err := val.Clone()
		if err != nil {
			return err
		}
		if err := v.SetValue(c); err != nil {
			return err
		}
	}
	return nil
}

// run trains: lossFn builds the scalar loss from the batch inputs, batch(step) returns them (host
// tensors or Go slices) and must be a pure function of step so that a resumed run sees the same
// batches. It returns the mean loss over the last 50 steps and the wall time spent in this call.
func (l *loop) run(backend backends.Backend, ctx *context.Context,
	lossFn func(ctx *context.Context, in []*Node) *Node, batch func(step int) []any) (float64, time.Duration, error) {
	start := time.Now()
	first := 0
	if l.statePath != "" {
		if _, err := os.Stat(l.statePath); err == nil {
			meta, err := ckpt.Load(ctx, l.statePath)
			if err != nil {
				return 0, 0, fmt.Errorf("resuming %s: %w (delete it to start over)", l.statePath, err)
			}
			first, _ = strconv.Atoi(meta["step"])
			if first > l.steps {
				first = l.steps
			}
			if l.log != nil {
				l.log("%s: resuming from step %d (%s)", l.name, first, l.statePath)
			}
		}
	}
	freezeOutside(ctx, l.scopes...)
	opt := optimizers.Adam().LearningRate(l.lr).Done()
	lrVar := optimizers.LearningRateVar(ctx, dtypes.Float32, l.lr)
	var decayVar *context.Variable
	if l.ema > 0 {
		// A resumed run has it already (loaded from the state).
		if decayVar = ctx.GetVariableByScopeAndName(context.ScopeSeparator+emaScope, "decay"); decayVar == nil {
			decayVar = ctx.InAbsPath(context.ScopeSeparator+emaScope).VariableWithValue("decay", float32(0))
		}
		decayVar.SetTrainable(false)
	}
	exec, err := context.NewExec(backend, ctx, func(ctx *context.Context, in []*Node) *Node {
		loss := lossFn(ctx, in)
		g := loss.Graph()
		opt.UpdateGraph(ctx, g, loss)
		if decayVar != nil {
			d := decayVar.ValueGraph(g)
			for _, v := range l.averaged(ctx) {
				e := emaOf(ctx, v)
				e.SetValueGraph(Add(Mul(d, e.ValueGraph(g)), Mul(OneMinus(d), v.ValueGraph(g))))
			}
		}
		return loss
	})
	if err != nil {
		return 0, 0, err
	}
	defer exec.Finalize()
	var recent []float64
	save := func(step int) error {
		if l.statePath == "" {
			return nil
		}
		return ckpt.Save(ctx, "/", l.statePath, map[string]string{"step": strconv.Itoa(step)})
	}
	for s := first; s < l.steps; s++ {
		if err := lrVar.SetValue(tensors.FromScalar(float32(l.lrAt(s)))); err != nil {
			return 0, 0, err
		}
		if decayVar != nil {
			if err := decayVar.SetValue(tensors.FromScalar(float32(l.emaDecayAt(s)))); err != nil {
				return 0, 0, err
			}
		}
		out, err := exec.Exec(batch(s)...)
		if err != nil {
			return 0, 0, fmt.Errorf("%s step %d: %w", l.name, s, err)
		}
		loss := float64(tensors.MustCopyFlatData[float32](out[0])[0])
		out[0].FinalizeAll()
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return 0, 0, fmt.Errorf("%s step %d: loss is %v", l.name, s, loss)
		}
		recent = append(recent, loss)
		if len(recent) > 50 {
			recent = recent[1:]
		}
		if (s+1)%max(l.every, 1) == 0 && s+1 < l.steps {
			if err := save(s + 1); err != nil {
				return 0, 0, err
			}
		}
		l.progress.Report(s+1, l.steps, fmt.Sprintf("loss %.4f", mean(recent)))
	}
	if err := save(l.steps); err != nil {
		return 0, 0, err
	}
	if l.ema > 0 {
		if err := l.useAverages(ctx); err != nil {
			return 0, 0, err
		}
	}
	if len(recent) == 0 {
		return math.NaN(), time.Since(start), nil
	}
	return mean(recent), time.Since(start), nil
}

func mean(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// forward runs a compiled forward graph over n rows in batches of bs (the last batch padded by
// repeating its last row, so the graph is compiled once). mk builds the inputs of the given row
// indices; each output k is returned flattened, rows in order, its row size inferred from the batch.
func forward(exec *context.Exec, n, bs int, mk func(idx []int) []any) ([][]float32, error) {
	var outs [][]float32
	idx := make([]int, bs)
	for start := 0; start < n; start += bs {
		end := min(start+bs, n)
		for i := range idx {
			idx[i] = min(start+i, end-1)
		}
		res, err := exec.Exec(mk(idx)...)
		if err != nil {
			return nil, err
		}
		if outs == nil {
			outs = make([][]float32, len(res))
		}
		for k, t := range res {
			flat := tensors.MustCopyFlatData[float32](t)
			t.FinalizeAll()
			row := len(flat) / bs
			outs[k] = append(outs[k], flat[:(end-start)*row]...)
		}
	}
	return outs, nil
}

// gatherRows copies rows idx of a row-major array with rows of size row.
func gatherRows[T any](src []T, row int, idx []int) []T {
	out := make([]T, 0, len(idx)*row)
	for _, i := range idx {
		out = append(out, src[i*row:(i+1)*row]...)
	}
	return out
}
