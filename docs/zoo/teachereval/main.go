// Command teachereval scores a Fashion weights folder's teacher (or one-step student) like the
// training runs do: 1000 samples (100 per prompt, seed fashion.EvalSeed), held-out alignment and FD
// to the test set in the held-out classifier's feature space. Each argument is STEPS:W, the
// teacher with STEPS Euler steps at guidance W, or 0:0 for the student. It gives the model card's
// figures that figures.json does not hold (the teacher at w = 1, or with 32 steps).
// Usage: go run ./docs/zoo/teachereval DIR STEPS:W...   (needs dataset-fashion-mnist)
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/models/fashion"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "teachereval:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: teachereval DIR STEPS:W... (0:0 = the student)")
	}
	type spec struct {
		steps int
		w     float64
	}
	var specs []spec
	for _, a := range args[1:] {
		s, w, ok := strings.Cut(a, ":")
		steps, err1 := strconv.Atoi(s)
		g, err2 := strconv.ParseFloat(w, 64)
		if !ok || err1 != nil || err2 != nil || steps < 0 {
			return fmt.Errorf("%q is not STEPS:W", a)
		}
		specs = append(specs, spec{steps, g})
	}
	backend, err := compute.NewBackend("")
	if err != nil {
		return err
	}
	defer backend.Finalize()
	m, err := fashion.Load(args[0])
	if err != nil {
		return err
	}
	ev, err := fashion.NewEvaluator(backend, m, "")
	if err != nil {
		return err
	}
	for _, sp := range specs {
		var r fashion.Result
		if sp.steps == 0 {
			r, err = ev.Student(fashion.EvalSamples, fashion.EvalSeed)
		} else {
			r, err = ev.Teacher(fashion.EvalSamples, fashion.EvalSeed, sp.steps, sp.w)
		}
		if err != nil {
			return err
		}
		what := "student (1 step)"
		if sp.steps > 0 {
			what = fmt.Sprintf("teacher, %d Euler steps, guidance %g", sp.steps, sp.w)
		}
		fmt.Printf("%s: FD %.2f, held-out alignment %.3f (real-vs-real %.2f; %d samples)\n", what, r.FD, r.Alignment, ev.RealFD, fashion.EvalSamples)
	}
	return nil
}
