//go:build unix

// Command stepcost times one HyperNoise training step's loss and parameter gradient on the
// embedded Fashion default (LoRA rank 8, align reward, batch 32) for the surrogate (kl) and the
// stochastic log-det KL (logdet), alternating the two in one process so that load from other
// programs falls on both alike, and prints the median wall seconds and CPU seconds (user + system,
// all threads: the work done, less sensitive to other programs than wall time) of each, and their
// ratios.
// Usage: go run ./docs/logdet/stepcost [rounds]
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/fashion"
)

func main() {
	rounds := 20
	if len(os.Args) > 1 {
		rounds, _ = strconv.Atoi(os.Args[1])
	}
	if err := run(rounds); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(rounds int) error {
	backend, err := compute.NewBackend("")
	if err != nil {
		return err
	}
	m, err := fashion.Default()
	if err != nil {
		return err
	}
	reward, err := fashion.Rewards(m).Parse("align=1")
	if err != nil {
		return err
	}
	const batch = 32
	execs := map[string]*context.Exec{}
	names := []string{"kl", "logdet"}
	for _, name := range names {
		mod, err := hypernet.NewLoRA(m, 8, 0, "hn_"+name)
		if err != nil {
			return err
		}
		obj := hypernet.Objective{Reward: reward, Reg: hypernet.Regularizer(name), Beta: 0.2, LogDet: hypernet.DefaultLogDet()}
		p, err := hypernet.NewProblem(m, mod, obj)
		if err != nil {
			return err
		}
		execs[name], err = context.NewExec(backend, m.Context(), func(ctx *context.Context, eps, prompts *Node) []*Node {
			loss, _ := p.Loss(ctx, eps, prompts)
			l := ReduceAllMean(loss)
			var vars []*Node
			for v := range ctx.IterVariables() {
				if v.Trainable && len(v.Scope()) > len(p.Scope) && v.Scope()[:len(p.Scope)] == p.Scope {
					vars = append(vars, v.ValueGraph(eps.Graph()))
				}
			}
			out := []*Node{l}
			for _, g := range Gradient(l, vars...) {
				out = append(out, ConvertDType(ReduceAllSum(Square(g)), dtypes.Float32))
			}
			return out
		})
		if err != nil {
			return err
		}
	}
	times, cpu := map[string][]float64{}, map[string][]float64{}
	for r := -1; r < rounds; r++ { // round -1 compiles
		eps := hypernet.NoiseTensor(int64(r+2), 1, batch, m.NoiseShape())
		ids := hypernet.PromptIDs(int64(r+2), 2, batch, len(m.Prompts()))
		for _, name := range names {
			t0, c0 := time.Now(), cpuSeconds()
			if _, err := execs[name].Exec(eps, ids); err != nil {
				return err
			}
			if r >= 0 {
				times[name] = append(times[name], time.Since(t0).Seconds())
				cpu[name] = append(cpu[name], cpuSeconds()-c0)
			}
		}
	}
	med := func(xs []float64) float64 { sort.Float64s(xs); return xs[len(xs)/2] }
	kl, ld := med(times["kl"]), med(times["logdet"])
	ckl, cld := med(cpu["kl"]), med(cpu["logdet"])
	fmt.Printf("loss+gradient, batch %d, median of %d alternating rounds: wall kl %.3f s, logdet %.3f s, ratio %.2f; CPU kl %.3f s, logdet %.3f s, ratio %.2f\n",
		batch, rounds, kl, ld, ld/kl, ckl, cld, cld/ckl)
	return nil
}

// cpuSeconds is the process's user + system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
