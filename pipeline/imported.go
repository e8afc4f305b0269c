package pipeline

import (
	"fmt"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise/eval/imageeval"
	"github.com/hypernoise/hypernoise/eval/metrics"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/onnx"
	"github.com/hypernoise/hypernoise/progress"
)

// ImportedModel is the inference model of a generator imported from ONNX (models/onnx): its
// rewards are the spec's, the default reward is the spec's first one with weight 1, and the hash
// covers the generator's weights.
func ImportedModel(m *onnx.Model) *infer.Model {
	return &infer.Model{Generator: m.Generator(), Context: m.Context(), Rewards: m.Registry(),
		DefaultReward: m.Spec.RewardNames()[0] + "=1", Hash: infer.HashScopes(m.Context(), onnx.ScopeGenerator)}
}

// NewModelPipeline returns the inference pipeline over any model, loading the hypernetwork
// folders dirs.
func NewModelPipeline(backend backends.Backend, im *infer.Model, dirs ...string) (*infer.Pipeline, error) {
	p, err := infer.New(backend, im, DefaultChunk)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if _, err := p.LoadHypernet(d); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// ModelResult is one method's row for a generator without the embedded held-out evaluator: the
// same JSON keys as imageeval.Result, with the metrics that need the held-out classifier (alignment,
// FD) null. Diversity is the mean pairwise distance of the images (pixels) of one prompt, averaged
// over prompts; brightness the mean pixel value.
type ModelResult struct {
	Reward             float64   `json:"reward"`
	HeldoutAlignment   *float64  `json:"heldout_alignment"`
	FD                 *float64  `json:"fd"`
	Diversity          float64   `json:"diversity"`
	Brightness         float64   `json:"brightness"`
	NFEPerImage        float64   `json:"nfe_per_image"`
	SecondsPerImage    float64   `json:"seconds_per_image"`
	PerPromptAlignment []float64 `json:"per_prompt_alignment"`
}

// ModelReport is EvalReport for a generator without the held-out evaluator (same JSON shape;
// the held-out gain ratio is null).
type ModelReport struct {
	Generator  string                  `json:"generator"`
	RewardSpec string                  `json:"reward_spec"`
	Prompts    []string                `json:"prompts"`
	Images     int                     `json:"images_per_method"`
	Options    EvalOptions             `json:"options"`
	Backend    string                  `json:"backend"`
	Order      []string                `json:"order"`
	Methods    map[string]*ModelResult `json:"methods"`
	GainRatio  *float64                `json:"heldout_gain_ratio_vs_reno"`
	Seconds    float64                 `json:"seconds"`
}

// EvaluateModel compares every method on hn's reward for the generator of pipeline p, like Evaluate
// but without the held-out metrics (so for any generator, e.g. an imported one). The fine-tune
// baseline is trained, or reloaded, in dir when opts.FinetuneSteps > 0.
func EvaluateModel(p *infer.Pipeline, hn *infer.Hypernet, dir string, opts EvalOptions, prog progress.Func) (rep *ModelReport, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("evaluation: %v", r)
		}
	}()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	im := p.Model()
	gen := im.Generator
	reqs, err := evalRequests(p, hn, dir, opts, prog)
	if err != nil {
		return nil, err
	}
	np := len(gen.Prompts())
	if np == 0 {
		np = 1
	}
	eps, prompts := imageeval.EvalSet(np, opts.SeedsPerPrompt, opts.Seed, gen.NoiseShape())
	n := np * opts.SeedsPerPrompt
	batch := opts.Batch
	if batch <= 0 || batch > n {
		batch = n
	}
	epsFlat := tensors.MustCopyFlatData[float32](eps)
	ids := tensors.MustCopyFlatData[int32](prompts)
	d := len(epsFlat) / n
	rep = &ModelReport{Generator: gen.Name(), RewardSpec: hn.Config.RewardSpec, Prompts: gen.Prompts(),
		Images: n, Options: opts, Backend: p.Backend().Name(), Methods: map[string]*ModelResult{}}
	total := len(reqs) * ((n + batch - 1) / batch)
	done := 0
	for _, r := range reqs {
		meth, err := p.Method(r)
		if err != nil {
			return nil, err
		}
		res := &ModelResult{}
		perPrompt := make([][][]float64, np)
		var pixels, sum float64
		for lo := 0; lo < n; lo += batch {
			hi := min(n, lo+batch)
			be := tensors.FromFlatDataAndDimensions(append([]float32(nil), epsFlat[lo*d:hi*d]...),
				append([]int{hi - lo}, gen.NoiseShape()...)...)
			bp := tensors.FromValue(append([]int32(nil), ids[lo:hi]...))
			t0 := time.Now()
			x, cost, err := meth.Generate(be, bp)
			if err != nil {
				return nil, fmt.Errorf("method %s: %w", meth.Name(), err)
			}
			res.SecondsPerImage += time.Since(t0).Seconds() / float64(n)
			res.NFEPerImage += cost.NFE() * float64(hi-lo) / float64(n)
			scores, err := p.Score(hn.Config.RewardSpec, x, bp)
			if err != nil {
				return nil, fmt.Errorf("scoring %s: %w", meth.Name(), err)
			}
			flat := tensors.MustCopyFlatData[float32](x)
			per := len(flat) / (hi - lo)
			for i := range hi - lo {
				res.Reward += float64(scores[i]) / float64(n)
				row := make([]float64, per)
				for k, v := range flat[i*per : (i+1)*per] {
					row[k] = float64(v)
					sum += float64(v)
				}
				pixels += float64(per)
				perPrompt[ids[lo+i]] = append(perPrompt[ids[lo+i]], row)
			}
			done++
			prog.Report(done, total, meth.Name())
		}
		for _, f := range perPrompt {
			res.Diversity += metrics.Diversity(f) / float64(np)
		}
		res.Brightness = sum / pixels
		rep.Methods[meth.Name()] = res
		rep.Order = append(rep.Order, meth.Name())
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}
