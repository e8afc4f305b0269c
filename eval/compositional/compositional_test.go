package compositional

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/compute"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/fashion"
)

var (
	beOnce sync.Once
	be     backends.Backend
)

func backend(t testing.TB) backends.Backend {
	beOnce.Do(func() {
		b, err := compute.NewBackend("")
		if err != nil {
			t.Fatal(err)
		}
		be = b
	})
	return be
}

func TestPrompts(t *testing.T) {
	ps := Prompts()
	seen := map[int]bool{}
	for i, p := range ps {
		seen[p.Class] = true
		id, err := PromptID(strings.ToUpper(p.Text))
		if err != nil || id != i {
			t.Errorf("PromptID(%q) = %d, %v", p.Text, id, err)
		}
		if id, err := PromptID(strings.TrimPrefix(p.Text, "a ")); err != nil || id != i {
			t.Errorf("PromptID without article: %d, %v", id, err)
		}
	}
	if len(seen) != fashion.NumClasses {
		t.Errorf("the prompts cover %d classes, want all %d", len(seen), fashion.NumClasses)
	}
	if _, err := PromptID("a purple hat"); err == nil || !strings.Contains(err.Error(), "a dark sneaker") {
		t.Errorf("unknown prompt error %v should list the prompts", err)
	}
}

// rect is a 28x28 image with value v on rows [y0,y1) and columns [x0,x1), 0 elsewhere.
func rect(v float32, y0, y1, x0, x1 int) []float32 {
	img := make([]float32, 784)
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			img[y*28+x] = v
		}
	}
	return img
}

func TestMeasure(t *testing.T) {
	img := rect(0.6, 0, 10, 4, 8) // 40 ink pixels, columns 4..7
	if got := Measure(Tone, img); math.Abs(got-0.6) > 1e-6 {
		t.Errorf("tone %v", got)
	}
	if got := Measure(Area, img); math.Abs(got-40.0/784) > 1e-9 {
		t.Errorf("area %v", got)
	}
	if got, want := Measure(Width, img), math.Sqrt(1.25)/28; math.Abs(got-want) > 1e-9 {
		t.Errorf("width %v, want %v", got, want)
	}
	if Measure(Tone, make([]float32, 784)) != 0 {
		t.Error("tone of an empty image")
	}
}

func TestCheckImages(t *testing.T) {
	ps := Prompts()
	dark, _ := PromptID("a dark sneaker")
	bright, _ := PromptID("a bright sneaker")
	img := rect(0.3, 10, 18, 2, 26) // a dim sneaker-like bar
	logits := make([]float32, 10)
	logits[7] = 5 // the held-out classifier says "sneaker"
	checks, err := CheckImages(ps, []int32{int32(dark), int32(bright)}, append(append([]float32{}, img...), img...), append(append([]float32{}, logits...), logits...))
	if err != nil {
		t.Fatal(err)
	}
	if !checks[0].Success() || checks[1].Success() || !checks[1].ClassOK || checks[1].AttrOK {
		t.Errorf("dark/bright sneaker checks %+v", checks)
	}
	if p := checks[0].ClassProb; !(p > 0.9 && p < 1) {
		t.Errorf("class probability %v", p)
	}
	if _, err := CheckImages(ps, []int32{99}, img, logits); err == nil {
		t.Error("prompt id 99 accepted")
	}
	if _, err := CheckImages(ps, []int32{0, 1}, img, logits); err == nil {
		t.Error("size mismatch accepted")
	}
}

func TestBootstrap(t *testing.T) {
	x := make([]float64, 400)
	for i := range x {
		if i%4 == 0 {
			x[i] = 1
		}
	}
	e := Bootstrap(x, 2000, 1)
	if e.Value != 0.25 || !(e.CI[0] < 0.25 && e.CI[1] > 0.25) {
		t.Fatalf("estimate %+v", e)
	}
	// Binomial standard error sqrt(.25*.75/400) = 0.0217: the 95% interval is about +-0.042.
	if w := e.CI[1] - e.CI[0]; math.Abs(w-2*1.96*0.0217) > 0.015 {
		t.Errorf("interval width %v, want about %v", w, 2*1.96*0.0217)
	}
	if Bootstrap(x, 2000, 1) != e {
		t.Error("not reproducible")
	}
	if g := GainRatio(0.5, 0.25, 0.75); g != 0.5 {
		t.Errorf("gain ratio %v", g)
	}
	if !math.IsNaN(GainRatio(0.5, 0.25, 0.2)) {
		t.Error("gain ratio without a reference gain should be NaN")
	}
}

// TestAttributeReward checks the attribute penalty on images with known statistics: about 0 well
// inside the band, negative outside, lower the farther out.
func TestAttributeReward(t *testing.T) {
	m, err := fashion.Default()
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(m)
	if err != nil {
		t.Fatal(err)
	}
	dark, _ := PromptID("a dark sneaker") // tone <= 0.58
	imgs := append(append(rect(0.3, 8, 20, 2, 26), rect(0.7, 8, 20, 2, 26)...), rect(0.95, 8, 20, 2, 26)...)
	r := g.AttributeReward()
	exec, err := context.NewExec(backend(t), m.Context().Reuse(), func(ctx *context.Context, x, p *Node) *Node { return r.Score(ctx, x, p) })
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions(imgs, 3, 28, 28, 1), tensors.FromValue([]int32{int32(dark), int32(dark), int32(dark)}))
	if err != nil {
		t.Fatal(err)
	}
	v := tensors.MustCopyFlatData[float32](out[0])
	if !(v[0] > -0.01 && v[1] < -1 && v[2] < v[1]) {
		t.Errorf("dark-sneaker penalty for tones 0.3, 0.7, 0.95: %v", v)
	}
}

// TestGeneratorSeesClass checks that the compositional generator gives "a dark sneaker" and
// "a bright sneaker" the sneaker image for the same noise, and that its LoRA backbone is zero at
// initialization (the hypernetwork's contract).
func TestGeneratorSeesClass(t *testing.T) {
	m, err := fashion.Default()
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(m)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := hypernet.NewLoRA(g, 4, 0, "comp_test")
	if err != nil {
		t.Fatal(err)
	}
	dark, _ := PromptID("a dark sneaker")
	bright, _ := PromptID("a bright sneaker")
	exec, err := context.NewExec(backend(t), m.Context(), func(ctx *context.Context, e, p *Node) []*Node {
		return []*Node{g.Generate(ctx, e, p), m.Generate(ctx, e, g.Classes(p)), mod.Residual(ctx, e, p)}
	})
	if err != nil {
		t.Fatal(err)
	}
	eps := fashion.Noise(2, 1)
	copy(eps[fashion.LatentDim:], eps[:fashion.LatentDim])
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions(eps, 2, 7, 7, 4), tensors.FromValue([]int32{int32(dark), int32(bright)}))
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.MustCopyFlatData[float32](out[0])
	ref := tensors.MustCopyFlatData[float32](out[1])
	for i := range 784 {
		if x[i] != x[784+i] || x[i] != ref[i] {
			t.Fatalf("pixel %d: %v %v %v", i, x[i], x[784+i], ref[i])
		}
	}
	for _, v := range tensors.MustCopyFlatData[float32](out[2]) {
		if v != 0 {
			t.Fatalf("LoRA residual %v at initialization", v)
		}
	}
}

// TestRunTiny runs the whole benchmark at a tiny size and checks the result's shape and ranges.
func TestRunTiny(t *testing.T) {
	m, err := fashion.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg := hypernet.DefaultAdamW()
	cfg.Steps, cfg.BatchSize, cfg.WarmupSteps, cfg.LR = 2, 4, 1, 1e-3
	res, err := Run(backend(t), m, Options{SeedsPerPrompt: 2, Seed: 1, Train: cfg, LoRARank: 2, RegWeight: 0.5,
		RenoSteps: 1, WarmSteps: 1, SmallN: 2, LargeN: 3, GridSeeds: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"base", "best-of-2", "best-of-3", "reno", "hypernoise", "hypernoise-reno"}
	if strings.Join(res.Order, ",") != strings.Join(want, ",") {
		t.Fatalf("order %v", res.Order)
	}
	for _, name := range res.Order {
		r := res.Methods[name]
		if r.Images != 28 || !(r.Success >= 0 && r.Success <= 1) || !(r.SuccessCI[0] <= r.Success && r.Success <= r.SuccessCI[1]) ||
			len(r.PerPromptSuccess) != 14 || len(r.Grid) != 14*784 {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(backend(t), m, Options{SeedsPerPrompt: 1, Train: cfg, LoRARank: 2, RenoSteps: 1, SmallN: 2}, nil, nil); err == nil {
		t.Error("one seed per prompt accepted")
	}
}

func TestReportFiles(t *testing.T) {
	r := &Result{Prompts: []PromptInfo{{Text: "a dark sneaker", Band: "tone <= 0.5"}}, Images: 4,
		Options: Options{SeedsPerPrompt: 4, GridSeeds: 2}, Order: []string{"base", "reno"},
		Methods: map[string]*MethodResult{
			"base": {Success: 0.25, SecondsPerImage: 0.001, PerPromptSuccess: []float64{0.25}, Grid: make([]float32, 2*784)},
			"reno": {Success: 0.75, SecondsPerImage: 0.1, PerPromptSuccess: []float64{0.75}, Grid: make([]float32, 2*784),
				GainRatio: map[string]float64{"success": 1}},
		}}
	dir := t.TempDir()
	tables, imgs, err := r.WriteReport(dir, "comp_")
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || len(tables[0].Table.Rows) != 2 || len(imgs) != 2 || !strings.Contains(imgs[1].Caption, "reno 0.75") {
		t.Fatalf("tables %+v images %+v", tables, imgs)
	}
	if !strings.Contains(r.Text(), "0.750") {
		t.Errorf("text:\n%s", r.Text())
	}
}
