package pipeline

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/eval/imageeval"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/models/fashion"
	"github.com/hypernoise/hypernoise/progress"
)

// Runner is a method ready to run, with the compiled graphs it must release.
type Runner struct {
	imageeval.Method
	Close func()
}

// BaseMethod samples x = g(eps, c).
func BaseMethod(backend backends.Backend, m *fashion.Model) (*Runner, error) {
	return samplerMethod(backend, m, m, nil, "base")
}

// HyperNoiseMethod samples x = g(eps + f(eps, c), c) with the trained hypernetwork.
func HyperNoiseMethod(backend backends.Backend, hn *Hypernet, name string) (*Runner, error) {
	return samplerMethod(backend, hn.Model, hn.Model, hn.Modulator, name)
}

// samplerMethod samples x = gen(eps + mod(eps, c), c) (mod may be nil) with m's weights.
func samplerMethod(backend backends.Backend, m *fashion.Model, gen hypernoise.Generator, mod hypernoise.Modulator, name string) (*Runner, error) {
	s, err := hypernet.NewSampler(backend, m.Context(), gen, mod)
	if err != nil {
		return nil, err
	}
	return &Runner{Method: imageeval.Method{Name: name, Run: func(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernet.Cost, error) {
		x, _, cost, err := s.Sample(eps, prompts)
		return x, cost, err
	}}, Close: s.Finalize}, nil
}

// Candidates returns the best-of-N candidate noises [B, N, NoiseShape...] for eps [B, ...]:
// candidate 0 is eps itself (so best-of-N never does worse than base on its own reward) and the
// others are drawn from a stream seeded by seed.
func Candidates(eps *tensors.Tensor, n int, seed int64) *tensors.Tensor {
	dims := eps.Shape().Dimensions
	b := dims[0]
	flat := tensors.MustCopyFlatData[float32](eps)
	d := len(flat) / b
	extra := hypernet.Normal(seed, 9001, b*(n-1)*d)
	out := make([]float32, 0, b*n*d)
	for i := range b {
		out = append(out, flat[i*d:(i+1)*d]...)
		out = append(out, extra[i*(n-1)*d:(i+1)*(n-1)*d]...)
	}
	return tensors.FromFlatDataAndDimensions(out, append([]int{b, n}, dims[1:]...)...)
}

// BestOfNMethod draws n candidate noises per image and keeps the one with the highest reward.
// Candidates are generated in chunks of at most maxImages images at once to bound memory.
func BestOfNMethod(backend backends.Backend, m *fashion.Model, reward hypernoise.Reward, n int, seed int64, name string) (*Runner, error) {
	s, err := bestofn.New(backend, m.Context(), m, reward, n)
	if err != nil {
		return nil, err
	}
	const maxImages = 2048
	run := func(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernet.Cost, error) {
		b := eps.Shape().Dim(0)
		chunk := max(1, maxImages/n)
		flat := tensors.MustCopyFlatData[float32](eps)
		ids := tensors.MustCopyFlatData[int32](prompts)
		d := len(flat) / b
		var xs []float32
		var xDims []int
		var cost hypernet.Cost
		for lo := 0; lo < b; lo += chunk {
			hi := min(b, lo+chunk)
			be := tensors.FromFlatDataAndDimensions(append([]float32(nil), flat[lo*d:hi*d]...),
				append([]int{hi - lo}, eps.Shape().Dimensions[1:]...)...)
			// Candidates depend on the image's index in the evaluation batch, not on chunking.
			cand := Candidates(be, n, seed+int64(lo))
			res, err := s.Sample(cand, tensors.FromValue(append([]int32(nil), ids[lo:hi]...)))
			if err != nil {
				return nil, cost, err
			}
			xs = append(xs, tensors.MustCopyFlatData[float32](res.X)...)
			xDims = res.X.Shape().Dimensions
			cost.Forward = res.Cost.Forward
			cost.Seconds += res.Cost.Seconds * float64(hi-lo) / float64(b)
		}
		xDims = append([]int{b}, xDims[1:]...)
		return tensors.FromFlatDataAndDimensions(xs, xDims...), cost, nil
	}
	return &Runner{Method: imageeval.Method{Name: name, Run: run}, Close: s.Finalize}, nil
}

// RenoMethod optimizes each image's noise with ReNO (cfg), starting from eps, or from the
// hypernetwork's eps + f(eps, c) when warm is not nil (HyperNoise warm-starting ReNO).
func RenoMethod(backend backends.Backend, m *fashion.Model, reward hypernoise.Reward, cfg reno.Config, warm *Hypernet, name string) (*Runner, error) {
	o, err := reno.New(backend, m.Context(), m, reward, cfg)
	if err != nil {
		return nil, err
	}
	var s *hypernet.Sampler
	if warm != nil {
		if s, err = hypernet.NewSampler(backend, m.Context(), m, warm.Modulator); err != nil {
			o.Finalize()
			return nil, err
		}
	}
	run := func(eps, prompts *tensors.Tensor) (*tensors.Tensor, hypernet.Cost, error) {
		var pre hypernet.Cost
		if s != nil {
			_, ep, c, err := s.Sample(eps, prompts)
			if err != nil {
				return nil, pre, err
			}
			eps, pre = ep, c // counted as run: modulator + one generator forward
		}
		res, err := o.Run(eps, prompts)
		if err != nil {
			return nil, pre, err
		}
		c := res.Cost
		c.Forward += pre.Forward
		c.Seconds += pre.Seconds
		return res.X, c, nil
	}
	closeAll := func() {
		o.Finalize()
		if s != nil {
			s.Finalize()
		}
	}
	return &Runner{Method: imageeval.Method{Name: name, Run: run}, Close: closeAll}, nil
}

// FinetuneFile holds fine-tuned adapters inside a hypernetwork folder.
const FinetuneFile = "finetune.safetensors"

// FinetuneConfigFile is the JSON beside FinetuneFile.
const FinetuneConfigFile = "finetune.json"

// FinetuneConfig records how the fine-tune baseline was trained.
type FinetuneConfig struct {
	RewardSpec string               `json:"reward_spec"`
	Rank       int                  `json:"rank"`
	BaseHash   string               `json:"base_model_sha256"`
	Train      hypernet.TrainConfig `json:"train"`
	Result     *TrainSummary        `json:"result,omitempty"`
}

// LoadOrTrainFinetune returns the fine-tune baseline for the reward spec: the generator with
// LoRA adapters of the given rank trained on -r alone (no regularizer), with the same optimizer
// settings as the hypernetwork. The adapters are cached in dir (reloaded if their config matches).
func LoadOrTrainFinetune(backend backends.Backend, m *fashion.Model, spec string, rank int, cfg hypernet.TrainConfig, dir string, prog progress.Func) (*finetune.Model, error) {
	ft, err := finetune.New(m, rank, 0, "finetune")
	if err != nil {
		return nil, err
	}
	want := FinetuneConfig{RewardSpec: spec, Rank: rank, BaseHash: BaseHash(m), Train: cfg}
	var have FinetuneConfig
	if err := ckpt.ReadJSON(filepath.Join(dir, FinetuneConfigFile), &have); err == nil &&
		have.RewardSpec == want.RewardSpec && have.Rank == want.Rank && have.BaseHash == want.BaseHash &&
		have.Train.Steps == cfg.Steps && have.Train.Seed == cfg.Seed {
		if err := hypernet.LoadWeightsWith(m.Context(), filepath.Join(dir, FinetuneFile), nil, ckpt.LoadOptions{Scopes: []string{ft.Scope()}}); err == nil {
			return ft, nil
		}
	}
	reward, err := ParseReward(m, spec)
	if err != nil {
		return nil, err
	}
	prob, err := ft.Problem(reward)
	if err != nil {
		return nil, err
	}
	cfg.CheckpointDir, cfg.Resume = "", false
	res, err := hypernet.Train(backend, m.Context(), prob, cfg, prog)
	if err != nil {
		return nil, fmt.Errorf("fine-tune baseline: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	want.Result = summarize(res)
	if err := hypernet.SaveWeights(m.Context(), ft.Scope(), filepath.Join(dir, FinetuneFile), want); err != nil {
		return nil, err
	}
	return ft, nil
}

// FinetuneMethod samples x = g_phi(eps, c) from the fine-tuned generator.
func FinetuneMethod(backend backends.Backend, m *fashion.Model, ft *finetune.Model, name string) (*Runner, error) {
	return samplerMethod(backend, m, ft, nil, name)
}
