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
	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/internal/testutil"
	"github.com/hypernoise/hypernoise/models/fashion"
)

var (
	beOnce sync.Once
	be     backends.Backend
)

func backend(t testing.TB) backends.Backend {
	beOnce.Do(func() {
		be = testutil.Backend(t)
	})
	return be
}

func TestPrompts(t *testing.T) {
	ps := Prompts()
	seen := map[int]bool{}
	perCat := map[string]int{}
	for i, p := range ps {
		seen[p.Class] = true
		perCat[p.Category]++
		id, err := PromptID(strings.ToUpper(p.Text))
		if err != nil || id != i {
			t.Errorf("PromptID(%q) = %d, %v", p.Text, id, err)
		}
		if id, err := PromptID(strings.TrimPrefix(p.Text, "a ")); err != nil || id != i {
			t.Errorf("PromptID without article: %d, %v", id, err)
		}
		var words []string
		for _, c := range p.Conds {
			words = append(words, c.Attr.Word)
		}
		if want := "a " + strings.Join(words, " ") + " " + fashion.Prompts[p.Class]; p.Text != want {
			t.Errorf("prompt %q has attributes %v", p.Text, words)
		}
	}
	if len(seen) != fashion.NumClasses {
		t.Errorf("the prompts cover %d classes, want all %d", len(seen), fashion.NumClasses)
	}
	for _, c := range Categories {
		if perCat[c] == 0 {
			t.Errorf("no prompt in category %q", c)
		}
	}
	if _, err := PromptID("a purple hat"); err == nil || !strings.Contains(err.Error(), "a dark sneaker") {
		t.Errorf("unknown prompt error %v should list the prompts", err)
	}
}

func TestBuildErrors(t *testing.T) {
	th := func(int, string) (float64, bool) { return 0.5, true }
	floor := func(int) float64 { return 0 }
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Attrs: []string{"purple"}, Class: "bag"}, `unknown attribute "purple"`},
		{Spec{Attrs: []string{"dark", "very bright"}, Class: "bag"}, "two tone attributes"},
		{Spec{Attrs: []string{"dark"}, Class: "hat"}, "hat"},
		{Spec{Class: "bag"}, "no attribute"},
	} {
		if _, err := Build([]Spec{c.spec}, th, floor); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.spec, err, c.want)
		}
	}
	if _, err := Build([]Spec{{Attrs: []string{"dark"}, Class: "bag"}}, func(int, string) (float64, bool) { return 0, false }, floor); err == nil ||
		!strings.Contains(err.Error(), "no band for dark bag") {
		t.Errorf("missing band: %v", err)
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

// TestAttrPass checks the joint attribute logic on a hand-made prompt: every band and the area
// floor must hold.
func TestAttrPass(t *testing.T) {
	p := Prompt{Conds: []Cond{{Attr: Attributes["small"], Threshold: 0.3}, {Attr: Attributes["bright"], Threshold: 0.7}}, AreaFloor: 0.1}
	for _, c := range []struct {
		tone, area, width float64
		want              bool
	}{
		{0.8, 0.2, 0.5, true},   // both bands, above the floor
		{0.7, 0.3, 0, true},     // on both thresholds
		{0.6, 0.2, 0.5, false},  // not bright
		{0.8, 0.4, 0.5, false},  // not small
		{0.6, 0.4, 0.5, false},  // neither
		{0.9, 0.05, 0.5, false}, // below the area floor
	} {
		if got := p.AttrPass([]float64{c.tone, c.area, c.width}); got != c.want {
			t.Errorf("tone %v area %v: pass %v, want %v", c.tone, c.area, got, c.want)
		}
	}
	if !strings.Contains(p.Band(), "area <= 0.300, tone >= 0.700, area >= 0.100") {
		t.Errorf("band %q", p.Band())
	}
}

// TestCheckImages checks the joint verdict on images with known statistics: success needs the
// held-out class and every attribute.
func TestCheckImages(t *testing.T) {
	ps := Prompts()
	id, err := PromptID("a small dark sneaker")
	if err != nil {
		t.Fatal(err)
	}
	p := ps[id]
	side := func(frac float64) int { return int(math.Round(math.Sqrt(frac) * 28)) }
	// Ink area between the floor and the small band, dim ink: small and dark.
	k := side((p.AreaFloor + p.Conds[0].Threshold) / 2)
	good := rect(0.3, 0, k, 0, k)
	bright := rect(0.95, 0, k, 0, k) // small, not dark
	big := rect(0.3, 0, 28, 0, 28)   // dark, not small
	sneaker := make([]float32, 10)
	sneaker[7] = 5 // the held-out classifier says "sneaker"
	bag := make([]float32, 10)
	bag[8] = 5
	imgs := append(append(append(append([]float32{}, good...), bright...), big...), good...)
	logits := append(append(append(append([]float32{}, sneaker...), sneaker...), sneaker...), bag...)
	ids := []int32{int32(id), int32(id), int32(id), int32(id)}
	checks, err := CheckImages(ps, ids, imgs, logits)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ class, attr, success bool }{{true, true, true}, {true, false, false}, {true, false, false}, {false, true, false}}
	for i, w := range want {
		c := checks[i]
		if c.ClassOK != w.class || c.AttrOK != w.attr || c.Success() != w.success {
			t.Errorf("image %d: %+v, want class %v attribute %v success %v", i, c, w.class, w.attr, w.success)
		}
	}
	if p := checks[0].ClassProb; !(p > 0.9 && p < 1) {
		t.Errorf("class probability %v", p)
	}
	if _, err := CheckImages(ps, []int32{99}, good, sneaker); err == nil {
		t.Error("prompt id 99 accepted")
	}
	if _, err := CheckImages(ps, []int32{0, 1}, good, sneaker); err == nil {
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

// attrReward evaluates the attribute reward of g on images (n*784 values) for prompt ids.
func attrReward(t *testing.T, g *Generator, imgs []float32, ids []int32) []float32 {
	exec, err := context.NewExec(backend(t), g.M.Context().Reuse(), func(ctx *context.Context, x, p *Node) *Node {
		return g.AttributeReward().Score(ctx, x, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions(imgs, len(ids), 28, 28, 1), tensors.FromValue(ids))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out[0])
}

// TestAttributeReward checks the attribute penalty on images with known statistics: about 0 when
// every attribute of the prompt is well inside its band, negative when one is outside, lower when
// both are, and lower the farther out.
func TestAttributeReward(t *testing.T) {
	_, g := newTestGenerator(t)
	dark, _ := PromptID("a dark sneaker")       // tone <= 0.58
	both, _ := PromptID("a small dark sneaker") // 0.16 <= area <= 0.22, tone <= 0.58
	small := rect(0.3, 8, 15, 3, 25)            // area 0.196, tone 0.3
	imgs := [][]float32{rect(0.3, 8, 20, 2, 26), rect(0.7, 8, 20, 2, 26), rect(0.95, 8, 20, 2, 26),
		small, rect(0.7, 8, 15, 3, 25), rect(0.3, 2, 26, 2, 26), rect(0.7, 2, 26, 2, 26)}
	var flat []float32
	for _, im := range imgs {
		flat = append(flat, im...)
	}
	d, b := int32(dark), int32(both)
	v := attrReward(t, g, flat, []int32{d, d, d, b, b, b, b})
	if !(v[0] > -0.01 && v[1] < -1 && v[2] < v[1]) {
		t.Errorf("dark-sneaker penalty for tones 0.3, 0.7, 0.95: %v", v[:3])
	}
	// small and dark; small, not dark; dark, not small; neither. The small band of sneakers is
	// narrow (between the area floor and the 30% quantile, each kept one scale away), so the
	// penalty inside it is below 1 rather than about 0.
	if !(v[3] > -1 && v[4] < v[3]-3 && v[5] < v[3]-3 && v[6] < v[4] && v[6] < v[5]) {
		t.Errorf("small-dark-sneaker penalty (both, not dark, not small, neither): %v", v[3:])
	}
}

// TestAttributeRewardCoversEveryAttribute checks that each of the three attributes of a prompt
// counts: an image that fails any one band scores well below one that passes all three.
func TestAttributeRewardCoversEveryAttribute(t *testing.T) {
	_, g := newTestGenerator(t)
	id, err := PromptID("a very large very bright very wide pullover")
	if err != nil {
		t.Fatal(err)
	}
	imgs := [][]float32{
		rect(0.95, 0, 28, 1, 27), // large, bright, wide
		rect(0.6, 0, 28, 1, 27),  // not bright
		rect(0.95, 6, 20, 1, 27), // not large (above the area floor)
		rect(0.95, 0, 28, 3, 24), // not wide (21 columns)
	}
	var flat []float32
	ids := make([]int32, len(imgs))
	for i, im := range imgs {
		flat = append(flat, im...)
		ids[i] = int32(id)
	}
	for i, st := range [][NumStats]float64{MeasureAll(imgs[0]), MeasureAll(imgs[1]), MeasureAll(imgs[2]), MeasureAll(imgs[3])} {
		if pass := Prompts()[id].AttrPass(st[:]); pass != (i == 0) {
			t.Fatalf("image %d (%v): attribute check %v", i, st, pass)
		}
	}
	v := attrReward(t, g, flat, ids)
	for i := 1; i < len(v); i++ {
		if !(v[i] < v[0]-1) {
			t.Errorf("image %d fails one band but scores %v against %v for the image that passes all", i, v[i], v[0])
		}
	}
}

// TestAttributeRewardGradient checks the gradient of the attribute reward with respect to the
// pixels against central finite differences, for a two- and a three-attribute prompt.
func TestAttributeRewardGradient(t *testing.T) {
	m, g := newTestGenerator(t)
	two, _ := PromptID("a large wide bag")
	three, _ := PromptID("a very small very dark very narrow dress")
	r := g.AttributeReward()
	exec, err := context.NewExec(backend(t), m.Context().Reuse(), func(ctx *context.Context, x, p *Node) []*Node {
		y := r.Score(ctx, x, p)
		return []*Node{y, Gradient(ReduceAllSum(y), x)[0]}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	// A smooth blob whose pixels sit away from the ink level, so the soft mask is smooth there.
	img := make([]float64, 784)
	for y := range 28 {
		for x := range 28 {
			d2 := float64((y-14)*(y-14)) + 0.3*float64((x-13)*(x-13))
			img[y*28+x] = 0.05 + 0.8*math.Exp(-d2/40)
		}
	}
	ids := tensors.FromValue([]int32{int32(two), int32(three)})
	eval := func(a, b []float64) ([]float64, []float64) {
		out, err := exec.Exec(tensors.FromFlatDataAndDimensions(append(append([]float64{}, a...), b...), 2, 28, 28, 1), ids)
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float64](out[0]), tensors.MustCopyFlatData[float64](out[1])
	}
	_, grad := eval(img, img)
	const h = 1e-5
	checked, largest := 0, 0.0
	for _, i := range []int{14*28 + 13, 10*28 + 13, 14*28 + 4, 20*28 + 20, 8*28 + 6, 17*28 + 11} {
		if v := img[i]; math.Abs(v-InkLevel) < 0.1 {
			continue // the soft mask's steep part: finite differences need a smaller step
		}
		checked++
		up, down := append([]float64{}, img...), append([]float64{}, img...)
		up[i] += h
		down[i] -= h
		ru, _ := eval(up, up)
		rd, _ := eval(down, down)
		for k := range 2 {
			fd := (ru[k] - rd[k]) / (2 * h)
			largest = max(largest, math.Abs(fd))
			if ad := grad[k*784+i]; math.Abs(fd-ad) > 1e-4+1e-3*math.Abs(fd) {
				t.Errorf("prompt %d pixel %d: gradient %v, finite difference %v", k, i, ad, fd)
			}
		}
	}
	if checked < 4 || largest < 0.01 {
		t.Fatalf("only %d pixels checked, largest derivative %v: the test checks nothing", checked, largest)
	}
}

// TestGeneratorSeesClass checks that the compositional generator gives "a dark sneaker" and
// "a small dark sneaker" the sneaker image for the same noise, and that its LoRA backbone is zero at
// initialization (the hypernetwork's contract).
func TestGeneratorSeesClass(t *testing.T) {
	m, g := newTestGenerator(t)
	mod, err := hypernet.NewLoRA(g, 4, 0, "comp_test")
	if err != nil {
		t.Fatal(err)
	}
	dark, err := PromptID("a dark sneaker")
	if err != nil {
		t.Fatal(err)
	}
	bright, err := PromptID("a small dark sneaker")
	if err != nil {
		t.Fatal(err)
	}
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
	np := len(Prompts())
	for _, name := range res.Order {
		r := res.Methods[name]
		if r.Images != 2*np || !(r.Success >= 0 && r.Success <= 1) || !(r.SuccessCI[0] <= r.Success && r.Success <= r.SuccessCI[1]) ||
			len(r.PerPromptSuccess) != np || len(r.Grid) != np*784 || len(r.CategorySuccess) != len(Categories) {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if ok, _ := fashionmnist.Installed(fashionmnist.DefaultDir); ok {
		// Each prompt is paired with the 1000 test images of its class; the real images pass at
		// least the fraction of their attribute checks that the table states, less the class
		// check's misses.
		real := res.Real
		if real == nil || real.Pairs != 1000*np || !(real.Ceiling > 0.5 && real.Ceiling <= 1) || len(real.PerPromptAttrPass) != np {
			t.Fatalf("real-data reference %+v", real)
		}
		for i, p := range Prompts() {
			if math.Abs(real.PerPromptAttrPass[i]-p.RealPass) > 1e-9 || real.PerPromptSuccess[i] > p.RealPass {
				t.Errorf("%s: real attribute pass %v, success %v, table %v", p.Text, real.PerPromptAttrPass[i], real.PerPromptSuccess[i], p.RealPass)
			}
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
	r := &Result{Prompts: []PromptInfo{{Text: "a dark sneaker", Band: "tone <= 0.5", Category: OneAttr}}, Images: 4,
		Options: Options{SeedsPerPrompt: 4, GridSeeds: 2}, Order: []string{"base", "reno"}, Categories: []string{OneAttr},
		Methods: map[string]*MethodResult{
			"base": {Success: 0.25, SecondsPerImage: 0.001, PerPromptSuccess: []float64{0.25}, Grid: make([]float32, 2*784),
				CategorySuccess: map[string]Estimate{OneAttr: {Value: 0.25}}},
			"reno": {Success: 0.75, SecondsPerImage: 0.1, PerPromptSuccess: []float64{0.75}, Grid: make([]float32, 2*784),
				GainRatio: map[string]float64{"success": 1}, CategorySuccess: map[string]Estimate{OneAttr: {Value: 0.75}}},
		},
		Real: &RealResult{Success: Estimate{Value: 0.2}, Ceiling: 0.9, CategorySuccess: map[string]Estimate{OneAttr: {Value: 0.2}},
			CategoryCeiling: map[string]float64{OneAttr: 0.9}}}
	dir := t.TempDir()
	tables, imgs, err := r.WriteReport(dir, "comp_")
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 2 || len(tables[0].Table.Rows) != 2 || len(tables[1].Table.Rows) != 4 || len(imgs) != 2 || !strings.Contains(imgs[1].Caption, "reno 0.75") {
		t.Fatalf("tables %+v images %+v", tables, imgs)
	}
	if txt := r.Text(); !strings.Contains(txt, "0.750") || !strings.Contains(txt, "real-data ceiling") || !strings.Contains(txt, "0.900") {
		t.Errorf("text:\n%s", r.Text())
	}
}

// newTestGenerator is the benchmark's generator over the embedded default.
func newTestGenerator(t *testing.T) (*fashion.Model, *Generator) {
	t.Helper()
	m, err := fashion.Default()
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGenerator(m)
	if err != nil {
		t.Fatal(err)
	}
	return m, g
}
