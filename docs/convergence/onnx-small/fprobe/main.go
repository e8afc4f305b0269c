// Command fprobe measures how much a trained hypernetwork's modulation f(eps, c) varies with the noise
// within a prompt, and what that variation is worth (issue 19, docs/convergence.md: the small T2I
// fixture): usage fprobe SPEC HYPERNET_DIR N. For each prompt c, N noises (seed 77, the
// gradient probe's): mean |f|^2/D, |f_c|^2/D with f_c the prompt's mean f (the per-prompt constant
// part) and the rest, mean |f - f_c|^2/D; then the mean reward over all prompts at eps (base), at
// eps + f (the hypernetwork) and at eps + f_c (its per-prompt constant part alone).
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	_ "github.com/hypernoise/hypernoise/models"
)

// chunk is the batch of every call.
const chunk = 4

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: fprobe SPEC HYPERNET_DIR N (N a positive multiple of 4)")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[3])
	if err != nil || n < chunk || n%chunk != 0 {
		fmt.Fprintln(os.Stderr, "fprobe: N must be a positive multiple of 4, got", os.Args[3])
		os.Exit(2)
	}
	backend, err := cli.Backend("")
	must(err)
	m, err := family.Load(os.Args[1], backend)
	must(err)
	p, err := infer.New(backend, m, chunk)
	must(err)
	hn, err := p.LoadHypernet(os.Args[2])
	must(err)
	gen, mod := m.Generator, hn.Modulator
	fExec, err := context.NewExec(backend, m.Context, func(ctx *context.Context, eps, prompts *graph.Node) *graph.Node {
		return mod.Residual(ctx, eps, prompts)
	})
	must(err)
	rExec, err := context.NewExec(backend, m.Context, func(ctx *context.Context, eps, prompts *graph.Node) *graph.Node {
		return hn.Reward.Score(ctx, gen.Generate(ctx, eps, prompts), prompts)
	})
	must(err)
	shape := gen.NoiseShape()
	d := 1
	for _, s := range shape {
		d *= s
	}
	var rBase, rFull, rConst float64
	total := 0
	for c := range gen.Prompts() {
		epss := make([][]float32, 0, n)
		fs := make([][]float32, 0, n)
		for k := 0; k < n; k += chunk {
			eps, pr := batch(uint64(1000*c+k), d, shape, c)
			out, err := fExec.Exec(eps, pr)
			must(err)
			f := tensors.MustCopyFlatData[float32](out[0])
			e := tensors.MustCopyFlatData[float32](eps)
			for i := range chunk {
				epss, fs = append(epss, e[i*d:(i+1)*d]), append(fs, f[i*d:(i+1)*d])
			}
		}
		fc := make([]float64, d)
		for _, f := range fs {
			for j, v := range f {
				fc[j] += float64(v) / float64(n)
			}
		}
		var sq, rest, cst float64
		for _, f := range fs {
			for j, v := range f {
				sq += float64(v) * float64(v) / float64(n*d)
				dv := float64(v) - fc[j]
				rest += dv * dv / float64(n*d)
			}
		}
		for _, v := range fc {
			cst += v * v / float64(d)
		}
		fmt.Printf("prompt %d: mean |f|^2/D %.5f = |f_c|^2/D %.5f + mean |f - f_c|^2/D %.5f (noise-dependent share %.2f)\n",
			c, sq, cst, rest, rest/sq)
		for k := 0; k < n; k += chunk {
			for variant, acc := range []*float64{&rBase, &rFull, &rConst} {
				flat := make([]float32, chunk*d)
				for i := range chunk {
					for j := range d {
						v := epss[k+i][j]
						switch variant {
						case 1:
							v += fs[k+i][j]
						case 2:
							v += float32(fc[j])
						}
						flat[i*d+j] = v
					}
				}
				pr := make([]int32, chunk)
				for i := range pr {
					pr[i] = int32(c)
				}
				out, err := rExec.Exec(tensors.FromFlatDataAndDimensions(flat, append([]int{chunk}, shape...)...),
					tensors.FromFlatDataAndDimensions(pr, chunk))
				must(err)
				for _, r := range tensors.MustCopyFlatData[float32](out[0]) {
					*acc += float64(r)
				}
			}
		}
		total += n
	}
	fmt.Printf("mean reward over %d noises: base %.4f | eps + f %.4f | eps + f_c (per-prompt constant part) %.4f\n",
		total, rBase/float64(total), rFull/float64(total), rConst/float64(total))
}

// batch is chunk noises of seed 77, stream base, and prompt c.
func batch(base uint64, d int, shape []int, c int) (*tensors.Tensor, *tensors.Tensor) {
	eps := hypernet.Normal(77, base, chunk*d)
	pr := make([]int32, chunk)
	for i := range pr {
		pr[i] = int32(c)
	}
	return tensors.FromFlatDataAndDimensions(eps, append([]int{chunk}, shape...)...), tensors.FromFlatDataAndDimensions(pr, chunk)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fprobe:", err)
		os.Exit(1)
	}
}
