package compute

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	timage "github.com/gomlx/gomlx/pkg/core/tensors/images"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/hypernoise/hypernoise/internal/randtensor"
)

// Benchmarks (run one at a time, e.g. go test -run XXX -bench . -benchtime=3x ./compute/):
//
//	BenchmarkMatmul1024       1024³ float32 matrix product: GFLOP/s
//	BenchmarkMLPStep          784-1024-1024-784 MLP, batch 256, forward+backward+Adam: GoMLX's matmul
//	                          gradient ("stock") vs this package's ("fixed")
//	BenchmarkConvNetStep      28x28x1 images, batch 64, conv3x3(32) - conv3x3/2(64) - dense(10), softmax
//	                          cross-entropy, one Adam step: graph.Convolve vs Conv2D
//
// Each reports s/step (or GFLOP/s); the second variant also reports its speed-up over the first when both
// ran in the same process.

// randFloat32 is a float32 tensor of N(0,1) entries, reproducible from seed.
func randFloat32(seed uint64, dims ...int) *tensors.Tensor {
	return randtensor.Normal[float32](seed, 3, dims...)
}

func benchBackend(b *testing.B) backends.Backend {
	backend, err := NewBackend(PatchedName)
	if err != nil {
		b.Fatal(err)
	}
	return backend
}

func BenchmarkMatmul1024(b *testing.B) {
	const n = 1024
	backend := benchBackend(b)
	exec, err := graph.NewExec(backend, func(x, y *graph.Node) *graph.Node { return graph.Dot(x, y) })
	if err != nil {
		b.Fatal(err)
	}
	x, y := randFloat32(1, n, n), randFloat32(2, n, n)
	if _, err := exec.Exec(x, y); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		out, err := exec.Exec(x, y)
		if err != nil {
			b.Fatal(err)
		}
		out[0].FinalizeAll()
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// stepBench builds a training step with build (which must add the loss and run the optimizer), compiles
// it outside the timer, and reports seconds per step.
func stepBench(b *testing.B, backend backends.Backend, ctx *context.Context,
	build func(ctx *context.Context, x, y *graph.Node) *graph.Node, x, y *tensors.Tensor) float64 {
	exec, err := context.NewExec(backend, ctx, build)
	if err != nil {
		b.Fatal(err)
	}
	defer exec.Finalize()
	if _, err := exec.Exec(x, y); err != nil { // build, compile, initialise variables
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		out, err := exec.Exec(x, y)
		if err != nil {
			b.Fatal(err)
		}
		out[0].FinalizeAll()
	}
	b.StopTimer()
	perStep := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perStep, "s/step")
	b.ReportMetric(0, "ns/op")
	return perStep
}

func mlpStep(ctx *context.Context, x, target *graph.Node) *graph.Node {
	g := x.Graph()
	h := x
	for i, width := range []int{1024, 1024} {
		h = activations.Relu(layers.DenseWithBias(ctx.In("layer").In(string(rune('0'+i))), h, width))
	}
	out := layers.DenseWithBias(ctx.In("out"), h, 784)
	loss := graph.ReduceAllMean(graph.Square(graph.Sub(out, target)))
	optimizers.Adam().Done().UpdateGraph(ctx, g, loss)
	return loss
}

func BenchmarkMLPStep(b *testing.B) {
	backend := benchBackend(b)
	x, y := randFloat32(1, 256, 784), randFloat32(2, 256, 784)
	var stock float64
	b.Run("stock", func(b *testing.B) {
		restore := useStockMatmulVJP(true)
		defer restore()
		stock = stepBench(b, backend, context.New(), mlpStep, x, y)
	})
	b.Run("fixed", func(b *testing.B) {
		restore := useStockMatmulVJP(false)
		defer restore()
		fixed := stepBench(b, backend, context.New(), mlpStep, x, y)
		if stock > 0 {
			b.ReportMetric(stock/fixed, "x-speedup")
		}
	})
}

// convNetStep returns a training step for the small conv net using conv for both convolutions.
func convNetStep(conv func(x, k *graph.Node, stride int) *graph.Node) func(ctx *context.Context, x, labels *graph.Node) *graph.Node {
	return func(ctx *context.Context, x, labels *graph.Node) *graph.Node {
		g := x.Graph()
		h := x
		cin := 1
		for i, layer := range []struct{ cout, stride int }{{32, 1}, {64, 2}} {
			lctx := ctx.In("conv").In(string(rune('0' + i)))
			k := lctx.VariableWithShape("kernel", shapes.Make(dtypes.Float32, 3, 3, cin, layer.cout)).ValueGraph(g)
			bias := lctx.VariableWithShape("bias", shapes.Make(dtypes.Float32, layer.cout)).ValueGraph(g)
			h = activations.Relu(graph.Add(conv(h, k, layer.stride), graph.Reshape(bias, 1, 1, 1, layer.cout)))
			cin = layer.cout
		}
		h = graph.Reshape(h, h.Shape().Dimensions[0], -1)
		logits := layers.DenseWithBias(ctx.In("head"), h, 10)
		onehot := graph.OneHot(labels, 10, dtypes.Float32)
		loss := graph.Neg(graph.ReduceAllMean(graph.ReduceSum(graph.Mul(onehot, graph.LogSoftmax(logits)), -1)))
		optimizers.Adam().Done().UpdateGraph(ctx, g, loss)
		return loss
	}
}

func stockConvolve(x, k *graph.Node, stride int) *graph.Node {
	return graph.Convolve(x, k).ChannelsAxis(timage.ChannelsLast).Strides(stride).PadSame().Done()
}

func BenchmarkConvNetStep(b *testing.B) {
	backend := benchBackend(b)
	x := randFloat32(1, 64, 28, 28, 1)
	rng := rand.New(rand.NewPCG(4, 5))
	labels := make([]int32, 64)
	for i := range labels {
		labels[i] = int32(rng.IntN(10))
	}
	y := tensors.FromFlatDataAndDimensions(labels, 64)
	var stock float64
	b.Run("graph.Convolve", func(b *testing.B) {
		stock = stepBench(b, backend, context.New(), convNetStep(stockConvolve), x, y)
	})
	b.Run("Conv2D", func(b *testing.B) {
		fixed := stepBench(b, backend, context.New(), convNetStep(Conv2D), x, y)
		if stock > 0 {
			b.ReportMetric(stock/fixed, "x-speedup")
		}
	})
}
