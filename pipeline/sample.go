package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/hypernoise/hypernoise"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/rewards"
)

// SampleOptions selects how Sample generates.
type SampleOptions struct {
	Method     string        // a registered method (hypernoise.MethodNames)
	Hypernet   *infer.Folder // hypernetwork folder (needed by hypernoise, hypernoise-reno, finetune; gives the others its reward)
	RewardSpec string        // reward of best-of-n / reno without a hypernetwork (default: the model's)
	N          int           // best-of-n candidates (0: the method's default)
	Steps      int           // reno / hypernoise-reno iterations (0: the method's default)
	Beta       float64       // tilt temperature of a tilt dial (0: its default); see infer.Config.CheckBeta
}

// Validate checks what the options say without a model: a registered method, a hypernetwork
// folder for the methods that need one, the reward spec's syntax, and the method's knobs within
// the registry's limits (hypernoise.MethodInfo.Settle). The reward names are checked against the
// model's rewards by Sample.
func (o SampleOptions) Validate() error {
	info, err := hypernoise.LookupMethod(o.Method)
	if err != nil {
		return err
	}
	if (info.Needs.Has(hypernoise.NeedsModulator) || info.Needs.Has(hypernoise.NeedsFinetuned)) && o.Hypernet == nil {
		return fmt.Errorf("method %s needs --hypernet DIR", o.Method)
	}
	if o.RewardSpec != "" {
		if _, err := rewards.ParseSpec(o.RewardSpec); err != nil {
			return err
		}
	}
	_, err = info.Settle(hypernoise.Knobs{}, hypernoise.Knobs{N: o.N, Steps: o.Steps})
	return err
}

// Sample generates samples for noise eps (flat, len(prompts) noises, e.g. hypernoise.PromptNoise)
// and prompt ids with the chosen method on model m through the inference pipeline, and returns
// them (flat) with the method's cost per sample.
func Sample(backend backends.Backend, m *family.Model, eps []float32, prompts []int32, o SampleOptions) ([]float32, hypernoise.Cost, error) {
	if err := o.Validate(); err != nil {
		return nil, hypernoise.Cost{}, err
	}
	if o.RewardSpec != "" {
		if err := m.Rewards.Check(o.RewardSpec); err != nil {
			return nil, hypernoise.Cost{}, err
		}
	}
	var folders []*infer.Folder
	if o.Hypernet != nil {
		folders = append(folders, o.Hypernet)
	}
	p, err := NewPipeline(backend, m, folders...)
	if err != nil {
		return nil, hypernoise.Cost{}, err
	}
	defer p.Close()
	if o.Method == finetune.Name {
		if err := loadFinetune(p, m, o.Hypernet.Dir); err != nil {
			return nil, hypernoise.Cost{}, err
		}
	}
	meth, err := p.Method(infer.Request{Method: o.Method, Reward: o.RewardSpec, N: o.N, Steps: o.Steps, Beta: o.Beta})
	if err != nil {
		return nil, hypernoise.Cost{}, err
	}
	n := len(prompts)
	x, cost, err := meth.Generate(tensors.FromFlatDataAndDimensions(eps, append([]int{n}, m.Generator.NoiseShape()...)...),
		tensors.FromValue(prompts))
	if err != nil {
		return nil, cost, err
	}
	return tensors.MustCopyFlatData[float32](x), cost, nil
}

// loadFinetune loads the fine-tune baseline cached in a hypernetwork folder (written by
// `hypernoise eval`) into pipeline p, whose model is im, and makes it p's fine-tuned generator.
func loadFinetune(p *infer.Pipeline, im *family.Model, dir string) error {
	cfg, err := infer.ReadFinetune(dir)
	if err != nil {
		return fmt.Errorf("no fine-tune baseline in %s (%v); `hypernoise eval --hypernet %s` trains and caches it", dir, err, dir)
	}
	if cfg.BaseHash != im.Hash {
		return fmt.Errorf("%s: the fine-tune was trained for other %s weights", filepath.Join(dir, infer.FinetuneConfigFile), im.Generator.Name())
	}
	ft, err := finetune.New(im.Generator, cfg.Rank, 0, "finetune")
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, infer.FinetuneConfigFile), err)
	}
	err = p.Update(func(ctx *context.Context) error { return infer.LoadFinetuneWeights(ctx, dir, ft.Scope()) })
	if err != nil {
		return fmt.Errorf("fine-tune baseline: %w", err)
	}
	p.SetFinetuned(ft)
	return nil
}

// MethodList is the registered method names, comma-separated (for usage text).
func MethodList() string { return strings.Join(hypernoise.MethodNames(), ", ") }
