// Command gradprobe measures the pathwise reward gradient dr/deps on a model (issue 19, docs/convergence.md:
// the small T2I fixture): usage gradprobe SPEC N. For each prompt, N noises (seed 77): the reward's
// spread, the mean norm of the per-sample gradient, the norm of their mean and their mean pairwise
// cosine; then the mean reward over fresh noises (seed 99) shifted by a per-prompt constant, scale
// times that prompt's mean gradient; then the cosines between the prompts' mean gradients.
package main

import (
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	_ "github.com/hypernoise/hypernoise/models"
)

func main() {
	n, _ := strconv.Atoi(os.Args[2])
	backend, err := cli.Backend("")
	must(err)
	m, err := family.Load(os.Args[1], backend)
	must(err)
	rw, err := m.Rewards.Parse("clip=1")
	must(err)
	gen := m.Generator
	shape := gen.NoiseShape()
	d := 1
	for _, s := range shape {
		d *= s
	}
	np := len(gen.Prompts())
	exec, err := context.NewExec(backend, m.Context, func(ctx *context.Context, eps, prompts *graph.Node) []*graph.Node {
		r := rw.Score(ctx, gen.Generate(ctx, eps, prompts), prompts)
		g := graph.Gradient(graph.ReduceAllSum(r), eps)[0]
		return []*graph.Node{r, g}
	})
	must(err)
	const chunk = 4
	means := make([][]float64, np)
	for c := 0; c < np; c++ {
		grads := make([][]float64, 0, n)
		rs := []float64{}
		for k := 0; k < n; k += chunk {
			eps := hypernet.Normal(77, uint64(1000*c+k), chunk*d)
			pr := make([]int32, chunk)
			for i := range pr {
				pr[i] = int32(c)
			}
			outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(eps, append([]int{chunk}, shape...)...), tensors.FromFlatDataAndDimensions(pr, chunk))
			must(err)
			r := tensors.MustCopyFlatData[float32](outs[0])
			g := tensors.MustCopyFlatData[float32](outs[1])
			for i := 0; i < chunk; i++ {
				v := make([]float64, d)
				for j := range v {
					v[j] = float64(g[i*d+j])
				}
				grads = append(grads, v)
				rs = append(rs, float64(r[i]))
			}
		}
		mean := make([]float64, d)
		var normSum float64
		for _, g := range grads {
			normSum += norm(g)
			for j := range mean {
				mean[j] += g[j] / float64(len(grads))
			}
		}
		var cosSum float64
		cnt := 0
		for i := range grads {
			for j := i + 1; j < len(grads); j++ {
				cosSum += dot(grads[i], grads[j]) / norm(grads[i]) / norm(grads[j])
				cnt++
			}
		}
		mu, sd := meansd(rs)
		// linear prediction of the reward: r_i - mu ~ mean . eps_i, correlation
		means[c] = mean
		fmt.Printf("prompt %d: r mean %.3f sd %.3f | |g| mean %.3f | |mean g| %.3f | mean pairwise cos %.3f\n", c, mu, sd, normSum/float64(len(grads)), norm(mean), cosSum/float64(cnt))
	}
	// oracle: a per-prompt constant shift f_c = s * mean gradient, on fresh noises.
	evalExec, err := context.NewExec(backend, m.Context, func(ctx *context.Context, eps, prompts *graph.Node) *graph.Node {
		return rw.Score(ctx, gen.Generate(ctx, eps, prompts), prompts)
	})
	must(err)
	for _, sc := range []float64{0, 1, 1.908, 3} {
		tot := 0.0
		for c := 0; c < np; c++ {
			sum := 0.0
			for k := 0; k < n; k += chunk {
				eps := hypernet.Normal(99, uint64(1000*c+k), chunk*d)
				for i := 0; i < chunk; i++ {
					for j := 0; j < d; j++ {
						eps[i*d+j] += float32(sc * means[c][j])
					}
				}
				pr := make([]int32, chunk)
				for i := range pr {
					pr[i] = int32(c)
				}
				out, err := evalExec.Exec(tensors.FromFlatDataAndDimensions(eps, append([]int{chunk}, shape...)...), tensors.FromFlatDataAndDimensions(pr, chunk))
				must(err)
				for _, v := range tensors.MustCopyFlatData[float32](out[0]) {
					sum += float64(v)
				}
			}
			tot += sum / float64(n)
		}
		fmt.Printf("shift scale %.3f: mean reward over prompts %.4f\n", sc, tot/float64(np))
	}
	fmt.Println("cos between prompts' mean gradients:")
	var off float64
	for a := 0; a < np; a++ {
		for b := 0; b < np; b++ {
			c := dot(means[a], means[b]) / norm(means[a]) / norm(means[b])
			fmt.Printf(" %6.3f", c)
			if a != b {
				off += c
			}
		}
		fmt.Println()
	}
	fmt.Printf("mean off-diagonal cos %.3f\n", off/float64(np*(np-1)))
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}
func norm(a []float64) float64 { return math.Sqrt(dot(a, a)) }
func meansd(x []float64) (float64, float64) {
	m := 0.0
	for _, v := range x {
		m += v
	}
	m /= float64(len(x))
	s := 0.0
	for _, v := range x {
		s += (v - m) * (v - m)
	}
	return m, math.Sqrt(s / float64(len(x)-1))
}
func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
