package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/internal/randtensor"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/pipeline"
)

// hnBatch is the batch of the HyperNoise, ReNO and sampling benchmarks (the and PyTorch's).
const hnBatch = 32

// warmSteps are run (and not timed) before the timed steps: the first compiles the graph.
const warmSteps = 3

// hypernetBench is the trained state the ReNO and sampling benchmarks reuse.
type hypernetBench struct {
	model  *family.Model
	mod    hypernoise.Modulator
	reward hypernoise.Reward
	stepMS float64
	cpuMS  float64 // process CPU time per timed step (0 where not measured)
}

// hypernetStep trains the default hypernetwork of model fm (nil: the embedded default; LoRA rank
// 8 on a generator with a backbone, else an MLP of width 64; the model's default reward; AdamW)
// for warmSteps+steps steps and returns the median time of the timed ones.
func hypernetStep(backend backends.Backend, fm *family.Model, steps int) (*hypernetBench, error) {
	if fm == nil {
		fd, err := fashion.Default()
		if err != nil {
			return nil, err
		}
		fm = fashion.ModelOf(fd)
	}
	m := fm.Generator
	opts := pipeline.DefaultTrainOptions()
	reward, err := fm.Rewards.Parse(fm.DefaultReward)
	if err != nil {
		return nil, err
	}
	spec := opts.Modulator // the default: LoRA rank 8 on the student
	if _, ok := m.(hypernoise.Backbone); !ok {
		spec = infer.ModulatorSpec{Kind: infer.KindMLP, Hidden: 64, Layers: 2}
	}
	mod, err := spec.Build(m, "bench_hypernet")
	if err != nil {
		return nil, err
	}
	prob, err := hypernet.NewProblem(m, mod, hypernet.Objective{Reward: reward, Reg: opts.Reg, Weight: opts.RegWeight})
	if err != nil {
		return nil, err
	}
	cfg := opts.Train
	cfg.Steps, cfg.BatchSize, cfg.CheckpointEvery = warmSteps+steps, hnBatch, 0
	var times []float64
	var cpuStart, cpuEnd float64
	last := time.Now()
	report := func(done, _ int, _ string) {
		now := time.Now()
		if done > warmSteps {
			times = append(times, float64(now.Sub(last))/1e6)
		}
		if done == warmSteps {
			cpuStart = processCPUSeconds()
		}
		cpuEnd = processCPUSeconds()
		last = now
	}
	if _, err := hypernet.Train(backend, fm.Context, prob, cfg, report); err != nil {
		return nil, err
	}
	return &hypernetBench{model: fm, mod: mod, reward: reward, stepMS: median(times),
		cpuMS: (cpuEnd - cpuStart) * 1e3 / float64(steps)}, nil
}

// benchNoise is a seeded batch of noises and prompts for generator m.
func benchNoise(m hypernoise.Generator, seed int64) (*tensors.Tensor, *tensors.Tensor) {
	shape := m.NoiseShape()
	d := 1
	for _, s := range shape {
		d *= s
	}
	eps := hypernet.Normal(seed, 1, hnBatch*d)
	prompts := make([]int32, hnBatch)
	for i := range prompts {
		prompts[i] = int32(i % max(1, len(m.Prompts())))
	}
	return tensors.FromFlatDataAndDimensions(eps, append([]int{hnBatch}, shape...)...),
		tensors.FromFlatDataAndDimensions(prompts, hnBatch)
}

// renoIters is the number of ReNO iterations timed per run.
const renoIters = 10

// renoStep times ReNO (published settings, renoIters iterations) on a batch of hnBatch images and
// returns milliseconds per iteration per image (best of 3 runs, after one that compiles).
func renoStep(backend backends.Backend, hn *hypernetBench) (float64, error) {
	cfg := reno.DefaultConfig()
	cfg.Steps = renoIters
	o, err := reno.New(backend, hn.model.Context, hn.model.Generator, hn.reward, cfg)
	if err != nil {
		return 0, err
	}
	defer o.Finalize()
	best := time.Duration(1 << 62)
	for i := range 4 {
		eps, prompts := benchNoise(hn.model.Generator, int64(i))
		start := time.Now()
		if _, err := o.Run(eps, prompts); err != nil {
			return 0, err
		}
		if i > 0 {
			best = min(best, time.Since(start))
		}
	}
	return float64(best) / 1e6 / (renoIters * hnBatch), nil
}

// sampleTime times HyperNoise sampling of hnBatch images with the benchmark's hypernetwork and returns
// milliseconds per image (best of 5, after one that compiles).
func sampleTime(backend backends.Backend, hn *hypernetBench) (float64, error) {
	s, err := hypernet.NewSampler(backend, hn.model.Context, hn.model.Generator, hn.mod)
	if err != nil {
		return 0, err
	}
	defer s.Finalize()
	best := time.Duration(1 << 62)
	for i := range 6 {
		eps, prompts := benchNoise(hn.model.Generator, int64(100+i))
		start := time.Now()
		if _, _, _, err := s.Sample(eps, prompts); err != nil {
			return 0, err
		}
		if i > 0 {
			best = min(best, time.Since(start))
		}
	}
	return float64(best) / 1e6 / hnBatch, nil
}

// randFloat32 is a float32 tensor of N(0,1) entries, reproducible from seed.
func randFloat32(seed uint64, dims ...int) *tensors.Tensor {
	return randtensor.Normal[float32](seed, 3, dims...)
}

// stepTime compiles a training step, runs warmSteps untimed and steps timed, and returns the median
// milliseconds per step.
func stepTime(backend backends.Backend, build func(ctx *context.Context, x, y *graph.Node) *graph.Node,
	x, y *tensors.Tensor, steps int) (ms float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	exec, err := context.NewExec(backend, context.New(), build)
	if err != nil {
		return 0, err
	}
	defer exec.Finalize()
	var times []float64
	for i := range warmSteps + steps {
		start := time.Now()
		out, err := exec.Exec(x, y)
		if err != nil {
			return 0, err
		}
		out[0].FinalizeAll()
		if i >= warmSteps {
			times = append(times, float64(time.Since(start))/1e6)
		}
	}
	return median(times), nil
}

// mlpStepTime: the MLP 784-1024-1024-784 (ReLU), batch 256, mean-square loss, one Adam step.
func mlpStepTime(backend backends.Backend, steps int) (float64, error) {
	build := func(ctx *context.Context, x, target *graph.Node) *graph.Node {
		h := x
		for i, width := range []int{1024, 1024} {
			h = activations.Relu(layers.DenseWithBias(ctx.In(fmt.Sprintf("layer%d", i)), h, width))
		}
		out := layers.DenseWithBias(ctx.In("out"), h, 784)
		loss := graph.ReduceAllMean(graph.Square(graph.Sub(out, target)))
		optimizers.Adam().Done().UpdateGraph(ctx, x.Graph(), loss)
		return loss
	}
	return stepTime(backend, build, randFloat32(1, 256, 784), randFloat32(2, 256, 784), steps)
}

// convStepTime: 28x28x1 images, batch 64, conv3x3(32)+ReLU, conv3x3 stride 2 (64)+ReLU, dense(10),
// softmax cross-entropy, one Adam step; the convolutions are compute.Conv2D (the project's own).
func convStepTime(backend backends.Backend, steps int) (float64, error) {
	build := func(ctx *context.Context, x, labels *graph.Node) *graph.Node {
		g := x.Graph()
		h, cin := x, 1
		for i, l := range []struct{ cout, stride int }{{32, 1}, {64, 2}} {
			lctx := ctx.In(fmt.Sprintf("conv%d", i))
			k := lctx.VariableWithShape("kernel", shapes.Make(dtypes.Float32, 3, 3, cin, l.cout)).ValueGraph(g)
			b := lctx.VariableWithShape("bias", shapes.Make(dtypes.Float32, l.cout)).ValueGraph(g)
			h = activations.Relu(graph.Add(compute.Conv2D(h, k, l.stride), graph.Reshape(b, 1, 1, 1, l.cout)))
			cin = l.cout
		}
		logits := layers.DenseWithBias(ctx.In("head"), graph.Reshape(h, h.Shape().Dimensions[0], -1), 10)
		onehot := graph.OneHot(labels, 10, dtypes.Float32)
		loss := graph.Neg(graph.ReduceAllMean(graph.ReduceSum(graph.Mul(onehot, graph.LogSoftmax(logits)), -1)))
		optimizers.Adam().Done().UpdateGraph(ctx, g, loss)
		return loss
	}
	rng := rand.New(rand.NewPCG(4, 5))
	labels := make([]int32, 64)
	for i := range labels {
		labels[i] = int32(rng.IntN(10))
	}
	return stepTime(backend, build, randFloat32(1, 64, 28, 28, 1), tensors.FromFlatDataAndDimensions(labels, 64), steps)
}
