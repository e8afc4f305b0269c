// Command gradprobe measures the pathwise reward gradient dr/deps on a model (issue 19, docs/convergence.md:
// the small T2I fixture): usage gradprobe SPEC N. For each prompt, N noises (seed 77): the reward's
// spread, the mean norm of the per-sample gradient, the norm of their mean and their mean pairwise
// cosine; then the mean reward over fresh noises (seed 99) shifted by a per-prompt constant, scale
// times that prompt's mean gradient; then the cosines between the prompts' mean gradients.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	_ "github.com/hypernoise/hypernoise/models"
	"github.com/hypernoise/hypernoise/rewards"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"
)

// chunk is the batch of every call.
const chunk = 4

// optimumScale is 1/beta in the reward's units for the study's `--reward-norm std --beta 0.1`
// (beta 0.1 times the spread 5.239): the surrogate's optimum shift for a linear reward is the
// reward's gradient over beta.
const optimumScale = 1.908

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gradprobe SPEC N (N a positive multiple of 4)")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < chunk || n%chunk != 0 {
		fmt.Fprintln(os.Stderr, "gradprobe: N must be a positive multiple of 4, got", os.Args[2])
		os.Exit(2)
	}
	backend, err := cli.Backend("")
	must(err)
	m, err := family.Load(os.Args[1], backend)
	must(err)
	rw, err := m.Rewards.Parse("clip=1")
	must(err)
	gen := m.Generator
	d := 1
	for _, s := range gen.NoiseShape() {
		d *= s
	}
	means := promptGradients(backend, m.Context, gen, rw, n, d)
	shiftedRewards(backend, m.Context, gen, rw, n, d, means)
	printCosines(means)
}

// batch is chunk noises of seed seed, stream base (plus shift, added to each) and prompt c.
func batch(seed int64, base uint64, d int, shape []int, shift []float64, c int) (*tensors.Tensor, *tensors.Tensor) {
	eps := hypernet.Normal(seed, base, chunk*d)
	for i := range eps {
		if shift != nil {
			eps[i] += float32(shift[i%d])
		}
	}
	pr := make([]int32, chunk)
	for i := range pr {
		pr[i] = int32(c)
	}
	return tensors.FromFlatDataAndDimensions(eps, append([]int{chunk}, shape...)...), tensors.FromFlatDataAndDimensions(pr, chunk)
}

// promptGradients prints, per prompt, the reward's mean and spread over n noises (seed 77), the
// mean norm of the per-sample gradients dr/deps, the norm of their mean and their mean pairwise
// cosine, and returns each prompt's mean gradient.
func promptGradients(backend backends.Backend, mctx *context.Context, gen hypernoise.Generator, rw *rewards.Sum, n, d int) [][]float64 {
	exec, err := context.NewExec(backend, mctx, func(ctx *context.Context, eps, prompts *graph.Node) []*graph.Node {
		r := rw.Score(ctx, gen.Generate(ctx, eps, prompts), prompts)
		return []*graph.Node{r, graph.Gradient(graph.ReduceAllSum(r), eps)[0]}
	})
	must(err)
	means := make([][]float64, len(gen.Prompts()))
	for c := range means {
		var grads [][]float64
		var rs []float64
		for k := 0; k < n; k += chunk {
			eps, pr := batch(77, uint64(1000*c+k), d, gen.NoiseShape(), nil, c)
			outs, err := exec.Exec(eps, pr)
			must(err)
			r, g := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
			for i := range chunk {
				v := make([]float64, d)
				for j := range v {
					v[j] = float64(g[i*d+j])
				}
				grads, rs = append(grads, v), append(rs, float64(r[i]))
			}
		}
		mean := make([]float64, d)
		var normSum, cosSum float64
		pairs := 0
		for i, g := range grads {
			normSum += floats.Norm(g, 2)
			floats.AddScaled(mean, 1/float64(len(grads)), g)
			for _, h := range grads[i+1:] {
				cosSum += cosine(g, h)
				pairs++
			}
		}
		mu, sd := stat.MeanStdDev(rs, nil)
		means[c] = mean
		fmt.Printf("prompt %d: r mean %.3f sd %.3f | |g| mean %.3f | |mean g| %.3f | mean pairwise cos %.3f\n",
			c, mu, sd, normSum/float64(len(grads)), floats.Norm(mean, 2), cosSum/float64(pairs))
	}
	return means
}

// shiftedRewards prints the mean reward over prompts of n fresh noises per prompt (seed 99), each
// shifted by a per-prompt constant: scale times that prompt's mean gradient.
func shiftedRewards(backend backends.Backend, mctx *context.Context, gen hypernoise.Generator, rw *rewards.Sum, n, d int, means [][]float64) {
	exec, err := context.NewExec(backend, mctx, func(ctx *context.Context, eps, prompts *graph.Node) *graph.Node {
		return rw.Score(ctx, gen.Generate(ctx, eps, prompts), prompts)
	})
	must(err)
	for _, sc := range []float64{0, 1, optimumScale, 3} {
		tot := 0.0
		for c, mean := range means {
			shift := make([]float64, d)
			floats.AddScaled(shift, sc, mean)
			for k := 0; k < n; k += chunk {
				eps, pr := batch(99, uint64(1000*c+k), d, gen.NoiseShape(), shift, c)
				out, err := exec.Exec(eps, pr)
				must(err)
				for _, v := range tensors.MustCopyFlatData[float32](out[0]) {
					tot += float64(v) / float64(n)
				}
			}
		}
		fmt.Printf("shift scale %.3f: mean reward over prompts %.4f\n", sc, tot/float64(len(means)))
	}
}

// printCosines prints the cosines between the prompts' mean gradients and their off-diagonal mean.
func printCosines(means [][]float64) {
	fmt.Println("cos between prompts' mean gradients:")
	var off float64
	np := len(means)
	for a := range means {
		for b := range means {
			c := cosine(means[a], means[b])
			fmt.Printf(" %6.3f", c)
			if a != b {
				off += c
			}
		}
		fmt.Println()
	}
	fmt.Printf("mean off-diagonal cos %.3f\n", off/float64(np*(np-1)))
}

func cosine(a, b []float64) float64 { return floats.Dot(a, b) / floats.Norm(a, 2) / floats.Norm(b, 2) }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
