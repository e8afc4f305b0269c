package fashion

import (
	_ "embed"
	"fmt"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/metrics"
	"gonum.org/v1/gonum/mat"
)

// TestStatsFile is where `hypernoise eval --write-test-stats` writes the reference statistics
// that are embedded in the binary (so evaluation needs no dataset).
const TestStatsFile = "models/fashion/teststats.safetensors"

//go:embed teststats.safetensors
var embeddedTestStats []byte

// TestStats are the mean and covariance of the held-out classifier's features over the
// Fashion-MNIST test set: the reference Gaussian of the Fréchet distance.
type TestStats struct {
	N    int // number of test images they were computed from
	Mean []float64
	Cov  *mat.SymDense
	// HeldOutSHA256 names the held-out classifier whose features they are (its weights file's
	// SHA-256); statistics of another classifier's features would give a meaningless FD.
	HeldOutSHA256 string
}

// heldOutKey is the metadata entry holding TestStats.HeldOutSHA256.
const heldOutKey = "heldout_sha256"

// HeldOutFeatures computes the held-out classifier's logits [n,10] and features [n,FeatureDim] of
// images (n*28*28 floats in [0,1]), in batches.
func HeldOutFeatures(backend backends.Backend, m *Model, images []float32) (logits, feats [][]float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("held-out features: %v", r)
		}
	}()
	if err := m.Need(ScopeHeldOut); err != nil {
		return nil, nil, err
	}
	const side = fashionmnist.Side
	n := len(images) / (side * side)
	exec, err := context.NewExec(backend, m.Context().Reuse(), func(ctx *context.Context, x *Node) []*Node {
		l, f := HeldOut(ctx, x)
		return []*Node{l, f}
	})
	if err != nil {
		return nil, nil, err
	}
	defer exec.Finalize()
	const batch = 500
	for lo := 0; lo < n; lo += batch {
		hi := min(n, lo+batch)
		x := tensors.FromFlatDataAndDimensions(images[lo*side*side:hi*side*side], hi-lo, side, side, 1)
		outs, err := exec.Exec(x)
		if err != nil {
			return nil, nil, err
		}
		logits = append(logits, metrics.Rows(outs[0])...)
		feats = append(feats, metrics.Rows(outs[1])...)
	}
	return logits, feats, nil
}

// ComputeTestStats computes TestStats from the installed test set (dataDir "" = the default).
func ComputeTestStats(backend backends.Backend, m *Model, dataDir string) (*TestStats, error) {
	set, err := fashionmnist.Load(dataDir, fashionmnist.Test)
	if err != nil {
		return nil, err
	}
	_, feats, err := HeldOutFeatures(backend, m, set.Images)
	if err != nil {
		return nil, err
	}
	mean, cov, err := metrics.Moments(feats)
	if err != nil {
		return nil, err
	}
	return &TestStats{N: set.N, Mean: mean, Cov: cov, HeldOutSHA256: m.WeightsSHA256(ScopeHeldOut)}, nil
}

// Encode serializes the statistics as safetensors (float64 mean [d] and covariance [d,d]).
func (s *TestStats) Encode() ([]byte, error) {
	ctx := context.New()
	d := len(s.Mean)
	cov := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			cov[i*d+j] = s.Cov.At(i, j)
		}
	}
	sc := ctx.In("teststats").Checked(false)
	sc.VariableWithValue("mean", tensors.FromFlatDataAndDimensions(append([]float64(nil), s.Mean...), d))
	sc.VariableWithValue("cov", tensors.FromFlatDataAndDimensions(cov, d, d))
	sc.VariableWithValue("n", tensors.FromFlatDataAndDimensions([]int64{int64(s.N)}, 1))
	return ckpt.Encode(ctx, "/teststats", map[string]string{"features": "fashion held-out classifier", heldOutKey: s.HeldOutSHA256})
}

// DecodeTestStats reads statistics written by Encode.
func DecodeTestStats(data []byte) (*TestStats, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("no test-set statistics embedded; build them with: hypernoise eval --write-test-stats")
	}
	ctx := context.New()
	meta, err := ckpt.Decode(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("test-set statistics: %w", err)
	}
	get := func(name string) (*tensors.Tensor, error) {
		v := ctx.InspectVariable("/teststats", name)
		if v == nil {
			return nil, fmt.Errorf("test-set statistics lack %q", name)
		}
		return v.Value()
	}
	mt, err := get("mean")
	if err != nil {
		return nil, err
	}
	ct, err := get("cov")
	if err != nil {
		return nil, err
	}
	nt, err := get("n")
	if err != nil {
		return nil, err
	}
	mean := tensors.MustCopyFlatData[float64](mt)
	d := len(mean)
	if ct.Shape().Size() != d*d {
		return nil, fmt.Errorf("test-set statistics: covariance %s does not match mean [%d]", ct.Shape(), d)
	}
	cov := mat.NewSymDense(d, tensors.MustCopyFlatData[float64](ct))
	return &TestStats{N: int(tensors.MustCopyFlatData[int64](nt)[0]), Mean: mean, Cov: cov, HeldOutSHA256: meta[heldOutKey]}, nil
}

// DefaultTestStats returns the statistics embedded in the binary.
func DefaultTestStats() (*TestStats, error) { return DecodeTestStats(embeddedTestStats) }

// TestStatsFor returns the test set's statistics in m's held-out feature space: the embedded ones
// when they were computed with m's held-out classifier, otherwise computed from the installed
// test set (dataDir "" = the default), otherwise an error that says how to get them. (Statistics
// of another classifier's features would make every FD meaningless, silently.)
func TestStatsFor(backend backends.Backend, m *Model, dataDir string) (*TestStats, error) {
	want := m.WeightsSHA256(ScopeHeldOut)
	if st, err := DefaultTestStats(); err == nil && st.HeldOutSHA256 != "" && st.HeldOutSHA256 == want {
		return st, nil
	}
	st, err := ComputeTestStats(backend, m, dataDir)
	if err != nil {
		return nil, fmt.Errorf("the embedded test-set statistics are not for this held-out classifier (weights %.12s), and computing them failed: %w "+
			"(install dataset-fashion-mnist, or for the embedded weights rebuild them with: hypernoise eval --write-test-stats)", want, err)
	}
	return st, nil
}

// FD is the Fréchet distance between the features' Gaussian and the test set's.
func (s *TestStats) FD(feats [][]float64) (float64, error) {
	mean, cov, err := metrics.Moments(feats)
	if err != nil {
		return 0, err
	}
	return metrics.FrechetFromMoments(mean, cov, s.Mean, s.Cov)
}
