package fashion

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/data/fashionmnist"
)

// TestAdversarialLossGradients checks the one-optimizer GAN loss: its gradient for the critic's
// weights is that of the critic's own loss alone, and its gradient for the fake latents is w times
// that of the generator's loss mean softplus(-D(fake)).
func TestAdversarialLossGradients(t *testing.T) {
	be := backendForTest(t)
	ctx := context.New()
	seedContext(ctx, 3)
	const w = 0.7
	dims := []int{4, LatentSide, LatentSide, LatentCh}
	fake := tensors.FromFlatDataAndDimensions(Noise(4, 1), dims...)
	real := tensors.FromFlatDataAndDimensions(Noise(4, 2), dims...)
	exec, err := context.NewExec(be, ctx, func(ctx *context.Context, f, r *Node) []*Node {
		total := adversarialLoss(ctx, f, r, w)
		c := ctx.InAbsPath("/" + scopeCritic)
		criticOnly := Add(ReduceAllMean(Softplus(Neg(criticNet(c, r)))), ReduceAllMean(Softplus(criticNet(c, StopGradient(f)))))
		genOnly := ReduceAllMean(Softplus(Neg(criticNet(c, f))))
		var vars []*Node
		for v := range ctx.IterVariables() {
			if v.DType() == dtypes.Float32 {
				vars = append(vars, v.ValueGraph(f.Graph()))
			}
		}
		gt := Gradient(total, append([]*Node{f}, vars...)...)
		gc := Gradient(criticOnly, vars...)
		gg := Gradient(genOnly, f)[0]
		out := []*Node{Sub(gt[0], MulScalar(gg, w)), ReduceAllMax(Abs(gg))}
		maxDiff, maxRef := ScalarZero(f.Graph(), dtypes.Float32), ScalarZero(f.Graph(), dtypes.Float32)
		for i := range vars {
			maxDiff = Max(maxDiff, ReduceAllMax(Abs(Sub(gt[i+1], gc[i]))))
			maxRef = Max(maxRef, ReduceAllMax(Abs(gc[i])))
		}
		return append(out, maxDiff, maxRef)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(fake, real)
	if err != nil {
		t.Fatal(err)
	}
	fakeDiff := tensors.MustCopyFlatData[float32](out[0])
	ref := float64(out[1].Value().(float32))
	for _, v := range fakeDiff {
		if math.Abs(float64(v)) > 1e-6*max(ref, 1e-3)+1e-9 {
			t.Fatalf("gradient for the fake latents differs from w * the generator's: %v (scale %v)", v, ref)
		}
	}
	diff, cref := float64(out[2].Value().(float32)), float64(out[3].Value().(float32))
	if cref == 0 || diff > 1e-5*cref {
		t.Fatalf("critic gradient differs from its own loss's by %v (scale %v)", diff, cref)
	}
}

// tinyDataset writes a synthetic Fashion-MNIST-format data set (random pixels, labels i mod 10)
// with nTrain and nTest images under dir.
func tinyDataset(t *testing.T, dir string, nTrain, nTest int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 1))
	for _, sp := range []struct {
		split fashionmnist.Split
		n     int
	}{{fashionmnist.Train, nTrain}, {fashionmnist.Test, nTest}} {
		img := make([]byte, sp.n*Side*Side)
		for i := range img {
			img[i] = byte(r.IntN(256))
		}
		lab := make([]byte, sp.n)
		for i := range lab {
			lab[i] = byte(i % NumClasses)
		}
		im, lb, _ := fashionmnist.Files(dir, sp.split)
		for path, data := range map[string][]byte{im: fashionmnist.WriteIDX([]int{sp.n, Side, Side}, img), lb: fashionmnist.WriteIDX([]int{sp.n}, lab)} {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestTrainV2Tiny runs the v2 autoencoder, teacher and student training for a few steps each on a
// small synthetic data set (the reward classifier copied from the embedded weights) and checks
// that the result loads as a v2 generator whose samples are images.
func TestTrainV2Tiny(t *testing.T) {
	be := backendForTest(t)
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tinyDataset(t, dataDir, 64, 32)
	data, err := fs.ReadFile(embedded, WeightsDir+"/"+WeightsFile("classifier"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, WeightsFile("classifier")), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"autoencoder", "teacher", "student"} {
		cfg := DefaultConfigs[part]
		cfg.Steps, cfg.Batch = 3, 8
		fig, err := Train(be, part, TrainOptions{Out: dir, State: filepath.Join(dir, "state"), Config: &cfg, Pairs: 16, DataDir: dataDir, Arch: ArchV2})
		if err != nil {
			t.Fatalf("%s: %v", part, err)
		}
		if fig.Params == 0 || math.IsNaN(fig.Metrics["train_loss"]) {
			t.Fatalf("%s figures %+v", part, fig)
		}
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"autoencoder", "teacher", "student"} {
		if m.Arch(p) != ArchV2 {
			t.Errorf("%s arch %q, want v2", p, m.Arch(p))
		}
	}
	imgs, err := GenerateImages(be, m, Noise(2, 1), []int32{3, 8}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range imgs {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("pixel %v outside [0,1]", v)
		}
	}
	// A v2 student cannot be distilled from a v1 teacher.
	v1 := filepath.Join(dir, "v1")
	cfg := v1Configs["teacher"]
	cfg.Steps, cfg.Batch = 2, 8
	for _, p := range []string{"autoencoder", "classifier"} {
		b, _ := os.ReadFile(filepath.Join(dir, WeightsFile(p)))
		_ = os.MkdirAll(v1, 0o755)
		_ = os.WriteFile(filepath.Join(v1, WeightsFile(p)), b, 0o644)
	}
	if _, err := Train(be, "teacher", TrainOptions{Out: v1, State: filepath.Join(dir, "state1"), Config: &cfg, Arch: ArchV1, DataDir: dataDir}); err != nil {
		t.Fatal(err)
	}
	scfg := DefaultConfigs["student"]
	scfg.Steps, scfg.Batch = 2, 8
	_, err = Train(be, "student", TrainOptions{Out: v1, State: filepath.Join(dir, "state1"), Config: &scfg, Pairs: 16, DataDir: dataDir, Arch: ArchV2})
	if err == nil || !strings.Contains(err.Error(), "train the teacher first") {
		t.Fatalf("v2 student from a v1 teacher: err = %v", err)
	}
}
