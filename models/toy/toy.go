// Package toy is the 2-D stand-in for the real pipeline: a mixture of Gaussians on a ring (the
// "data"), a rectified-flow teacher trained on it, and a one-step student distilled from the
// teacher's ODE. The student g: R^2 -> R^2 is the frozen one-step generator the methods work on;
// it implements hypernoise.Generator and hypernoise.Backbone (the student network maps the noise
// to a tensor of the noise's own shape, so the LoRA modulator is a copy of it).
//
// Rectified flow: x_t = (1-t) eps + t x, eps ~ N(0, I), x ~ data; the teacher v(x_t, t) regresses
// x - eps; sampling integrates dx/dt = v(x, t) from t = 0 to 1 (midpoint rule). The student is
// trained by least squares on pairs (eps, ODE(eps)). Everything is seeded and takes seconds.
package toy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/hypernoise/hypernoise/nn"
	"github.com/hypernoise/hypernoise/progress"
)

// Config describes the toy data, the networks and their training.
type Config struct {
	Modes  int     `json:"modes"`  // Gaussians on the ring
	Radius float64 `json:"radius"` // ring radius
	Std    float64 `json:"std"`    // standard deviation of each Gaussian

	Hidden int `json:"hidden"` // width of the teacher's and the student's hidden layers
	Depth  int `json:"depth"`  // number of hidden layers

	TeacherSteps int     `json:"teacher_steps"` // Adam steps for the teacher
	StudentSteps int     `json:"student_steps"` // Adam steps for the student
	Batch        int     `json:"batch"`
	LR           float64 `json:"lr"`
	ODESteps     int     `json:"ode_steps"` // midpoint steps of the teacher ODE for the distillation pairs
	Pairs        int     `json:"pairs"`     // distillation pairs
	Seed         int64   `json:"seed"`

	Scope string `json:"scope"` // scope of the student's variables in the context
}

// DefaultConfig is 8 Gaussians (std 0.2) on a ring of radius 2 with 3x64 SiLU networks.
func DefaultConfig() Config {
	return Config{Modes: 8, Radius: 2, Std: 0.2, Hidden: 64, Depth: 3,
		TeacherSteps: 1500, StudentSteps: 1500, Batch: 256, LR: 1e-2, ODESteps: 24, Pairs: 8192,
		Seed: 1, Scope: "toy"}
}

// QuickConfig is DefaultConfig with shorter training (for --quick runs and tests): 600 steps
// each, 4096 pairs from 16 ODE steps.
func QuickConfig() Config {
	c := DefaultConfig()
	c.TeacherSteps, c.StudentSteps, c.Pairs, c.ODESteps = 600, 600, 4096, 16
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Modes < 1:
		return fmt.Errorf("toy: modes must be >= 1, got %d", c.Modes)
	case !(c.Radius >= 0) || !(c.Std > 0):
		return fmt.Errorf("toy: need radius >= 0 and std > 0, got %g and %g", c.Radius, c.Std)
	case c.Hidden <= 0 || c.Depth <= 0:
		return fmt.Errorf("toy: hidden width and depth must be positive, got %d and %d", c.Hidden, c.Depth)
	case c.TeacherSteps <= 0 || c.StudentSteps <= 0 || c.Batch <= 0 || c.ODESteps <= 0 || c.Pairs <= 0:
		return fmt.Errorf("toy: steps, batch, ODE steps and pairs must be positive")
	case !(c.LR > 0):
		return fmt.Errorf("toy: learning rate must be positive, got %g", c.LR)
	case c.Scope == "":
		return fmt.Errorf("toy: empty scope")
	}
	return nil
}

// Centers returns the Gaussians' means: Radius (cos 2πk/Modes, sin 2πk/Modes).
func (c Config) Centers() [][2]float64 {
	out := make([][2]float64, c.Modes)
	for k := range out {
		a := 2 * math.Pi * float64(k) / float64(c.Modes)
		out[k] = [2]float64{c.Radius * math.Cos(a), c.Radius * math.Sin(a)}
	}
	return out
}

// SampleData draws n points of the data distribution (uniform mixture), flat [n*2], seeded.
func (c Config) SampleData(n int, seed int64) []float32 {
	r := rand.New(rand.NewPCG(uint64(seed), 0xda7a))
	centers := c.Centers()
	out := make([]float32, 2*n)
	for i := range n {
		m := centers[r.IntN(len(centers))]
		out[2*i] = float32(m[0] + c.Std*r.NormFloat64())
		out[2*i+1] = float32(m[1] + c.Std*r.NormFloat64())
	}
	return out
}

// Model is the one-step student g(eps) for eps [B, 2]; prompts are ignored (unconditional).
type Model struct {
	Config Config
}

// Name identifies the toy generator.
func (m *Model) Name() string { return fmt.Sprintf("toy-ring%d", m.Config.Modes) }

// NoiseShape is [2].
func (m *Model) NoiseShape() []int { return []int{2} }

// Prompts is nil: the toy is unconditional.
func (m *Model) Prompts() []string { return nil }

// Generate builds x = g(eps); the generator is its backbone.
func (m *Model) Generate(ctx *context.Context, eps, prompts *Node) *Node {
	return m.Backbone(ctx, eps, prompts)
}

// Backbone builds the student network eps -> x: Depth SiLU dense layers, then nn.OutputDense.
func (m *Model) Backbone(ctx *context.Context, eps, prompts *Node) *Node {
	return mlp(ctx.In(m.Config.Scope).In("student"), eps, m.Config.Hidden, m.Config.Depth, 2)
}

func mlp(ctx *context.Context, h *Node, hidden, depth, out int) *Node {
	for i := range depth {
		h = activations.Swish(nn.Dense(ctx.Inf("dense_%d", i), h, hidden))
	}
	return nn.OutputDense(ctx.In("out"), h, out)
}

// velocity is the teacher v(x, t): x [B,2], t [B].
func velocity(ctx *context.Context, cfg Config, x, t *Node) *Node {
	// Low-frequency time features: t and sin/cos(pi k t), k = 1, 2, 3.
	te := ExpandAxes(ConvertDType(t, x.DType()), -1)
	feats := []*Node{x, te}
	for k := 1; k <= 3; k++ {
		arg := MulScalar(te, math.Pi*float64(k))
		feats = append(feats, Sin(arg), Cos(arg))
	}
	h := Concatenate(feats, -1)
	return mlp(ctx.In("teacher"), h, cfg.Hidden, cfg.Depth, 2)
}

// TrainStats reports how the toy was trained.
type TrainStats struct {
	TeacherLoss float64 `json:"teacher_loss"` // mean of the last 100 steps
	StudentLoss float64 `json:"student_loss"` // mean squared error to the ODE endpoints, last 100 steps
	Seconds     float64 `json:"seconds"`
}

// Train trains the teacher and distils the student, and stores the student's weights in ctx under
// /Scope/student. The teacher lives in a scratch context and is discarded.
func Train(backend backends.Backend, ctx *context.Context, cfg Config, report progress.Func) (m *Model, st TrainStats, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("training the toy generator: %v", r)
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, st, err
	}
	t0 := time.Now()
	total := cfg.TeacherSteps + cfg.StudentSteps + 1
	work := context.New()
	if err := work.SetRNGStateFromSeed(cfg.Seed); err != nil {
		return nil, st, err
	}
	wctx := work.In(cfg.Scope)
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x7ea))
	if st.TeacherLoss, err = trainTeacher(backend, wctx, cfg, rng, report, total); err != nil {
		return nil, st, err
	}
	eps, targets, err := distillPairs(backend, wctx, cfg, rng)
	if err != nil {
		return nil, st, err
	}
	report.Report(cfg.TeacherSteps+1, total, "ODE pairs")
	model := &Model{Config: cfg}
	if st.StudentLoss, err = trainStudent(backend, work, model, cfg, rng, eps, targets, report, total); err != nil {
		return nil, st, err
	}
	if err := copyStudent(work, ctx, cfg); err != nil {
		return nil, st, err
	}
	st.Seconds = time.Since(t0).Seconds()
	return model, st, nil
}

// trainTeacher trains the teacher's velocity field by rectified flow, min E||v(x_t, t) - (x1 - e)||^2
// with x_t = (1-t) e + t x1, and returns its mean loss over the last steps.
func trainTeacher(backend backends.Backend, wctx *context.Context, cfg Config, rng *rand.Rand, report progress.Func, total int) (float64, error) {
	opt := optimizers.Adam().LearningRate(cfg.LR).Done()
	teacherStep, err := context.NewExec(backend, wctx, func(ctx *context.Context, xt, t, v *Node) *Node {
		pred := velocity(ctx, cfg, xt, t)
		loss := ReduceAllMean(Square(Sub(pred, v)))
		opt.UpdateGraph(ctx, xt.Graph(), loss)
		return loss
	})
	if err != nil {
		return 0, err
	}
	defer teacherStep.Finalize()
	b := cfg.Batch
	xt := make([]float32, 2*b)
	ts := make([]float32, b)
	vs := make([]float32, 2*b)
	var tail []float64
	for step := range cfg.TeacherSteps {
		x1 := cfg.SampleData(b, cfg.Seed*1_000_003+int64(step))
		for i := range b {
			t := float32(rng.Float64())
			ts[i] = t
			for j := range 2 {
				e := float32(rng.NormFloat64())
				xt[2*i+j] = (1-t)*e + t*x1[2*i+j]
				vs[2*i+j] = x1[2*i+j] - e
			}
		}
		if err := setLR(wctx, cfg.LR, step, cfg.TeacherSteps); err != nil {
			return 0, err
		}
		out, err := teacherStep.Exec1(tensors.FromFlatDataAndDimensions(xt, b, 2),
			tensors.FromFlatDataAndDimensions(ts, b), tensors.FromFlatDataAndDimensions(vs, b, 2))
		if err != nil {
			return 0, err
		}
		tail = appendTail(tail, float64(out.Value().(float32)))
		report.Report(step+1, total, "teacher")
	}
	return mean(tail), nil
}

// distillPairs draws cfg.Pairs noises eps and integrates the teacher's ODE from each (ODESteps
// midpoint steps), returning eps and the ODE's end points.
func distillPairs(backend backends.Backend, wctx *context.Context, cfg Config, rng *rand.Rand) (eps, targets []float32, err error) {
	p := cfg.Pairs
	eps = make([]float32, 2*p)
	for i := range eps {
		eps[i] = float32(rng.NormFloat64())
	}
	ode, err := context.NewExec(backend, wctx, func(ctx *context.Context, x *Node) *Node {
		n := x.Shape().Dim(0)
		dt := 1 / float64(cfg.ODESteps)
		for k := range cfg.ODESteps {
			t := Scalar(x.Graph(), dtypes.Float32, float64(k)*dt)
			tv := BroadcastToDims(t, n)
			v1 := velocity(ctx, cfg, x, tv)
			mid := Add(x, MulScalar(v1, dt/2))
			v2 := velocity(ctx, cfg, mid, AddScalar(tv, dt/2))
			x = Add(x, MulScalar(v2, dt))
		}
		return x
	})
	if err != nil {
		return nil, nil, err
	}
	defer ode.Finalize()
	targetsT, err := ode.Exec1(tensors.FromFlatDataAndDimensions(eps, p, 2))
	if err != nil {
		return nil, nil, err
	}
	return eps, tensors.MustCopyFlatData[float32](targetsT), nil
}

// trainStudent fits the one-step student g(eps) ~ ODE(eps) by least squares on the pairs, in the
// scratch context under /Scope/student, and returns its mean loss over the last steps.
func trainStudent(backend backends.Backend, work *context.Context, model *Model, cfg Config, rng *rand.Rand, eps, targets []float32, report progress.Func, total int) (float64, error) {
	opt2 := optimizers.Adam().LearningRate(cfg.LR).Scope("adam_student").Done()
	studentStep, err := context.NewExec(backend, work, func(ctx *context.Context, e, x *Node) *Node {
		pred := model.Backbone(ctx, e, nil)
		loss := ReduceAllMean(ReduceSum(Square(Sub(pred, x)), -1))
		opt2.UpdateGraph(ctx, e.Graph(), loss)
		return loss
	})
	if err != nil {
		return 0, err
	}
	defer studentStep.Finalize()
	b, p := cfg.Batch, cfg.Pairs
	be := make([]float32, 2*b)
	bx := make([]float32, 2*b)
	var tail []float64
	for step := range cfg.StudentSteps {
		for i := range b {
			j := rng.IntN(p)
			copy(be[2*i:2*i+2], eps[2*j:2*j+2])
			copy(bx[2*i:2*i+2], targets[2*j:2*j+2])
		}
		if err := setLR(work, cfg.LR, step, cfg.StudentSteps); err != nil {
			return 0, err
		}
		out, err := studentStep.Exec1(tensors.FromFlatDataAndDimensions(be, b, 2), tensors.FromFlatDataAndDimensions(bx, b, 2))
		if err != nil {
			return 0, err
		}
		tail = appendTail(tail, float64(out.Value().(float32)))
		report.Report(cfg.TeacherSteps+1+step+1, total, "student")
	}
	return mean(tail), nil
}

// copyStudent copies the student's weights (under /Scope/student of the scratch context work)
// into ctx.
func copyStudent(work, ctx *context.Context, cfg Config) error {
	studentScope := context.ScopeSeparator + cfg.Scope + context.ScopeSeparator + "student"
	n := 0
	for v := range work.IterVariables() {
		if v.Scope() == studentScope || len(v.Scope()) > len(studentScope) && v.Scope()[:len(studentScope)+1] == studentScope+"/" {
			val, err := v.Value()
			if err != nil {
				return err
			}
			val, err = val.LocalClone()
			if err != nil {
				return err
			}
			if existing := ctx.InspectVariable(v.Scope(), v.Name()); existing != nil {
				if err := existing.SetValue(val); err != nil {
					return err
				}
			} else {
				ctx.InAbsPath(v.Scope()).Checked(false).VariableWithValue(v.Name(), val)
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("toy: the student has no variables under %s", studentScope)
	}
	return nil
}

// setLR sets the Adam learning rate of ctx's scope to the cosine schedule
// lr * (0.05 + 0.95 * (1 + cos(pi*step/steps))/2).
func setLR(ctx *context.Context, lr float64, step, steps int) error {
	v := ctx.InspectVariable(ctx.In(optimizers.Scope).Scope(), optimizers.ParamLearningRate)
	if v == nil {
		return nil // created on the first step with the configured value
	}
	f := 0.05 + 0.95*(1+math.Cos(math.Pi*float64(step)/float64(steps)))/2
	return v.SetValue(tensors.FromScalar(float32(lr * f)))
}

func appendTail(tail []float64, v float64) []float64 {
	tail = append(tail, v)
	if len(tail) > 100 {
		tail = tail[1:]
	}
	return tail
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(max(len(xs), 1))
}
