// Package compositional is a GenEval-style benchmark on the embedded Fashion-MNIST default: each
// prompt joins a class with one, two or three attributes ("a dark sneaker", "a small dark bag",
// "a very small very dark very narrow dress"). The generator sees only the class; hypernetworks and
// rewards see the whole prompt. An image succeeds when every part of its prompt checks true under
// held-out checks that no method trains against:
//
//	class       the held-out classifier's argmax is the prompt's class
//	attributes  each attribute's measured image statistic (ink tone, ink area or ink width, on the
//	            hard ink mask) lies in its band, and the ink area is at least the class's floor
//
// The training signal is a different, differentiable reward (see Generator.Reward): the reward
// classifier's log-probability of the class plus, for every attribute of the prompt, a smooth
// penalty for the statistic's distance to its band, computed on a soft ink mask rather than the
// checks' hard one.
//
// Every band is a quantile of the statistic over the real test images of the prompt's class:
// BandQuantile (30%) for "dark", "small", "narrow", 1 - BandQuantile for "bright", "large", "wide",
// and VeryQuantile (10%) for the "very" forms. The attributes of a prompt are compatible in the
// real data: RealPass, the fraction of the class's real test images that pass all its bands, is
// stated per prompt and checked against the data (TestBandsMatchData). The prompts fall in three
// categories, like GenEval's tasks (Categories), each reported on its own; Run also applies the
// checks to the real test images, which gives the success of a generator that matched the data and
// the ceiling of one that followed every prompt with real images.
package compositional

import (
	"fmt"
	"strings"

	"github.com/hypernoise/hypernoise/models/fashion"
)

// Stat is an image statistic computed from the ink mask (pixels above InkLevel).
type Stat int

const (
	// Tone is the mean value of the ink pixels (0 if there are none): dark vs bright garments.
	Tone Stat = iota
	// Area is the fraction of pixels that are ink: small vs large garments.
	Area
	// Width is the horizontal spread of the ink: the standard deviation of the ink pixels' column
	// index, divided by the image side.
	Width
	// NumStats is the number of statistics.
	NumStats
)

// InkLevel is the pixel value above which a pixel counts as ink.
const InkLevel = 0.2

// BandQuantile is the quantile of the class's real statistic that bounds every band: a "Below"
// attribute passes at or under the BandQuantile quantile, an upper one at or over the
// 1 - BandQuantile quantile, so each attribute alone holds BandQuantile of the class's real images.
const BandQuantile = 0.3

func (s Stat) String() string {
	return [...]string{"tone", "area", "width"}[s]
}

// VeryQuantile bounds the band of an attribute with "very" ("very dark"): the VeryQuantile
// quantile of the class's real statistic, or the 1 - VeryQuantile one for an upper attribute.
const VeryQuantile = 0.1

// Attribute is a word of a prompt and the check it stands for: Stat at most the band's threshold
// (Below) or at least it; Very attributes have the narrower band.
type Attribute struct {
	Word  string
	Stat  Stat
	Below bool
	Very  bool
}

// Quantile is the quantile of the class's real statistic that sets the attribute's threshold.
func (a Attribute) Quantile() float64 {
	q := BandQuantile
	if a.Very {
		q = VeryQuantile
	}
	if a.Below {
		return q
	}
	return 1 - q
}

// Attributes are the attribute words of the prompt set, each also with "very".
var Attributes = func() map[string]Attribute {
	out := map[string]Attribute{}
	for _, a := range []Attribute{{"dark", Tone, true, false}, {"bright", Tone, false, false},
		{"small", Area, true, false}, {"large", Area, false, false},
		{"narrow", Width, true, false}, {"wide", Width, false, false}} {
		out[a.Word] = a
		a.Word, a.Very = "very "+a.Word, true
		out[a.Word] = a
	}
	return out
}()

// Cond is one attribute of a prompt with its band: pass when stat <= Threshold for a Below
// attribute, stat >= Threshold otherwise.
type Cond struct {
	Attr      Attribute
	Threshold float64
}

// Pass reports whether a statistic value is in the band.
func (c Cond) Pass(stat float64) bool {
	if c.Attr.Below {
		return stat <= c.Threshold
	}
	return stat >= c.Threshold
}

// Band describes the band in words, e.g. "tone <= 0.512".
func (c Cond) Band() string {
	op := ">="
	if c.Attr.Below {
		op = "<="
	}
	return fmt.Sprintf("%s %s %.3f", c.Attr.Stat, op, c.Threshold)
}

// Prompt is one compositional prompt: a class and its attributes with their bands (at most one
// attribute per statistic). The attribute check also asks for a garment of a realistic size, ink
// area >= AreaFloor (the class's 5% area quantile), so that a faint smudge cannot pass as "dark"
// or "small". RealPass is the fraction of the class's real test images whose statistics pass every
// band (the attribute pass rate of a generator that matched the data).
type Prompt struct {
	Text      string
	Category  string
	Class     int
	Conds     []Cond
	AreaFloor float64
	RealPass  float64
}

// AttrPass is the attribute check on an image's statistics (indexed by Stat): every band holds and
// the ink area is at least the floor.
func (p Prompt) AttrPass(stats []float64) bool {
	for _, c := range p.Conds {
		if !c.Pass(stats[c.Attr.Stat]) {
			return false
		}
	}
	return stats[Area] >= p.AreaFloor
}

// Band describes the prompt's bands in words, e.g. "area <= 0.453, tone <= 0.580, area >= 0.304".
func (p Prompt) Band() string {
	var parts []string
	for _, c := range p.Conds {
		parts = append(parts, c.Band())
	}
	return fmt.Sprintf("%s, area >= %.3f", strings.Join(parts, ", "), p.AreaFloor)
}

// bands are the thresholds: the attribute's Quantile of the statistic over the test images of the
// class (10000 test images, 1000 per class; regenerate with TestPrintBands). Keyed by
// "class/attribute".
var bands = map[string]float64{
	"sneaker/dark":         0.5796,
	"bag/small":            0.4528,
	"dress/bright":         0.7928,
	"coat/wide":            0.2052,
	"pullover/dark":        0.5023,
	"trouser/bright":       0.7742,
	"ankle boot/small":     0.3763,
	"sandal/wide":          0.2559,
	"shirt/dark":           0.4619,
	"t-shirt/wide":         0.1797,
	"t-shirt/small":        0.4796,
	"t-shirt/dark":         0.5392,
	"pullover/large":       0.6263,
	"pullover/wide":        0.2132,
	"dress/small":          0.3316,
	"dress/narrow":         0.1096,
	"coat/large":           0.6008,
	"coat/bright":          0.7931,
	"sandal/small":         0.1696,
	"sandal/dark":          0.5084,
	"shirt/large":          0.6059,
	"shirt/bright":         0.7267,
	"sneaker/small":        0.2245,
	"bag/large":            0.5778,
	"bag/wide":             0.2599,
	"trouser/small":        0.2908,
	"trouser/narrow":       0.1033,
	"ankle boot/large":     0.4554,
	"ankle boot/narrow":    0.2280,
	"t-shirt/very small":   0.3699,
	"t-shirt/very dark":    0.3761,
	"t-shirt/very narrow":  0.1406,
	"t-shirt/very large":   0.5982,
	"t-shirt/very bright":  0.8315,
	"t-shirt/very wide":    0.2010,
	"shirt/very small":     0.3546,
	"shirt/very dark":      0.3541,
	"shirt/very wide":      0.2257,
	"shirt/very large":     0.6582,
	"shirt/very bright":    0.8324,
	"pullover/very small":  0.4515,
	"pullover/very dark":   0.3709,
	"pullover/very narrow": 0.1792,
	"pullover/very large":  0.6901,
	"pullover/very bright": 0.8436,
	"pullover/very wide":   0.2266,
	"coat/very small":      0.4235,
	"coat/very dark":       0.4724,
	"coat/very narrow":     0.1527,
	"coat/very large":      0.6454,
	"coat/very bright":     0.8422,
	"coat/very wide":       0.2174,
	"dress/very small":     0.2526,
	"dress/very dark":      0.4429,
	"dress/very narrow":    0.0899,
	"dress/very large":     0.4962,
	"dress/very bright":    0.8504,
	"dress/very wide":      0.1598,
}

// realPass is each prompt's RealPass (regenerate with TestPrintBands), keyed by prompt text.
var realPass = map[string]float64{
	"a dark sneaker":                              0.2760,
	"a small bag":                                 0.2460,
	"a bright dress":                              0.2980,
	"a wide coat":                                 0.2860,
	"a dark pullover":                             0.2520,
	"a bright trouser":                            0.2950,
	"a small ankle boot":                          0.2600,
	"a wide sandal":                               0.2920,
	"a dark shirt":                                0.2530,
	"a wide t-shirt":                              0.2850,
	"a small dark t-shirt":                        0.1100,
	"a large wide pullover":                       0.1950,
	"a small narrow dress":                        0.2060,
	"a large bright coat":                         0.1030,
	"a small dark sandal":                         0.0970,
	"a large bright shirt":                        0.1280,
	"a small dark sneaker":                        0.0920,
	"a large wide bag":                            0.1320,
	"a small narrow trouser":                      0.1710,
	"a large narrow ankle boot":                   0.1530,
	"a very small very dark very narrow t-shirt":  0.0030,
	"a very large very bright very wide t-shirt":  0.0100,
	"a very small very dark very wide shirt":      0.0030,
	"a very large very bright very wide shirt":    0.0030,
	"a very small very dark very narrow pullover": 0.0050,
	"a very large very bright very wide pullover": 0.0100,
	"a very small very dark very narrow coat":     0.0010,
	"a very large very bright very wide coat":     0.0040,
	"a very small very dark very narrow dress":    0.0020,
	"a very large very bright very wide dress":    0.0040,
}

// areaFloor is each class's 5% quantile of the ink area over its test images (regenerate with
// TestPrintBands).
var areaFloor = [...]float64{0.2411, 0.2474, 0.3661, 0.2219, 0.3559, 0.1071, 0.2270, 0.1607, 0.3036, 0.3099}

// Spec is a prompt before its bands are looked up: attribute words (in prompt order), a class and
// the prompt's category.
type Spec struct {
	Attrs    []string
	Class    string
	Category string
}

// Text is the prompt's text, "a <attr> <attr> <class>".
func (s Spec) Text() string {
	return "a " + strings.Join(append(append([]string(nil), s.Attrs...), s.Class), " ")
}

// The prompt categories, GenEval's tasks in this benchmark: the success rate is reported for each.
const (
	// OneAttr prompts bound one statistic ("a dark sneaker").
	OneAttr = "one attribute"
	// TwoAttrs prompts bound two statistics ("a small dark bag").
	TwoAttrs = "two attributes"
	// ThreeVery prompts bound all three statistics with the narrower "very" bands ("a very small
	// very dark very narrow shirt"), on the five upper-body garment classes, whose silhouettes
	// the held-out classifier tells apart by the very shapes the attributes change.
	ThreeVery = "three very attributes"
)

// Categories are the prompt categories in report order.
var Categories = []string{OneAttr, TwoAttrs, ThreeVery}

// Specs are the prompts in benchmark order: ten with one attribute (every class), ten with two
// attributes that go together in the real images of the class (every class), ten with three
// "very" attributes (two per upper-body class: very small, very dark and very narrow (very wide for
// the shirt), or very large, very bright and very wide), which between 1 and 11 of the class's 1000
// real test images satisfy.
var Specs = func() []Spec {
	var out []Spec
	add := func(cat string, list ...string) {
		for _, l := range list {
			f := strings.Split(l, ",")
			out = append(out, Spec{Attrs: f[:len(f)-1], Class: f[len(f)-1], Category: cat})
		}
	}
	add(OneAttr, "dark,sneaker", "small,bag", "bright,dress", "wide,coat", "dark,pullover",
		"bright,trouser", "small,ankle boot", "wide,sandal", "dark,shirt", "wide,t-shirt")
	add(TwoAttrs, "small,dark,t-shirt", "large,wide,pullover", "small,narrow,dress", "large,bright,coat",
		"small,dark,sandal", "large,bright,shirt", "small,dark,sneaker", "large,wide,bag",
		"small,narrow,trouser", "large,narrow,ankle boot")
	add(ThreeVery, "very small,very dark,very narrow,t-shirt", "very large,very bright,very wide,t-shirt",
		"very small,very dark,very wide,shirt", "very large,very bright,very wide,shirt",
		"very small,very dark,very narrow,pullover", "very large,very bright,very wide,pullover",
		"very small,very dark,very narrow,coat", "very large,very bright,very wide,coat",
		"very small,very dark,very narrow,dress", "very large,very bright,very wide,dress")
	return out
}()

// Threshold returns the band threshold of an attribute word for a class from the band table.
func Threshold(class int, attr string) (float64, bool) {
	v, ok := bands[bandKey(class, attr)]
	return v, ok
}

// Build makes prompts from specs, taking every band from threshold(class, attribute word) and
// each class's area floor from floor(class); it checks the words, the classes and that no two
// attributes of a prompt share a statistic.
func Build(specs []Spec, threshold func(class int, attr string) (float64, bool), floor func(class int) float64) ([]Prompt, error) {
	out := make([]Prompt, 0, len(specs))
	for _, s := range specs {
		c, err := fashion.PromptID(s.Class)
		if err != nil {
			return nil, err
		}
		p := Prompt{Text: s.Text(), Category: s.Category, Class: c, AreaFloor: floor(c), RealPass: realPass[s.Text()]}
		var used [NumStats]bool
		for _, w := range s.Attrs {
			a, ok := Attributes[w]
			if !ok {
				return nil, fmt.Errorf("compositional: unknown attribute %q in %q", w, s.Text())
			}
			if used[a.Stat] {
				return nil, fmt.Errorf("compositional: two %s attributes in %q", a.Stat, s.Text())
			}
			used[a.Stat] = true
			th, ok := threshold(c, w)
			if !ok {
				return nil, fmt.Errorf("compositional: no band for %s %s", w, s.Class)
			}
			p.Conds = append(p.Conds, Cond{Attr: a, Threshold: th})
		}
		if len(p.Conds) == 0 {
			return nil, fmt.Errorf("compositional: %q has no attribute", s.Text())
		}
		out = append(out, p)
	}
	return out, nil
}

// Prompts returns the benchmark's prompts.
func Prompts() []Prompt {
	ps, err := Build(Specs, Threshold, func(c int) float64 { return areaFloor[c] })
	if err != nil {
		panic(err) // fixed tables
	}
	return ps
}

func bandKey(class int, attr string) string {
	return fmt.Sprintf("%s/%s", fashion.Prompts[class], attr)
}

// PromptID returns the index of a compositional prompt (case and blanks ignored; the article "a"
// may be left out).
func PromptID(text string) (int, error) {
	t := strings.ToLower(strings.Join(strings.Fields(text), " "))
	var names []string
	for i, p := range Prompts() {
		if t == p.Text || "a "+t == p.Text {
			return i, nil
		}
		names = append(names, p.Text)
	}
	return 0, fmt.Errorf("unknown compositional prompt %q; the prompts are: %s", text, strings.Join(names, ", "))
}
