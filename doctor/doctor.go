// Package doctor inspects the machine hypernoise runs on: the compute backend, CPU cores, the
// Fashion-MNIST dataset, the embedded models, and a measured matmul speed.
package doctor

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/compute/pjrt"
)

// Report is what doctor found. Its JSON form is stable.
type Report struct {
	Backend            string  `json:"backend"`
	BackendDescription string  `json:"backend_description"`
	Cores              int     `json:"cores"`
	GoMaxProcs         int     `json:"gomaxprocs"`
	Dataset            Dataset `json:"dataset"`
	Models             Models  `json:"models"`
	Matmul             Matmul  `json:"matmul"`
	// MatrixPath says which matrix product the backend runs (OpenBLAS, pure Go, or the backend's own).
	MatrixPath compute.MatmulInfo `json:"matrix_path"`
	// CUDA says what `--backend cuda` would load (found without loading it), or how to get it.
	CUDA CUDA `json:"cuda"`
}

// Dataset says whether the Fashion-MNIST files are installed and readable.
type Dataset struct {
	Installed bool   `json:"installed"`
	Dir       string `json:"dir"`
	Problem   string `json:"problem,omitempty"`
	Install   string `json:"install,omitempty"`
}

// Models says whether the embedded default models are present in this binary.
type Models struct {
	Present bool     `json:"present"`
	Names   []string `json:"names,omitempty"`
	Bytes   int      `json:"bytes"`
	Problem string   `json:"problem,omitempty"`
}

// Matmul is the measured speed of an n x n by n x n float32 matrix product: 2n^3 / time.
type Matmul struct {
	N       int     `json:"n"`
	Repeats int     `json:"repeats"`
	Seconds float64 `json:"seconds"` // median time of one product over Repeats timed runs
	GFLOPS  float64 `json:"gflops"`
}

// Check builds the report, timing an n x n x n matmul on backend.
func Check(backend backends.Backend, n int) (*Report, error) {
	rep := &Report{
		Backend:            backend.Name(),
		BackendDescription: backend.Description(),
		Cores:              runtime.NumCPU(),
		GoMaxProcs:         runtime.GOMAXPROCS(0),
		Dataset:            checkDataset(),
		Models:             checkModels(),
		MatrixPath:         compute.MatmulPathFor(backend),
		CUDA:               checkCUDA(pjrt.DefaultFinder()),
	}
	mm, err := MatmulSpeed(backend, n)
	if err != nil {
		return nil, err
	}
	rep.Matmul = *mm
	return rep, nil
}

// MatmulSpeed times C = A B for n x n float32 matrices the way the PyTorch anchor script
// (../shared/bench/torch_steps.py) times its own: after the call that compiles the graph, 3 warm-up
// products, then the median of 10 timed ones, reported as 2 n^3 / seconds.
func MatmulSpeed(backend backends.Backend, n int) (m *Matmul, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("matmul on backend %s failed: %v", backend.Name(), r)
		}
	}()
	exec, err := graph.NewExec(backend, func(a, b *graph.Node) *graph.Node { return graph.Dot(a, b) })
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	a := tensors.FromShape(shapes.Make(dtypes.Float32, n, n))
	b := tensors.FromShape(shapes.Make(dtypes.Float32, n, n))
	tensors.MustMutableFlatData(a, func(f []float32) {
		for i := range f {
			f[i] = float32(i%7) * 0.1
		}
	})
	tensors.MustMutableFlatData(b, func(f []float32) {
		for i := range f {
			f[i] = float32(i%5) * 0.1
		}
	})
	const warm, repeats = 4, 10 // the first warm-up call also compiles
	times := make([]time.Duration, 0, repeats)
	for i := range warm + repeats {
		start := time.Now()
		out, err := exec.Exec(a, b)
		if err != nil {
			return nil, err
		}
		_ = out[0].Shape() // results are materialized on return for the local backends
		if i >= warm {
			times = append(times, time.Since(start))
		}
	}
	slices.Sort(times)
	med := times[len(times)/2].Seconds()
	flops := 2 * float64(n) * float64(n) * float64(n)
	return &Matmul{N: n, Repeats: repeats, Seconds: med, GFLOPS: flops / med / 1e9}, nil
}
