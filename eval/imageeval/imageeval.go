// Package imageeval is the GenEval analogue for a model of any family: every method generates
// samples for the same noises and prompts (a fixed seed set per prompt), and each is scored the
// same way:
//
//	reward            mean training reward r(x, c) of the samples
//	heldout_alignment fraction of samples the held-out classifier (never trained against) assigns
//	                  to the prompt's class (null for a model without a held-out evaluator)
//	fd                Fréchet distance between the samples' held-out features and the reference
//	                  set's (null without a held-out evaluator or its reference statistics)
//	diversity         mean pairwise distance among samples of one prompt, averaged over prompts:
//	                  of held-out features, or of the samples' values without a held-out evaluator
//	brightness        mean value (pixel value, for images)
//	nfe_per_image     generator-sized network evaluations (forward + backward) per image
//	seconds_per_image wall time of the method per image (reward scoring and metrics excluded)
package imageeval

import (
	"fmt"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/metrics"
	"github.com/hypernoise/hypernoise/progress"
)

// Options selects the seed set.
type Options struct {
	SeedsPerPrompt int    // images per prompt
	Seed           uint64 // noise seed of the evaluation set
	Batch          int    // images per call of a method (0: all at once); at most the model's forward chunk (family.Model.ChunkRows)
	GridSeeds      int    // images per prompt shown in the grids (0: none)
}

// Result holds one method's figures.
type Result struct {
	Reward           float64        `json:"reward"`
	HeldoutAlignment metrics.Figure `json:"heldout_alignment"`
	FD               metrics.Figure `json:"fd"`
	Diversity        float64        `json:"diversity"`
	Brightness       float64        `json:"brightness"`
	NFEPerImage      float64        `json:"nfe_per_image"`
	SecondsPerImage  float64        `json:"seconds_per_image"`
	// PerPromptAlignment is the held-out alignment per prompt, in prompt order (nil without a
	// held-out evaluator).
	PerPromptAlignment []float64 `json:"per_prompt_alignment"`
	// Rewards are the per-sample rewards, and Features the per-sample held-out features (nil
	// without a held-out evaluator), in evaluation order: for distances between methods.
	Rewards  []float64   `json:"-"`
	Features [][]float64 `json:"-"`
	// Grid: the first GridSeeds samples of every prompt, prompt-major ([prompts*GridSeeds] samples).
	Grid []float32 `json:"-"`
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

// scoreChunk is the most images scored in one compiled call (bounds memory), lowered to the
// model's forward chunk (family.Model.ChunkRows).
const scoreChunk = 256

// Evaluator scores samples of a model; it holds the compiled reward (and held-out) graph.
type Evaluator struct {
	m       *family.Model
	ref     family.FDReference // nil: no FD
	scorer  *hypernet.SharedExec
	heldOut bool
}

// NewEvaluator compiles the scoring graph of reward (the methods' training reward) on m, with the
// held-out classifier and the FD reference statistics where the model has them.
func NewEvaluator(backend backends.Backend, m *family.Model, reward hypernoise.Reward) (*Evaluator, error) {
	e := &Evaluator{m: m, heldOut: m.HeldOut != nil}
	if e.heldOut {
		ref, err := m.HeldOut.FDReference(backend)
		if err != nil {
			return nil, err
		}
		e.ref = ref
	}
	var err error
	e.scorer, err = hypernet.NewSharedExec(backend, m.Context.Reuse(), nil, func(ctx *context.Context, x, prompts *Node) []*Node {
		r := reward.Score(ctx, x, prompts)
		if !e.heldOut {
			return []*Node{r}
		}
		logits, feats := m.HeldOut.HeldOut(ctx, x)
		return []*Node{r, logits, feats}
	})
	if err != nil {
		return nil, err
	}
	return e, nil
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
	np := e.m.NumPrompts()
	eps, prompts := EvalSet(np, opts.SeedsPerPrompt, opts.Seed, e.m.Generator.NoiseShape())
	n := np * opts.SeedsPerPrompt
	batch := opts.Batch
	if batch <= 0 || batch > n {
		batch = n
	}
	// No more images per call than the model's memory estimate allows in one forward chunk (the
	// methods chunk their own calls too; this bounds the noises and images in flight).
	batch = e.m.ChunkRows(false, batch)
	epsFlat := tensors.MustCopyFlatData[float32](eps)
	ids := tensors.MustCopyFlatData[int32](prompts)
	d := len(epsFlat) / n
	total := len(methods) * ((n + batch - 1) / batch)
	done := 0
	res = map[string]*Result{}
	for _, meth := range methods {
		var images []float32
		var dims []int
		var seconds, nfe float64
		for lo := 0; lo < n; lo += batch {
			hi := min(n, lo+batch)
			be := tensors.FromFlatDataAndDimensions(append([]float32(nil), epsFlat[lo*d:hi*d]...),
				append([]int{hi - lo}, e.m.Generator.NoiseShape()...)...)
			bp := tensors.FromValue(append([]int32(nil), ids[lo:hi]...))
			t0 := time.Now()
			x, cost, err := meth.Generate(be, bp)
			if err != nil {
				return nil, fmt.Errorf("method %s: %w", meth.Name(), err)
			}
			seconds += time.Since(t0).Seconds()
			nfe += cost.NFE() * float64(hi-lo)
			images = append(images, tensors.MustCopyFlatData[float32](x)...)
			dims = x.Shape().Dimensions[1:]
			done++
			report.Report(done, total, meth.Name())
		}
		r, err := e.score(images, dims, ids, opts)
		if err != nil {
			return nil, fmt.Errorf("scoring %s: %w", meth.Name(), err)
		}
		r.SecondsPerImage = seconds / float64(n)
		r.NFEPerImage = nfe / float64(n)
		res[meth.Name()] = r
	}
	return res, nil
}

// score computes the figures of n samples (flat, each of shape dims) with prompt ids.
func (e *Evaluator) score(images []float32, dims []int, ids []int32, opts Options) (*Result, error) {
	n := len(ids)
	px := 1
	for _, d := range dims {
		px *= d
	}
	if len(images) != n*px {
		return nil, fmt.Errorf("%d values for %d samples", len(images), n)
	}
	var rewards []float32
	var logits, feats [][]float64
	chunk := e.m.ChunkRows(false, scoreChunk)
	err := hypernet.Chunks(n, chunk, func(lo, hi int) error {
		p := hypernet.PaddedRows(hi-lo, chunk)
		outs, err := e.scorer.Exec(tensors.FromFlatDataAndDimensions(hypernet.PadRows(images, px, lo, hi, p), append([]int{p}, dims...)...),
			tensors.FromFlatDataAndDimensions(hypernet.PadRows(ids, 1, lo, hi, p), p))
		if err != nil {
			return err
		}
		rewards = append(rewards, tensors.MustCopyFlatData[float32](outs[0])[:hi-lo]...)
		if e.heldOut {
			logits = append(logits, metrics.Rows(outs[1])[:hi-lo]...)
			feats = append(feats, metrics.Rows(outs[2])[:hi-lo]...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	np := e.m.NumPrompts()
	res := &Result{HeldoutAlignment: metrics.NA, FD: metrics.NA}
	perPrompt := make([][][]float64, np)
	for i := range n {
		res.Reward += float64(rewards[i]) / float64(n)
		res.Rewards = append(res.Rewards, float64(rewards[i]))
		if e.heldOut {
			perPrompt[ids[i]] = append(perPrompt[ids[i]], feats[i])
		} else {
			perPrompt[ids[i]] = append(perPrompt[ids[i]], values(images[i*px:(i+1)*px]))
		}
	}
	if e.heldOut {
		res.Features = feats
		if err := e.heldOutFigures(res, logits, feats, ids); err != nil {
			return nil, err
		}
	}
	for _, f := range perPrompt {
		res.Diversity += metrics.Diversity(f) / float64(np)
	}
	var sum float64
	for _, v := range images {
		sum += float64(v)
	}
	res.Brightness = sum / float64(len(images))
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

// heldOutFigures fills in the held-out alignment (overall and per prompt) and the FD.
func (e *Evaluator) heldOutFigures(res *Result, logits, feats [][]float64, ids []int32) error {
	np := e.m.NumPrompts()
	res.PerPromptAlignment = make([]float64, np)
	labels := make([]int, len(ids))
	counts := make([]int, np)
	for i, id := range ids {
		labels[i] = int(id)
		counts[id]++
		if argmax(logits[i]) == int(id) {
			res.PerPromptAlignment[id]++
		}
	}
	for p := range np {
		if counts[p] > 0 {
			res.PerPromptAlignment[p] /= float64(counts[p])
		}
	}
	res.HeldoutAlignment = metrics.Figure(metrics.Accuracy(logits, labels))
	if e.ref != nil {
		fd, err := e.ref.FD(feats)
		if err != nil {
			return err
		}
		res.FD = metrics.Figure(fd)
	}
	return nil
}

// values converts one sample's values to float64.
func values(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
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
