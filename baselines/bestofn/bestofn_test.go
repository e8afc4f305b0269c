package bestofn

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/testgen"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// TestKeepsBest compares with a brute-force host computation: generate every candidate, score it
// with r(x) = x0 - 2 x1, keep the argmax.
func TestKeepsBest(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	gen := testgen.MLP{}
	const B, N = 5, 3
	eps := hypernet.NoiseTensor(4, 1, B*N, []int{2})
	flat := tensors.MustCopyFlatData[float32](eps)
	prompts := tensors.FromFlatDataAndDimensions(make([]int32, B*N), B*N)
	base, err := hypernet.NewSampler(b, ctx, gen, nil)
	if err != nil {
		t.Fatal(err)
	}
	xAll, _, _, err := base.Sample(eps, prompts)
	if err != nil {
		t.Fatal(err)
	}
	xs := tensors.MustCopyFlatData[float32](xAll)

	s, err := New(b, ctx, gen, testgen.Linear(1, -2), N)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.SampleCandidates(tensors.FromFlatDataAndDimensions(flat, B, N, 2), tensors.FromFlatDataAndDimensions(make([]int32, B), B))
	if err != nil {
		t.Fatal(err)
	}
	gotX := tensors.MustCopyFlatData[float32](res.X)
	gotE := tensors.MustCopyFlatData[float32](res.Eps)
	for i := range B {
		best, bestR := 0, math.Inf(-1)
		for n := range N {
			k := i*N + n
			r := float64(xs[2*k]) - 2*float64(xs[2*k+1])
			if r > bestR {
				best, bestR = n, r
			}
		}
		k := i*N + best
		if math.Abs(float64(res.Reward[i])-bestR) > 1e-5 || gotX[2*i] != xs[2*k] || gotX[2*i+1] != xs[2*k+1] ||
			gotE[2*i] != flat[2*k] || gotE[2*i+1] != flat[2*k+1] {
			t.Errorf("sample %d: kept reward %g x (%g, %g), want candidate %d with reward %g x (%g, %g)",
				i, res.Reward[i], gotX[2*i], gotX[2*i+1], best, bestR, xs[2*k], xs[2*k+1])
		}
	}
	if res.Cost.Forward != N || res.Cost.Backward != 0 || res.Cost.NFE() != N {
		t.Errorf("cost %+v, want %d forward passes", res.Cost, N)
	}
}

func TestErrors(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	if _, err := New(b, ctx, testgen.MLP{}, testgen.Linear(1, 0), 0); err == nil || !strings.Contains(err.Error(), "must be positive") {
		t.Errorf("N = 0: %v", err)
	}
	s, err := New(b, ctx, testgen.MLP{}, testgen.Linear(1, 0), 2)
	if err != nil {
		t.Fatal(err)
	}
	bad := hypernet.NoiseTensor(1, 1, 3, []int{4, 2}) // N = 4, not 2
	if _, err := s.SampleCandidates(bad, tensors.FromFlatDataAndDimensions(make([]int32, 3), 3)); err == nil {
		t.Error("wrong candidate count accepted")
	}
}

// TestDerivedCandidates checks Sample against SampleCandidates on the candidates it documents
// (candidate 0 = the given noise, then Candidates(eps_i)), and that the chunk size (rows per
// compiled call) changes nothing.
func TestDerivedCandidates(t *testing.T) {
	b := testutil.Backend(t)
	ctx := testgen.Seeded(1)
	gen := testgen.MLP{}
	const B, N = 7, 5
	eps := hypernet.NoiseTensor(9, 1, B, []int{2})
	flat := tensors.MustCopyFlatData[float32](eps)
	prompts := tensors.FromFlatDataAndDimensions(make([]int32, B), B)
	all := make([]float32, 0, B*N*2)
	extra := make([]float32, (N-1)*2)
	for i := range B {
		Candidates(flat[2*i:2*i+2], extra)
		all = append(all, flat[2*i:2*i+2]...)
		all = append(all, extra...)
	}
	ref, err := New(b, ctx, gen, testgen.Linear(1, -2), N)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Finalize()
	want, err := ref.SampleCandidates(tensors.FromFlatDataAndDimensions(all, B, N, 2), prompts)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1, 3, 64} {
		s, err := NewShared(b, ctx, nil, chunk, gen, testgen.Linear(1, -2), N)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Sample(eps, prompts)
		s.Finalize()
		if err != nil {
			t.Fatal(err)
		}
		wx, gx := tensors.MustCopyFlatData[float32](want.X), tensors.MustCopyFlatData[float32](got.X)
		for i := range wx {
			if math.Abs(float64(wx[i]-gx[i])) > 1e-6 {
				t.Fatalf("chunk %d: value %d is %g, want %g", chunk, i, gx[i], wx[i])
			}
		}
		for i := range B {
			if got.Reward[i] != want.Reward[i] {
				t.Errorf("chunk %d: sample %d reward %g, want %g", chunk, i, got.Reward[i], want.Reward[i])
			}
		}
	}
	// Different noises give different candidates.
	c1, c2 := make([]float32, 2), make([]float32, 2)
	Candidates([]float32{0.1, 0.2}, c1)
	Candidates([]float32{0.1, 0.20001}, c2)
	if c1[0] == c2[0] && c1[1] == c2[1] {
		t.Error("candidates do not depend on the noise")
	}
}
