package imagerewards

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/internal/testutil"
)

// score runs a reward on images [n,28,28,1] given as flat pixels.
func score(t *testing.T, ctx *context.Context, r hypernoise.Reward, pixels []float32, prompts []int32) []float32 {
	t.Helper()
	backend := testutil.Backend(t)
	n := len(prompts)
	exec, err := context.NewExec(backend, ctx.Reuse(), func(ctx *context.Context, x, p *Node) *Node {
		return r.Score(ctx, x, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions(pixels, n, 28, 28, 1), tensors.FromValue(prompts))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

func TestBrightnessAndContrast(t *testing.T) {
	px := make([]float32, 2*784)
	for i := range 784 {
		px[i] = 0.25 // flat grey image
		if i%2 == 0 {
			px[784+i] = 1 // half the pixels white
		}
	}
	b := score(t, context.New(), BrightnessReward(), px, []int32{0, 3})
	if math.Abs(float64(b[0])-0.25) > 1e-6 || math.Abs(float64(b[1])-0.5) > 1e-6 {
		t.Errorf("brightness = %v, want [0.25 0.5]", b)
	}
	c := score(t, context.New(), ContrastReward(), px, []int32{0, 3})
	if math.Abs(float64(c[0])-0.001) > 1e-4 || math.Abs(float64(c[1])-0.5) > 1e-4 {
		t.Errorf("contrast = %v, want [~0.001 (sqrt of the 1e-6 floor) 0.5]", c)
	}
}

// TestSoftInkStats checks the soft statistics on a rectangle of ink (value 0.8, rows 4..19, columns
// 10..17, on a black background) against their exact hard-mask values, and their gradient against
// finite differences.
func TestSoftInkStats(t *testing.T) {
	px := make([]float32, 784)
	for y := 4; y < 20; y++ {
		for x := 10; x < 18; x++ {
			px[y*28+x] = 0.8
		}
	}
	backend := testutil.Backend(t)
	out, err := ExecOnce(backend, func(x *Node) *Node { return SoftInkStats(x, 0.2) },
		tensors.FromFlatDataAndDimensions(px, 1, 28, 28, 1))
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out)
	// Columns 10..17: mean 13.5, variance (8^2-1)/12 = 5.25.
	want := []float64{0.8, 128.0 / 784, math.Sqrt(5.25) / 28}
	for i, w := range want {
		if math.Abs(float64(got[i])-w) > 2e-3 {
			t.Errorf("stat %d = %v, want %v", i, got[i], w)
		}
	}
	// Gradient on a smooth random image (pixels near the ink level, where the mask is not flat).
	r := make([]float64, 784)
	for i := range r {
		r[i] = 0.2 + 0.05*math.Sin(float64(i)*0.37)
	}
	rel, err := compute.CheckGradient(backend, func(in []*Node) *Node { return SoftInkStats(in[0], 0.2) },
		[]*tensors.Tensor{tensors.FromFlatDataAndDimensions(r, 1, 28, 28, 1)}, nil)
	if err != nil || rel > 1e-5 {
		t.Fatalf("soft ink stats gradient: relative error %v, %v", rel, err)
	}
}
