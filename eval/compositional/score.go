package compositional

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// ImageCheck is the held-out verdict on one image.
type ImageCheck struct {
	Prompt    int     // prompt id
	ClassOK   bool    // the held-out classifier's argmax is the prompt's class
	ClassProb float64 // the held-out classifier's probability of the prompt's class
	// Stats are the image's statistics on the hard ink mask, indexed by Stat.
	Stats [NumStats]float64
	// AttrOK: every attribute's statistic is in its band and the ink area is at least the floor.
	AttrOK bool
}

// Success is true when every part of the prompt checks true.
func (c ImageCheck) Success() bool { return c.ClassOK && c.AttrOK }

// CheckImages judges images (n*28*28 pixels) made for prompt ids (n) given the held-out
// classifier's logits for them (n*10).
func CheckImages(prompts []Prompt, ids []int32, images, logits []float32) ([]ImageCheck, error) {
	n := len(ids)
	const px = fashion.Side * fashion.Side
	if len(images) != n*px || len(logits) != n*fashion.NumClasses {
		return nil, fmt.Errorf("compositional: %d images' pixels and %d logits for %d prompts", len(images), len(logits), n)
	}
	out := make([]ImageCheck, n)
	for i, id := range ids {
		if id < 0 || int(id) >= len(prompts) {
			return nil, fmt.Errorf("compositional: prompt id %d outside [0,%d)", id, len(prompts))
		}
		p := prompts[id]
		row := logits[i*fashion.NumClasses : (i+1)*fashion.NumClasses]
		best, mx := 0, math.Inf(-1)
		for k, v := range row {
			if float64(v) > mx {
				best, mx = k, float64(v)
			}
		}
		z := 0.0
		for _, v := range row {
			z += math.Exp(float64(v) - mx)
		}
		stats := MeasureAll(images[i*px : (i+1)*px])
		out[i] = ImageCheck{Prompt: int(id), ClassOK: best == p.Class,
			ClassProb: math.Exp(float64(row[p.Class])-mx) / z, Stats: stats, AttrOK: p.AttrPass(stats[:])}
	}
	return out, nil
}

// Checker runs the held-out classifier of a fashion model and judges images.
type Checker struct {
	prompts []Prompt
	exec    *context.Exec
}

// NewChecker compiles the held-out classifier of m (which needs its held-out part) to judge images
// made for prompts.
func NewChecker(backend backends.Backend, m *fashion.Model, prompts []Prompt) (*Checker, error) {
	if err := m.Need(fashion.ScopeHeldOut); err != nil {
		return nil, err
	}
	exec, err := context.NewExec(backend, m.Context().Reuse(), func(ctx *context.Context, x *Node) *Node {
		l, _ := fashion.HeldOut(ctx, x)
		return l
	})
	if err != nil {
		return nil, err
	}
	return &Checker{prompts: prompts, exec: exec}, nil
}

// Finalize releases the compiled graph.
func (c *Checker) Finalize() { c.exec.Finalize() }

// Check judges images x [n,28,28,1] made for prompt ids [n].
func (c *Checker) Check(x, ids *tensors.Tensor) ([]ImageCheck, error) {
	logits, err := c.Logits(x)
	if err != nil {
		return nil, err
	}
	return CheckImages(c.prompts, tensors.MustCopyFlatData[int32](ids), tensors.MustCopyFlatData[float32](x), logits)
}

// Logits returns the held-out classifier's logits (n*10) for images x [n,28,28,1].
func (c *Checker) Logits(x *tensors.Tensor) (logits []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compositional check: %v", r)
		}
	}()
	out, err := c.exec.Exec(x)
	if err != nil {
		return nil, err
	}
	defer out[0].FinalizeAll()
	return tensors.MustCopyFlatData[float32](out[0]), nil
}

// Estimate is a mean with its 95% bootstrap percentile interval.
type Estimate struct {
	Value float64    `json:"value"`
	CI    [2]float64 `json:"ci"`
}

// Bootstrap returns the mean of x and the 2.5% and 97.5% percentiles of the means of `resamples`
// resamples of x drawn with replacement (seeded, so the interval is reproducible).
func Bootstrap(x []float64, resamples int, seed uint64) Estimate {
	n := len(x)
	if n == 0 {
		return Estimate{Value: math.NaN(), CI: [2]float64{math.NaN(), math.NaN()}}
	}
	mean := 0.0
	for _, v := range x {
		mean += v
	}
	mean /= float64(n)
	r := rand.New(rand.NewPCG(seed, 0xb007))
	means := make([]float64, resamples)
	for k := range means {
		s := 0.0
		for range n {
			s += x[r.IntN(n)]
		}
		means[k] = s / float64(n)
	}
	sort.Float64s(means)
	at := func(q float64) float64 { return means[min(resamples-1, int(math.Floor(q*float64(resamples))))] }
	return Estimate{Value: mean, CI: [2]float64{at(0.025), at(0.975)}}
}

// Resamples is the number of bootstrap resamples of a Summary.
const Resamples = 2000

// Summary is one method's figures on the benchmark.
type Summary struct {
	Images int `json:"images"`
	// Success: fraction of images whose class and attributes all check true.
	Success Estimate `json:"success_estimate"`
	// HeldoutAlignment: fraction the held-out classifier assigns to the prompt's class.
	HeldoutAlignment Estimate `json:"heldout_alignment_estimate"`
	// ClassProb: mean held-out probability of the prompt's class.
	ClassProb Estimate `json:"class_prob_estimate"`
	// AttributePass: fraction whose attribute statistics are all in their bands.
	AttributePass Estimate `json:"attribute_pass_estimate"`
	// CategorySuccess: the success of the images of each prompt category.
	CategorySuccess map[string]Estimate `json:"category_success"`
	// PerPromptSuccess: success rate per prompt, in prompt order.
	PerPromptSuccess []float64 `json:"per_prompt_success"`
}

// Summarize computes the figures of a method's checks of images made for prompts, with bootstrap
// intervals seeded by seed.
func Summarize(checks []ImageCheck, prompts []Prompt, seed uint64) Summary {
	n, np := len(checks), len(prompts)
	succ, align, prob, attr := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	hit, count := make([]float64, np), make([]float64, np)
	byCat := map[string][]float64{}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for i, c := range checks {
		succ[i], align[i], prob[i], attr[i] = b2f(c.Success()), b2f(c.ClassOK), c.ClassProb, b2f(c.AttrOK)
		if c.Prompt >= 0 && c.Prompt < np {
			hit[c.Prompt] += succ[i]
			count[c.Prompt]++
			cat := prompts[c.Prompt].Category
			byCat[cat] = append(byCat[cat], succ[i])
		}
	}
	per := make([]float64, np)
	for p := range per {
		if count[p] > 0 {
			per[p] = hit[p] / count[p]
		}
	}
	cats := map[string]Estimate{}
	for k, name := range sortedKeys(byCat) {
		cats[name] = Bootstrap(byCat[name], Resamples, seed+4+uint64(k))
	}
	return Summary{Images: n,
		Success:          Bootstrap(succ, Resamples, seed),
		HeldoutAlignment: Bootstrap(align, Resamples, seed+1),
		ClassProb:        Bootstrap(prob, Resamples, seed+2),
		AttributePass:    Bootstrap(attr, Resamples, seed+3),
		CategorySuccess:  cats,
		PerPromptSuccess: per}
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// GainRatio is (method - base) / (reference - base): the share of the reference method's gain over
// the base that a method reaches (NaN when the reference does not improve on the base).
func GainRatio(method, base, reference float64) float64 {
	if reference-base <= 0 {
		return math.NaN()
	}
	return (method - base) / (reference - base)
}
