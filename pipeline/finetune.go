package pipeline

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/ckpt"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/progress"
)

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
	Result     *infer.TrainSummary  `json:"result,omitempty"`
}

// LoadOrTrainFinetune returns the fine-tune baseline of model im for the reward spec: the
// generator with LoRA adapters of the given rank trained on -r alone (no regularizer), with the
// same optimizer settings as the hypernetwork. The adapters are cached in dir (reloaded if their
// config matches).
func LoadOrTrainFinetune(backend backends.Backend, im *family.Model, spec string, rank int, cfg hypernet.TrainConfig, dir string, prog progress.Func) (*finetune.Model, error) {
	ft, err := finetune.New(im.Generator, rank, 0, "finetune")
	if err != nil {
		return nil, err
	}
	want := FinetuneConfig{RewardSpec: spec, Rank: rank, BaseHash: im.Hash, Train: cfg}
	var have FinetuneConfig
	if err := ckpt.ReadJSON(filepath.Join(dir, FinetuneConfigFile), &have); err == nil &&
		have.RewardSpec == want.RewardSpec && have.Rank == want.Rank && have.BaseHash == want.BaseHash &&
		have.Train.Steps == cfg.Steps && have.Train.Seed == cfg.Seed {
		if err := hypernet.LoadWeightsWith(im.Context, filepath.Join(dir, FinetuneFile), nil, ckpt.LoadOptions{Scopes: []string{ft.Scope()}}); err == nil {
			return ft, nil
		}
	}
	reward, err := im.Rewards.Parse(spec)
	if err != nil {
		return nil, err
	}
	prob, err := ft.Problem(reward)
	if err != nil {
		return nil, err
	}
	cfg.CheckpointDir, cfg.Resume = "", false
	res, err := hypernet.Train(backend, im.Context, prob, cfg, prog)
	if err != nil {
		return nil, fmt.Errorf("fine-tune baseline: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	want.Result = summarize(res)
	if err := hypernet.SaveWeights(im.Context, ft.Scope(), filepath.Join(dir, FinetuneFile), want); err != nil {
		return nil, err
	}
	return ft, nil
}
