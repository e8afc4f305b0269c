package fashion

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/data/fashionmnist"
)

// FeatureDim is the size of the held-out classifier's feature vector.
const FeatureDim = 128

// Evaluator scores generated images the way the model card does: alignment accuracy under the
// held-out classifier and the Fréchet distance to the test set in the held-out feature space.
type Evaluator struct {
	backend  backends.Backend
	m        *Model
	heldout  *context.Exec
	TestFeat []float32 // held-out features of the whole test set, [N, FeatureDim]
	TestN    int
	// RealFD is the FD between the first n test images' features and the whole test set's (for the
	// n last used), a floor to read the generators' FDs against.
	RealFD float64
	test   *fashionmnist.Set
}

// Result is the evaluation of one set of generated images.
type Result struct {
	Alignment float64 // fraction classified as their prompt by the held-out classifier
	FD        float64 // Fréchet distance to the test set in held-out feature space
}

// NewEvaluator computes the held-out features of the test set (which needs the data set).
func NewEvaluator(backend backends.Backend, m *Model, dataDir string) (*Evaluator, error) {
	if err := m.Need("heldout"); err != nil {
		return nil, err
	}
	test, err := fashionmnist.Load(dataDir, fashionmnist.Test)
	if err != nil {
		return nil, err
	}
	exec, err := context.NewExec(backend, m.ctx, func(ctx *context.Context, x *Node) (*Node, *Node) {
		return HeldOut(ctx, x)
	})
	if err != nil {
		return nil, err
	}
	outs, err := forward(exec, test.N, 500, func(idx []int) []any { return []any{imagesTensor(test, idx)} })
	if err != nil {
		return nil, err
	}
	return &Evaluator{backend: backend, m: m, heldout: exec, TestFeat: outs[1], TestN: test.N, test: test}, nil
}

// Score evaluates n images [n,28,28,1] generated for the prompts labels.
func (e *Evaluator) Score(images []float32, labels []int32) (Result, error) {
	n := len(labels)
	outs, err := forward(e.heldout, n, 500, func(idx []int) []any {
		return []any{tensors.FromFlatDataAndDimensions(gatherRows(images, Side*Side, idx), len(idx), Side, Side, 1)}
	})
	if err != nil {
		return Result{}, err
	}
	fd, err := FrechetDistance(outs[1], n, e.TestFeat, e.TestN, FeatureDim)
	if err != nil {
		return Result{}, err
	}
	real, err := FrechetDistance(e.TestFeat[:n*FeatureDim], n, e.TestFeat, e.TestN, FeatureDim)
	if err != nil {
		return Result{}, err
	}
	e.RealFD = real
	return Result{Alignment: argmaxAccuracy(outs[0], labels), FD: fd}, nil
}

// EvalNoise returns n noises [n,7,7,4] drawn from N(0, I) with the given seed, and prompts i mod 10.
func EvalNoise(n int, seed uint64) ([]float32, []int32) {
	r := rand.New(rand.NewPCG(seed, 0))
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(i % NumClasses)
	}
	return normals(r, n*LatentDim), labels
}

// Student evaluates n one-step student samples.
func (e *Evaluator) Student(n int, seed uint64) (Result, error) {
	eps, labels := EvalNoise(n, seed)
	imgs, err := GenerateImages(e.backend, e.m, eps, labels, 0)
	if err != nil {
		return Result{}, err
	}
	return e.Score(imgs, labels)
}

// Teacher evaluates n teacher samples with the given Euler steps and guidance.
func (e *Evaluator) Teacher(n int, seed uint64, steps int, guidance float64) (Result, error) {
	eps, labels := EvalNoise(n, seed)
	old := e.m.Guidance
	e.m.Guidance = guidance
	defer func() { e.m.Guidance = old }()
	imgs, err := GenerateImages(e.backend, e.m, eps, labels, steps)
	if err != nil {
		return Result{}, err
	}
	return e.Score(imgs, labels)
}

// GenerateImages generates images [n,28,28,1] (flattened) for noises eps [n,7,7,4] and prompt ids:
// with the one-step student if teacherSteps is 0, otherwise with the teacher's guided ODE
// (m.Guidance) in teacherSteps Euler steps. Batches of at most 256 are run.
func GenerateImages(backend backends.Backend, m *Model, eps []float32, prompts []int32, teacherSteps int) (imgs []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fashion: generating: %v", r)
		}
	}()
	n := len(prompts)
	if len(eps) != n*LatentDim {
		return nil, fmt.Errorf("fashion: %d noise values for %d prompts (want %d per prompt)", len(eps), n, LatentDim)
	}
	for _, p := range prompts {
		if p < 0 || p >= NumClasses {
			return nil, fmt.Errorf("fashion: prompt id %d outside [0,%d)", p, NumClasses)
		}
	}
	need := []string{"autoencoder", "student"}
	if teacherSteps > 0 {
		need = []string{"autoencoder", "teacher"}
	}
	if err := m.Need(need...); err != nil {
		return nil, err
	}
	if teacherSteps < 0 {
		return nil, fmt.Errorf("fashion: teacher steps must be >= 0, got %d", teacherSteps)
	}
	guidance := m.Guidance
	exec, err := context.NewExec(backend, m.ctx, func(ctx *context.Context, e, c *Node) *Node {
		if teacherSteps > 0 {
			return Decode(ctx, TeacherSample(ctx, e, c, teacherSteps, guidance))
		}
		return m.Generate(ctx, e, c)
	})
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	bs := min(n, 256)
	outs, err := forward(exec, n, bs, func(idx []int) []any {
		return []any{tensors.FromFlatDataAndDimensions(gatherRows(eps, LatentDim, idx), len(idx), LatentSide, LatentSide, LatentCh),
			tensors.FromFlatDataAndDimensions(gatherRows(prompts, 1, idx), len(idx))}
	})
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}
