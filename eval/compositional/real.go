package compositional

import (
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/data/fashionmnist"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// RealResult is the benchmark's held-out checks applied to real images: every prompt is paired
// with each test image of its class, judged as if a generator had made it for the prompt.
type RealResult struct {
	Pairs int `json:"pairs"` // prompt-image pairs judged
	// Success: the fraction of pairs that pass every check, the success rate of a generator that
	// drew the real images of the class (it ignores the attributes, as the base generator does).
	Success         Estimate            `json:"success"`
	HeldoutAlign    Estimate            `json:"heldout_alignment"`
	AttributePass   Estimate            `json:"attribute_pass"`
	CategorySuccess map[string]Estimate `json:"category_success"`
	// Ceiling: among the pairs whose attributes pass, the fraction whose class check passes too:
	// the success rate of a perfect prompt follower that drew real images satisfying the prompt's
	// attributes (below 1 where the held-out classifier misreads such images).
	Ceiling         float64            `json:"ceiling"`
	CategoryCeiling map[string]float64 `json:"category_ceiling"`
	// PerPromptSuccess and PerPromptAttrPass are per prompt, in prompt order.
	PerPromptSuccess  []float64 `json:"per_prompt_success"`
	PerPromptAttrPass []float64 `json:"per_prompt_attribute_pass"`
}

// realChunk is the number of images per held-out classifier call on the real set.
const realChunk = 1000

// CheckReal judges the real images of set (its labels are the classes) for every prompt of the
// checker, with bootstrap intervals seeded by seed.
func (c *Checker) CheckReal(set *fashionmnist.Set, seed uint64) (*RealResult, error) {
	const px = fashion.Side * fashion.Side
	logits := make([]float32, 0, set.N*fashion.NumClasses)
	for lo := 0; lo < set.N; lo += realChunk {
		hi := min(set.N, lo+realChunk)
		x := tensors.FromFlatDataAndDimensions(set.Images[lo*px:hi*px], hi-lo, fashion.Side, fashion.Side, 1)
		l, err := c.Logits(x)
		if err != nil {
			return nil, err
		}
		logits = append(logits, l...)
	}
	var all []ImageCheck
	np := len(c.prompts)
	res := &RealResult{PerPromptSuccess: make([]float64, np), PerPromptAttrPass: make([]float64, np),
		CategoryCeiling: map[string]float64{}}
	attrOK, both := map[string]float64{}, map[string]float64{}
	var sumAttr, sumBoth float64
	for id, p := range c.prompts {
		var ids []int32
		var imgs, lg []float32
		for i := range set.N {
			if int(set.Labels[i]) == p.Class {
				ids = append(ids, int32(id))
				imgs = append(imgs, set.Image(i)...)
				lg = append(lg, logits[i*fashion.NumClasses:(i+1)*fashion.NumClasses]...)
			}
		}
		checks, err := CheckImages(c.prompts, ids, imgs, lg)
		if err != nil {
			return nil, err
		}
		var s, a float64
		for _, ck := range checks {
			if ck.AttrOK {
				a++
				attrOK[p.Category]++
				if ck.ClassOK {
					both[p.Category]++
				}
			}
			if ck.Success() {
				s++
			}
		}
		if n := float64(len(checks)); n > 0 {
			res.PerPromptSuccess[id], res.PerPromptAttrPass[id] = s/n, a/n
		}
		sumAttr += a
		sumBoth += s
		all = append(all, checks...)
	}
	sum := Summarize(all, c.prompts, seed)
	res.Pairs = len(all)
	res.Success, res.HeldoutAlign, res.AttributePass, res.CategorySuccess = sum.Success, sum.HeldoutAlignment, sum.AttributePass, sum.CategorySuccess
	if sumAttr > 0 {
		res.Ceiling = sumBoth / sumAttr
	}
	for cat, a := range attrOK {
		res.CategoryCeiling[cat] = both[cat] / a
	}
	return res, nil
}
