package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/bestofn"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/baselines/reno"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/models/fashion"
)

// Limits of SampleOptions.
const (
	MaxBestOfN = 10000
	MaxSteps   = 1000
)

// SampleOptions selects how Sample generates.
type SampleOptions struct {
	Method      string  // a registered method (hypernoise.MethodNames)
	HypernetDir string  // hypernetwork folder (needed by hypernoise, hypernoise-reno, finetune; gives the others its reward)
	RewardSpec  string  // reward of best-of-n / reno without a hypernetwork (default DefaultReward)
	N           int     // best-of-n candidates
	Steps       int     // reno / hypernoise-reno iterations (0: DefaultRenoSteps / DefaultWarmSteps)
	Beta        float64 // tilt temperature of a tilt dial (0: its default); see infer.Config.CheckBeta
}

// Validate checks the options; errors name what is allowed.
func (o SampleOptions) Validate() error {
	info, err := hypernoise.LookupMethod(o.Method)
	if err != nil {
		return err
	}
	if (info.Needs.Has(hypernoise.NeedsModulator) || info.Needs.Has(hypernoise.NeedsFinetuned)) && o.HypernetDir == "" {
		return fmt.Errorf("method %s needs --hypernet DIR", o.Method)
	}
	if o.RewardSpec != "" {
		if err := CheckRewardSpec(o.RewardSpec); err != nil {
			return err
		}
	}
	if info.Needs.Has(hypernoise.NeedsN) && (o.N < 1 || o.N > MaxBestOfN) {
		return fmt.Errorf("%s needs N in [1, %d], got %d", o.Method, MaxBestOfN, o.N)
	}
	if info.Needs.Has(hypernoise.NeedsSteps) && (o.Steps < 0 || o.Steps > MaxSteps) {
		return fmt.Errorf("%s needs steps in [1, %d], got %d", o.Method, MaxSteps, o.Steps)
	}
	return nil
}

// Sample generates images [n*784] for noise eps (n*196 floats, e.g. hypernoise.NoiseFlat) and
// prompt ids with the chosen method through the inference pipeline, and returns them with the
// method's cost per image.
func Sample(backend backends.Backend, m *fashion.Model, eps []float32, prompts []int32, o SampleOptions) ([]float32, hypernoise.Cost, error) {
	return SampleModel(backend, FashionModel(m), eps, prompts, o)
}

// SampleModel is Sample for any model (e.g. one imported from ONNX).
func SampleModel(backend backends.Backend, im *infer.Model, eps []float32, prompts []int32, o SampleOptions) ([]float32, hypernoise.Cost, error) {
	if err := o.Validate(); err != nil {
		return nil, hypernoise.Cost{}, err
	}
	var dirs []string
	if o.HypernetDir != "" {
		dirs = append(dirs, o.HypernetDir)
	}
	m := im.Generator
	p, err := NewModelPipeline(backend, im, dirs...)
	if err != nil {
		return nil, hypernoise.Cost{}, err
	}
	defer p.Close()
	r := infer.Request{Method: o.Method, Reward: o.RewardSpec, N: o.N, Steps: o.Steps, Beta: o.Beta}
	switch {
	case o.Method == reno.Name && r.Steps == 0:
		r.Steps = DefaultRenoSteps
	case o.Method == reno.WarmName && r.Steps == 0:
		r.Steps = DefaultWarmSteps
	case o.Method == bestofn.Name && r.N == 0:
		r.N = DefaultBestOfN
	case o.Method == finetune.Name:
		if err := loadFinetune(p, im, o.HypernetDir); err != nil {
			return nil, hypernoise.Cost{}, err
		}
	}
	meth, err := p.Method(r)
	if err != nil {
		return nil, hypernoise.Cost{}, err
	}
	n := len(prompts)
	x, cost, err := meth.Generate(tensors.FromFlatDataAndDimensions(eps, append([]int{n}, m.NoiseShape()...)...),
		tensors.FromValue(prompts))
	if err != nil {
		return nil, cost, err
	}
	return tensors.MustCopyFlatData[float32](x), cost, nil
}

// LoadFinetune loads the fine-tune baseline cached in a hypernetwork folder (written by `hypernoise
// eval`) into pipeline p, whose model is m, and makes it p's fine-tuned generator.
func LoadFinetune(p *infer.Pipeline, m *fashion.Model, dir string) error {
	return loadFinetune(p, FashionModel(m), dir)
}

func loadFinetune(p *infer.Pipeline, im *infer.Model, dir string) error {
	m := im.Generator
	var cfg FinetuneConfig
	path := filepath.Join(dir, FinetuneConfigFile)
	if err := ckpt.ReadJSON(path, &cfg); err != nil {
		return fmt.Errorf("no fine-tune baseline in %s (%v); `hypernoise eval --hypernet %s` trains and caches it", dir, err, dir)
	}
	if cfg.BaseHash != im.Hash {
		return fmt.Errorf("%s: the fine-tune was trained for other %s weights", path, m.Name())
	}
	ft, err := finetune.New(m, cfg.Rank, 0, "finetune")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	err = p.Update(func(ctx *context.Context) error {
		_, err := ckpt.Load(ctx, filepath.Join(dir, FinetuneFile))
		return err
	})
	if err != nil {
		return fmt.Errorf("fine-tune baseline: %w", err)
	}
	p.SetFinetuned(ft)
	return nil
}

// MethodList is the registered method names, comma-separated (for usage text).
func MethodList() string { return strings.Join(hypernoise.MethodNames(), ", ") }
