// Package imageeval is the GenEval analogue on the embedded Fashion-MNIST default: every method
// generates images for the same noises and prompts (a fixed seed set per prompt), and each is scored
// the same way:
//
//	reward            mean training reward r(x, c) of the images
//	heldout_alignment fraction of images the held-out classifier (never trained against) assigns
//	                  to the prompt's class
//	fd                Fréchet distance between the images' held-out features and the test set's
//	diversity         mean pairwise distance of held-out features among images of one prompt,
//	                  averaged over prompts
//	brightness        mean pixel value
//	nfe_per_image     generator-sized network evaluations (forward + backward) per image
//	seconds_per_image wall time of the method per image (reward scoring and metrics excluded)
package imageeval

import (
	"fmt"
	"math"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/eval/metrics"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/progress"
)

// Options selects the seed set.
type Options struct {
	SeedsPerPrompt int    // images per prompt
	Seed           uint64 // noise seed of the evaluation set
	Batch          int    // images per call of a method (0: all at once)
	GridSeeds      int    // images per prompt shown in the grids (0: none)
}

// Result holds one method's figures.
type Result struct {
	Reward           float64 `json:"reward"`
	HeldoutAlignment float64 `json:"heldout_alignment"`
	FD               float64 `json:"fd"`
	Diversity        float64 `json:"diversity"`
	Brightness       float64 `json:"brightness"`
	NFEPerImage      float64 `json:"nfe_per_image"`
	SecondsPerImage  float64 `json:"seconds_per_image"`
	// PerPromptAlignment is the held-out alignment per prompt, in prompt order.
	PerPromptAlignment []float64 `json:"per_prompt_alignment"`
	// Grid: the first GridSeeds images of every prompt, prompt-major ([prompts*GridSeeds] images).
	Grid []float32 `json:"-"`
}

// Reference is the test set's held-out feature Gaussian (see pipeline.TestStats).
type Reference interface {
	FD(feats [][]float64) (float64, error)
}

// EvalSet returns the evaluation noises and prompts: image p*perPrompt + k has prompt p and noise
// p*perPrompt + k of the seed (hypernoise.PromptNoise), so every image has its own noise and
// `hypernoise sample --prompt P --n perPrompt --seed S` draws exactly prompt P's images.
func EvalSet(numPrompts, perPrompt int, seed uint64, noiseShape []int) (eps *tensors.Tensor, prompts *tensors.Tensor) {
	n := numPrompts * perPrompt
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i / perPrompt)
	}
	return hypernoise.Noise(seed, n, noiseShape), tensors.FromValue(ids)
}

// scoreChunk is the most images scored in one compiled call (bounds memory).
const scoreChunk = 256

// Evaluator scores images; it holds the compiled reward and held-out graphs.
type Evaluator struct {
	m      *fashion.Model
	ref    Reference
	scorer *hypernet.SharedExec
}

// NewEvaluator compiles the scoring graph for reward (the method's training reward) on m.
func NewEvaluator(backend backends.Backend, m *fashion.Model, reward hypernoise.Reward, ref Reference) (*Evaluator, error) {
	if err := m.Need(fashion.ScopeHeldOut); err != nil {
		return nil, err
	}
	scorer, err := hypernet.NewSharedExec(backend, m.Context().Reuse(), nil, func(ctx *context.Context, x, prompts *Node) []*Node {
		r := reward.Score(ctx, x, prompts)
		logits, feats := fashion.HeldOut(ctx, x)
		return []*Node{r, logits, feats}
	})
	if err != nil {
		return nil, err
	}
	return &Evaluator{m: m, ref: ref, scorer: scorer}, nil
}

// Finalize releases the compiled graphs.
func (e *Evaluator) Finalize() { e.scorer.Finalize() }

// Evaluate runs every method on the evaluation set and scores it. report gets one unit per
// method and batch.
func (e *Evaluator) Evaluate(methods []hypernoise.Method, opts Options, report progress.Func) (res map[string]*Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("evaluation: %v", r)
		}
	}()
	if opts.SeedsPerPrompt < 2 {
		return nil, fmt.Errorf("evaluation needs at least 2 seeds per prompt, got %d", opts.SeedsPerPrompt)
	}
	np := len(e.m.Prompts())
	eps, prompts := EvalSet(np, opts.SeedsPerPrompt, opts.Seed, e.m.NoiseShape())
	n := np * opts.SeedsPerPrompt
	batch := opts.Batch
	if batch <= 0 || batch > n {
		batch = n
	}
	epsFlat := tensors.MustCopyFlatData[float32](eps)
	ids := tensors.MustCopyFlatData[int32](prompts)
	d := len(epsFlat) / n
	total := len(methods) * ((n + batch - 1) / batch)
	done := 0
	res = map[string]*Result{}
	for _, meth := range methods {
		var images []float32
		var seconds, nfe float64
		for lo := 0; lo < n; lo += batch {
			hi := min(n, lo+batch)
			be := tensors.FromFlatDataAndDimensions(append([]float32(nil), epsFlat[lo*d:hi*d]...),
				append([]int{hi - lo}, e.m.NoiseShape()...)...)
			bp := tensors.FromValue(append([]int32(nil), ids[lo:hi]...))
			t0 := time.Now()
			x, cost, err := meth.Generate(be, bp)
			if err != nil {
				return nil, fmt.Errorf("method %s: %w", meth.Name(), err)
			}
			seconds += time.Since(t0).Seconds()
			nfe += cost.NFE() * float64(hi-lo)
			images = append(images, tensors.MustCopyFlatData[float32](x)...)
			done++
			report.Report(done, total, meth.Name())
		}
		r, err := e.score(images, ids, opts)
		if err != nil {
			return nil, fmt.Errorf("scoring %s: %w", meth.Name(), err)
		}
		r.SecondsPerImage = seconds / float64(n)
		r.NFEPerImage = nfe / float64(n)
		res[meth.Name()] = r
	}
	return res, nil
}

// score computes the figures of n images (n*784 floats) with prompt ids.
func (e *Evaluator) score(images []float32, ids []int32, opts Options) (*Result, error) {
	const px = fashion.Side * fashion.Side
	n := len(ids)
	if len(images) != n*px {
		return nil, fmt.Errorf("%d pixel values for %d images", len(images), n)
	}
	var rewards []float32
	var logits, feats [][]float64
	err := hypernet.Chunks(n, scoreChunk, func(lo, hi int) error {
		p := hypernet.PaddedRows(hi-lo, scoreChunk)
		outs, err := e.scorer.Exec(tensors.FromFlatDataAndDimensions(hypernet.PadRows(images, px, lo, hi, p), p, fashion.Side, fashion.Side, 1),
			tensors.FromFlatDataAndDimensions(hypernet.PadRows(ids, 1, lo, hi, p), p))
		if err != nil {
			return err
		}
		rewards = append(rewards, tensors.MustCopyFlatData[float32](outs[0])[:hi-lo]...)
		logits = append(logits, Rows(outs[1])[:hi-lo]...)
		feats = append(feats, Rows(outs[2])[:hi-lo]...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	np := len(e.m.Prompts())
	res := &Result{PerPromptAlignment: make([]float64, np)}
	labels := make([]int, n)
	perPrompt := make([][][]float64, np)
	counts := make([]int, np)
	for i := range n {
		res.Reward += float64(rewards[i]) / float64(n)
		labels[i] = int(ids[i])
		perPrompt[ids[i]] = append(perPrompt[ids[i]], feats[i])
		counts[ids[i]]++
		if argmax(logits[i]) == int(ids[i]) {
			res.PerPromptAlignment[ids[i]]++
		}
	}
	for p := range np {
		if counts[p] > 0 {
			res.PerPromptAlignment[p] /= float64(counts[p])
		}
	}
	res.HeldoutAlignment = metrics.Accuracy(logits, labels)
	for _, f := range perPrompt {
		res.Diversity += metrics.Diversity(f) / float64(np)
	}
	var sum float64
	for _, v := range images {
		sum += float64(v)
	}
	res.Brightness = sum / float64(len(images))
	if e.ref != nil {
		if res.FD, err = e.ref.FD(feats); err != nil {
			return nil, err
		}
	} else {
		res.FD = math.NaN()
	}
	if k := opts.GridSeeds; k > 0 {
		per := opts.SeedsPerPrompt
		for p := range np {
			for j := 0; j < min(k, per); j++ {
				i := p*per + j
				res.Grid = append(res.Grid, images[i*px:(i+1)*px]...)
			}
		}
	}
	return res, nil
}

func argmax(xs []float64) int {
	best := 0
	for i := range xs {
		if xs[i] > xs[best] {
			best = i
		}
	}
	return best
}

// Rows converts a float32 [n, d] tensor to n rows of float64.
func Rows(t *tensors.Tensor) [][]float64 {
	flat := tensors.MustCopyFlatData[float32](t)
	n := t.Shape().Dim(0)
	d := len(flat) / max(n, 1)
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, d)
		for j := range out[i] {
			out[i][j] = float64(flat[i*d+j])
		}
	}
	return out
}
