package toy2d

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/toy"
	"github.com/hypernoise/hypernoise/progress"
)

// Run trains the toy generator and every selected method, and scores them. report (may be nil)
// receives progress lines. Any failure is returned as an error.
func Run(backend backends.Backend, cfg Config, report progress.Func) (rep *Report, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("toy benchmark: %v", r)
		}
	}()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	methods := cfg.Methods
	if len(methods) == 0 {
		methods = MethodNames()
	}
	r := &runner{backend: backend, cfg: cfg, ctx: context.New(), report: report, stages: 2 + len(methods)}
	r.say("training the toy generator")
	if err := r.setup(); err != nil {
		return nil, err
	}
	defer r.genReward.Finalize()
	defer r.rewardExec.Finalize()
	r.say("exact target by quadrature")
	if err := r.target(); err != nil {
		return nil, err
	}
	for _, m := range MethodNames() {
		if !slices.Contains(methods, m) {
			continue
		}
		r.say(m)
		if err := r.method(m); err != nil {
			return nil, err
		}
	}
	r.rep.Checks = checks(r.rep)
	r.rep.Seconds = time.Since(t0).Seconds()
	return r.rep, nil
}

// runner holds one benchmark run: the trained toy generator, the reward, the compiled generator and
// reward graphs, the quadrature grid and its values, the evaluation noises, and the report.
type runner struct {
	backend backends.Backend
	cfg     Config
	ctx     *context.Context
	report  progress.Func
	stage   int
	stages  int

	gen        *toy.Model
	reward     hypernoise.Reward
	gr         grid
	rep        *Report
	genReward  *context.Exec // eps -> (x = g(eps), r(x)), in fixed-size chunks
	rewardExec *context.Exec // x -> r(x)
	env        hypernoise.MethodEnv

	qeps, qx, qr []float32 // quadrature nodes eps, g(eps), r(g(eps))
	h            float64   // quadrature cell width
	evalEps      *tensors.Tensor
	prompts      *tensors.Tensor
}

func (r *runner) say(s string) {
	r.stage++
	r.report.Report(r.stage, r.stages, s)
}

// setup trains (or loads) the toy generator, parses the reward and compiles its graphs.
func (r *runner) setup() error {
	cfg := r.cfg
	gen, stats, err := toyGenerator(r.backend, r.ctx, cfg)
	if err != nil {
		return err
	}
	reward, err := toy.Rewards(cfg.Toy).Parse(cfg.Reward)
	if err != nil {
		return err
	}
	r.gen, r.reward = gen, reward
	r.gr = grid{n: cfg.Grid, ext: cfg.Extent}
	r.rep = &Report{Beta: cfg.Beta, Reward: reward.Name(), Methods: map[string]*MethodResult{}, Toy: stats}
	g := &r.rep.Grid
	g.Cells, g.Extent, g.Blur, g.Smoothing, g.Samples = cfg.Grid, cfg.Extent, cfg.Blur, cfg.Smoothing, cfg.Samples
	r.genReward, err = context.NewExec(r.backend, r.ctx, func(ctx *context.Context, eps *Node) []*Node {
		prompts := Zeros(eps.Graph(), shapes.Make(dtypes.Int32, eps.Shape().Dim(0)))
		x := gen.Generate(ctx, eps, prompts)
		return []*Node{x, ConvertDType(reward.Score(ctx, x, prompts), dtypes.Float32)}
	})
	if err != nil {
		return err
	}
	r.rewardExec, err = context.NewExec(r.backend, r.ctx, func(ctx *context.Context, x *Node) *Node {
		prompts := Zeros(x.Graph(), shapes.Make(dtypes.Int32, x.Shape().Dim(0)))
		return ConvertDType(reward.Score(ctx, x, prompts), dtypes.Float32)
	})
	if err != nil {
		r.genReward.Finalize()
		return err
	}
	n := cfg.Samples
	r.evalEps = hypernet.NoiseTensor(cfg.Seed, streamEval, n, []int{2})
	r.prompts = tensors.FromFlatDataAndDimensions(make([]int32, n), n)
	r.env = hypernoise.MethodEnv{Backend: r.backend, Context: r.ctx, Generator: gen, Reward: reward,
		N: cfg.BestOfN, Steps: cfg.ReNO.Steps, Chunk: toyChunk}
	return nil
}

// evalPoints runs the generator and reward on the flat noise points eps (x, y pairs).
func (r *runner) evalPoints(eps []float32) (xs, rs []float32, err error) {
	const chunk = 16384
	n := len(eps) / 2
	for start := 0; start < n; start += chunk {
		buf := make([]float32, 2*chunk)
		copy(buf, eps[2*start:min(2*n, 2*(start+chunk))])
		outs, err := r.genReward.Exec(tensors.FromFlatDataAndDimensions(buf, chunk, 2))
		if err != nil {
			return nil, nil, err
		}
		m := min(chunk, n-start)
		xs = append(xs, tensors.MustCopyFlatData[float32](outs[0])[:2*m]...)
		rs = append(rs, tensors.MustCopyFlatData[float32](outs[1])[:m]...)
	}
	return xs, rs, nil
}

// target computes the exact tilted target by quadrature over a grid of noise points: its density
// on the scoring grid, its mean reward and the base's, and the finite-sample floor of the
// divergences (Samples draws from the quadrature distribution, jittered in their cell).
func (r *runner) target() error {
	cfg := r.cfg
	q := cfg.Quadrature
	r.h = 2 * cfg.QuadratureExtent / float64(q)
	r.qeps = make([]float32, 2*q*q)
	for i := range q {
		for j := range q {
			k := i*q + j
			r.qeps[2*k] = float32(-cfg.QuadratureExtent + (float64(j)+0.5)*r.h)
			r.qeps[2*k+1] = float32(-cfg.QuadratureExtent + (float64(i)+0.5)*r.h)
		}
	}
	var err error
	if r.qx, r.qr, err = r.evalPoints(r.qeps); err != nil {
		return err
	}
	wTilt, rT := r.tilt(cfg.Beta)
	var sumB, rB float64
	for k := range r.qr {
		e1, e2 := float64(r.qeps[2*k]), float64(r.qeps[2*k+1])
		wb := math.Exp(-(e1*e1 + e2*e2) / 2)
		sumB += wb
		rB += wb * float64(r.qr[k])
	}
	r.rep.Target.Reward = rT
	r.rep.Target.BaseReward = rB / sumB
	r.rep.targetDensity = r.gr.blurred(r.gr.histogram(r.qx, wTilt), cfg.Blur)
	return r.floor(wTilt)
}

// tilt returns the quadrature weights N(e) exp(r(g(e))/beta) (scaled) and E_{p*}[r].
func (r *runner) tilt(beta float64) ([]float64, float64) {
	n := len(r.qr)
	logw := make([]float64, n)
	maxLog := math.Inf(-1)
	for k := range logw {
		e1, e2 := float64(r.qeps[2*k]), float64(r.qeps[2*k+1])
		logw[k] = -(e1*e1+e2*e2)/2 + float64(r.qr[k])/beta
		if !math.IsNaN(logw[k]) {
			maxLog = math.Max(maxLog, logw[k])
		}
	}
	w := make([]float64, n)
	var sum, rs float64
	for k := range logw {
		wt := math.Exp(logw[k] - maxLog)
		if math.IsNaN(wt) {
			wt = 0
		}
		w[k] = wt
		sum += wt
		rs += wt * float64(r.qr[k])
	}
	return w, rs / sum
}

// floor is the finite-sample floor of KL and TV: Samples draws from the quadrature weights wTilt,
// each jittered uniformly in its cell, scored against the target density.
func (r *runner) floor(wTilt []float64) error {
	cfg := r.cfg
	cum := make([]float64, len(wTilt))
	acc := 0.0
	for k, w := range wTilt {
		acc += w
		cum[k] = acc
	}
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), streamFloor))
	pts := make([]float32, 2*cfg.Samples)
	for i := range cfg.Samples {
		k := sort.SearchFloat64s(cum, rng.Float64()*acc)
		k = min(k, len(cum)-1)
		pts[2*i] = r.qeps[2*k] + float32((rng.Float64()-0.5)*r.h)
		pts[2*i+1] = r.qeps[2*k+1] + float32((rng.Float64()-0.5)*r.h)
	}
	fx, _, err := r.evalPoints(pts)
	if err != nil {
		return err
	}
	d := r.gr.blurred(r.gr.histogram(fx, nil), cfg.Blur)
	r.rep.Target.KLFloor = KL(r.rep.targetDensity, d, cfg.Smoothing)
	r.rep.Target.TVFloor = TV(r.rep.targetDensity, d)
	return nil
}

// scoreAgainst scores samples x against a target density: KL, TV, mass outside the grid, mean
// reward, and the method's cost.
func (r *runner) scoreAgainst(target []float64, x *tensors.Tensor, cost hypernet.Cost) (*MethodResult, error) {
	xs := tensors.MustCopyFlatData[float32](x)
	rt, err := r.rewardExec.Exec1(x)
	if err != nil {
		return nil, err
	}
	rs := tensors.MustCopyFlatData[float32](rt)
	d := r.gr.blurred(r.gr.histogram(xs, nil), r.cfg.Blur)
	res := &MethodResult{KL: KL(target, d, r.cfg.Smoothing), TV: TV(target, d),
		OutsideGrid: d[len(d)-1], NFEPerSample: cost.NFE(), SecondsPerSample: cost.Seconds,
		Forward: cost.Forward, Backward: cost.Backward, density: d}
	for _, v := range rs {
		res.Reward += float64(v)
	}
	res.Reward /= float64(len(rs))
	return res, nil
}

// score scores x against the target at cfg.Beta and records it as method name.
func (r *runner) score(name string, x *tensors.Tensor, cost hypernet.Cost) (*MethodResult, error) {
	res, err := r.scoreAgainst(r.rep.targetDensity, x, cost)
	if err != nil {
		return nil, err
	}
	r.rep.Methods[name] = res
	r.rep.order = append(r.rep.order, name)
	return res, nil
}

// generate runs a registered method on the evaluation noises.
func (r *runner) generate(name string, env hypernoise.MethodEnv) (*tensors.Tensor, hypernet.Cost, error) {
	m, err := hypernoise.NewMethod(name, env)
	if err != nil {
		return nil, hypernet.Cost{}, err
	}
	defer m.Close()
	return m.Generate(r.evalEps, r.prompts)
}

// trained records a training run's figures in res (training NFE at batch size batch).
func trained(res *MethodResult, tr *hypernet.TrainResult, batch int) {
	res.TrainSteps, res.TrainSkipped, res.TrainSeconds = tr.Steps, tr.Skipped, tr.Seconds
	res.TrainNFE = tr.Cost.NFE() * float64(batch)
}

// trainAndScore trains problem p with cfg.Train, generates the evaluation samples with the
// registered method gname under env e, and scores them as method name.
func (r *runner) trainAndScore(name string, p *hypernet.Problem, gname string, e hypernoise.MethodEnv) error {
	tr, err := hypernet.Train(r.backend, r.ctx, p, r.cfg.Train, nil)
	if err != nil {
		return err
	}
	x, cost, err := r.generate(gname, e)
	if err != nil {
		return err
	}
	res, err := r.score(name, x, cost)
	if err != nil {
		return err
	}
	trained(res, tr, r.cfg.Train.BatchSize)
	return nil
}

// method runs and scores one method of the benchmark.
func (r *runner) method(m string) error {
	cfg, gen, reward := r.cfg, r.gen, r.reward
	switch m {
	case MethodBase, MethodBestOfN, MethodReNO:
		x, cost, err := r.generate(m, r.env)
		if err != nil {
			return err
		}
		_, err = r.score(m, x, cost)
		return err
	case MethodFinetune:
		ft, err := finetune.New(gen, cfg.Rank, 0, "finetune")
		if err != nil {
			return err
		}
		p, err := ft.Problem(reward)
		if err != nil {
			return err
		}
		fe := r.env
		fe.Finetuned = ft
		return r.trainAndScore(m, p, MethodFinetune, fe)
	case MethodHyperNoise, MethodMLP, MethodExactKL, MethodLogDet:
		var mod hypernoise.Modulator
		var err error
		obj := hypernet.Objective{Reward: reward, Reg: hypernet.RegKL, Beta: cfg.Beta, LogDet: cfg.LogDet}
		switch m {
		case MethodHyperNoise:
			mod, err = hypernet.NewLoRA(gen, cfg.Rank, 0, "hypernet")
		case MethodMLP:
			mod, err = hypernet.NewMLP(gen.NoiseShape(), 0, cfg.MLP.Hidden, cfg.MLP.Layers, "hypernet_mlp")
		case MethodExactKL:
			mod, err = hypernet.NewLoRA(gen, cfg.Rank, 0, "hypernet_exact")
			obj.Reg = hypernet.RegExactKL
		case MethodLogDet:
			mod, err = hypernet.NewLoRA(gen, cfg.Rank, 0, "hypernet_logdet")
			obj.Reg = hypernet.RegLogDet
		}
		if err != nil {
			return err
		}
		p, err := hypernet.NewProblem(gen, mod, obj)
		if err != nil {
			return err
		}
		he := r.env
		he.Modulator = mod
		return r.trainAndScore(m, p, MethodHyperNoise, he)
	case MethodDial:
		return r.dial()
	}
	return nil
}

// dial trains the tilt dial over cfg.DialRange and scores it at each of cfg.DialBetas against the
// exact target at that beta.
func (r *runner) dial() error {
	cfg, gen := r.cfg, r.gen
	dial, err := hypernet.NewDialMLP(gen.NoiseShape(), 0, cfg.MLP.Hidden, cfg.MLP.Layers, cfg.DialRange[0], cfg.DialRange[1], "hypernet_dial")
	if err != nil {
		return err
	}
	obj := hypernet.Objective{Reward: r.reward, Reg: hypernet.RegLogDet, Beta: cfg.DialRange[0], LogDet: cfg.LogDet}
	p, err := hypernet.NewDialProblem(gen, dial, obj)
	if err != nil {
		return err
	}
	tc := cfg.Train
	if cfg.DialSteps > 0 {
		tc.Steps = cfg.DialSteps
	}
	tr, err := hypernet.Train(r.backend, r.ctx, p, tc, nil)
	if err != nil {
		return err
	}
	r.rep.Dial = map[string]*MethodResult{}
	for _, beta := range cfg.DialBetas {
		mod, err := hypernet.AtBeta(dial, beta)
		if err != nil {
			return err
		}
		de := r.env
		de.Modulator = mod
		x, cost, err := r.generate(MethodHyperNoise, de)
		if err != nil {
			return err
		}
		w, rt := r.tilt(beta)
		res, err := r.scoreAgainst(r.gr.blurred(r.gr.histogram(r.qx, w), cfg.Blur), x, cost)
		if err != nil {
			return err
		}
		trained(res, tr, tc.BatchSize)
		res.TargetReward = rt
		key := strconv.FormatFloat(beta, 'g', -1, 64)
		r.rep.Dial[key] = res
		r.rep.dialOrder = append(r.rep.dialOrder, key)
	}
	return nil
}
