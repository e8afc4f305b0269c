package main

import (
	"fmt"

	"github.com/hypernoise/hypernoise/cli"
	"github.com/hypernoise/hypernoise/doctor"
)

func init() {
	commands = append(commands, cli.Command{
		Name:    "doctor",
		Summary: "check this machine: backend, cores, dataset, embedded models, matmul speed",
		Run:     runDoctor,
	})
}

func runDoctor(env *cli.Env, args []string) error {
	fs := env.FlagSet("doctor", `Usage: hypernoise doctor [--json] [--backend NAME]

Prints the compute backend in use, the CPU cores, whether the Fashion-MNIST dataset is installed
(and the apt command if not), whether the embedded models are present, which matrix product runs\n(OpenBLAS or the slow pure-Go one, with the command that gets the fast one), and a quick matmul figure.`)
	backendName := cli.BackendFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object")
	size := fs.Int("matmul-size", 512, "side n of the n x n x n float32 matmul timed for the GFLOP/s figure")
	if err := env.Parse(fs, args, false); err != nil {
		return err
	}
	if *size < 16 || *size > 8192 {
		return cli.Usagef("--matmul-size must be in [16, 8192], got %d", *size)
	}
	backend, err := cli.Backend(*backendName)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	rep, err := doctor.Check(backend, *size)
	if err != nil {
		return err
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, rep)
	}
	w := env.Stdout
	fmt.Fprintf(w, "backend:        %s (%s)\n", rep.Backend, rep.BackendDescription)
	fmt.Fprintf(w, "cpu cores:      %d (GOMAXPROCS %d)\n", rep.Cores, rep.GoMaxProcs)
	if rep.Dataset.Installed {
		fmt.Fprintf(w, "fashion-mnist:  installed at %s\n", rep.Dataset.Dir)
	} else {
		fmt.Fprintf(w, "fashion-mnist:  not installed (%s); install with: %s\n", rep.Dataset.Problem, rep.Dataset.Install)
	}
	if rep.Models.Present {
		fmt.Fprintf(w, "embedded models: %d present (%.1f MB)\n", len(rep.Models.Names), float64(rep.Models.Bytes)/1e6)
	} else {
		fmt.Fprintf(w, "embedded models: missing (%s)\n", rep.Models.Problem)
	}
	switch mp := rep.MatrixPath; {
	case mp.Fast && mp.Library != "":
		fmt.Fprintf(w, "matrix path:    fast (%s), large products on %d core(s)\n", mp.Library, mp.Cores)
		if mp.Faster != "" {
			fmt.Fprintf(w, "                float32 products and convolutions not on oneDNN: %s\n", mp.Faster)
		}
	case mp.Fast:
		fmt.Fprintf(w, "matrix path:    the %s backend's own\n", mp.Path)
	default:
		fmt.Fprintf(w, "matrix path:    SLOW, %s (%s)\n", mp.Path, mp.Reason)
	}
	printCUDA(w, rep.CUDA)
	fmt.Fprintf(w, "matmul %dx%dx%d: %.2f GFLOP/s (median of %d)\n", rep.Matmul.N, rep.Matmul.N, rep.Matmul.N, rep.Matmul.GFLOPS, rep.Matmul.Repeats)
	return nil
}
