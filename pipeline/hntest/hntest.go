// Package hntest makes hypernetwork folders for tests without training: a LoRA modulator on the
// embedded generator whose adapters are set to small random values (so f(eps, c) != 0), saved
// in the format pipeline.Train writes. It costs one forward graph, not a training run,
// which keeps tests cheap under -race.
package hntest

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/pipeline"
)

// base is the pure-Go backend and the embedded generator.
func base(t testing.TB) (backends.Backend, *fashion.Model) {
	t.Helper()
	backend, err := compute.NewBackend("")
	if err != nil {
		t.Fatal(err)
	}
	m, err := fashion.Default()
	if err != nil {
		t.Fatal(err)
	}
	return backend, m
}

// Folder writes a hypernetwork folder dir/name for reward spec with random adapters drawn from
// seed (scale 0.1) and returns its path.
func Folder(t testing.TB, dir, name, spec string, seed uint64) string {
	t.Helper()
	backend, m := base(t)
	ms := infer.ModulatorSpec{Kind: infer.KindLoRA, Rank: 2}
	mod, err := ms.Build(m, infer.SavedScope)
	if err != nil {
		t.Fatal(err)
	}
	s, err := hypernet.NewSampler(backend, m.Context(), m, mod) // building it creates the adapters
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Sample(hypernoise.Noise(0, 1, m.NoiseShape()), tensors.FromValue([]int32{0})); err != nil {
		t.Fatal(err)
	}
	s.Finalize()
	r := rand.New(rand.NewPCG(seed, 1))
	scope := "/" + infer.SavedScope
	for v := range m.Context().IterVariables() {
		if v.DType() != dtypes.Float32 || len(v.Scope()) < len(scope) || v.Scope()[:len(scope)] != scope {
			continue
		}
		vals := make([]float32, v.Shape().Size())
		for i := range vals {
			vals[i] = float32(0.1 * r.NormFloat64())
		}
		v.MustSetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...))
	}
	out := filepath.Join(dir, name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	train := hypernet.DefaultAdamW()
	cfg := infer.Config{Format: infer.ConfigFormat, Generator: m.Name(), BaseHash: fashion.ModelOf(m).Hash,
		RewardSpec: spec, Modulator: ms, Reg: hypernet.RegMeanSquare, RegWeight: 0.5, Train: train}
	if err := hypernet.SaveWeights(m.Context(), scope, filepath.Join(out, infer.WeightsFile), cfg); err != nil {
		t.Fatal(err)
	}
	return out
}

// Pipeline is an inference pipeline on the embedded generator (pure-Go backend) with the
// hypernetwork folders dirs loaded; it is closed when the test ends.
func Pipeline(t testing.TB, dirs ...string) *infer.Pipeline {
	t.Helper()
	backend, m := base(t)
	folders, err := infer.OpenFolders(dirs...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.NewPipeline(backend, fashion.ModelOf(m), folders...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
