// Package compositional is a GenEval-style benchmark on the embedded Fashion-MNIST default: each
// prompt joins a class with an attribute ("a dark sneaker", "a small bag", "a wide coat"). The
// generator sees only the class; hypernetworks and rewards see the whole prompt. An image succeeds
// when every part of its prompt checks true under held-out checks that no method trains against:
//
//	class      the held-out classifier's argmax is the prompt's class
//	attribute  a measured image statistic (ink tone, ink area or ink width) lies in the stated band
//
// The training signal is a different, differentiable reward (see Reward): the reward classifier's
// log-probability of the class plus a smooth penalty for the statistic's distance to the band,
// computed on a soft ink mask rather than the checks' hard one.
//
// The bands are per (class, attribute) quantiles of the statistic over the real test images of
// that class (30% or 70%), so a generator that matched the data would pass an attribute check for
// about 30% of its images: the base generator fails often and a method has room to improve.
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
)

// InkLevel is the pixel value above which a pixel counts as ink.
const InkLevel = 0.2

func (s Stat) String() string {
	return [...]string{"tone", "area", "width"}[s]
}

// Attribute is a word of a prompt and the check it stands for: Stat below the band's threshold
// (Below) or above it.
type Attribute struct {
	Word  string
	Stat  Stat
	Below bool
	// Quantile of the real class's statistic that sets the threshold (documentation of Band).
	Quantile float64
}

// Attributes are the attribute words of the prompt set.
var Attributes = map[string]Attribute{
	"dark":   {Word: "dark", Stat: Tone, Below: true, Quantile: 0.3},
	"bright": {Word: "bright", Stat: Tone, Below: false, Quantile: 0.7},
	"small":  {Word: "small", Stat: Area, Below: true, Quantile: 0.3},
	"wide":   {Word: "wide", Stat: Width, Below: false, Quantile: 0.7},
}

// Prompt is one compositional prompt: a class, an attribute and the attribute's band, a threshold
// on the statistic (pass when stat <= Threshold for a Below attribute, stat >= Threshold otherwise).
// The attribute check also asks for a garment of a realistic size, ink area >= AreaFloor (the
// class's 5% area quantile), so that a faint smudge cannot pass as "dark" or "small".
type Prompt struct {
	Text      string
	Class     int
	Attr      Attribute
	Threshold float64
	AreaFloor float64
}

// AttrPass is the attribute check on an image's statistic and ink area.
func (p Prompt) AttrPass(stat, area float64) bool { return p.Pass(stat) && area >= p.AreaFloor }

// Pass reports whether a statistic value is in the prompt's band.
func (p Prompt) Pass(stat float64) bool {
	if p.Attr.Below {
		return stat <= p.Threshold
	}
	return stat >= p.Threshold
}

// Band describes the band in words, e.g. "tone <= 0.512".
func (p Prompt) Band() string {
	op := ">="
	if p.Attr.Below {
		op = "<="
	}
	return fmt.Sprintf("%s %s %.3f, area >= %.3f", p.Attr.Stat, op, p.Threshold, p.AreaFloor)
}

// bands are the thresholds: the Quantile of the statistic over the test images of the class
// (10000 test images, 1000 per class; regenerate with TestPrintBands). Keyed by "class/attribute".
var bands = map[string]float64{
	"sneaker/dark":     0.5796,
	"sneaker/bright":   0.6922,
	"bag/small":        0.4528,
	"bag/wide":         0.2599,
	"dress/bright":     0.7928,
	"dress/dark":       0.5936,
	"coat/wide":        0.2052,
	"coat/small":       0.5230,
	"pullover/dark":    0.5023,
	"trouser/bright":   0.7742,
	"ankle boot/small": 0.3763,
	"sandal/wide":      0.2559,
	"shirt/dark":       0.4619,
	"t-shirt/wide":     0.1797,
}

// areaFloor is each class's 5% quantile of the ink area over its test images (regenerate with
// TestPrintBands).
var areaFloor = [...]float64{0.2411, 0.2474, 0.3661, 0.2219, 0.3559, 0.1071, 0.2270, 0.1607, 0.3036, 0.3099}

// promptSpecs are the prompts in benchmark order: every class appears, with one or two attributes.
var promptSpecs = []struct {
	attr, class string
}{
	{"dark", "sneaker"}, {"bright", "sneaker"},
	{"small", "bag"}, {"wide", "bag"},
	{"bright", "dress"}, {"dark", "dress"},
	{"wide", "coat"}, {"small", "coat"},
	{"dark", "pullover"}, {"bright", "trouser"},
	{"small", "ankle boot"}, {"wide", "sandal"},
	{"dark", "shirt"}, {"wide", "t-shirt"},
}

// Prompts returns the benchmark's prompts.
func Prompts() []Prompt {
	out := make([]Prompt, 0, len(promptSpecs))
	for _, s := range promptSpecs {
		c, err := fashion.PromptID(s.class)
		if err != nil {
			panic(err) // fixed table
		}
		a := Attributes[s.attr]
		th, ok := bands[bandKey(c, s.attr)]
		if !ok {
			panic(fmt.Sprintf("compositional: no band for %s %s", s.attr, s.class))
		}
		out = append(out, Prompt{Text: "a " + s.attr + " " + s.class, Class: c, Attr: a, Threshold: th, AreaFloor: areaFloor[c]})
	}
	return out
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
