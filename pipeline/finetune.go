package pipeline

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/hypernoise/hypernoise/baselines/finetune"
	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/infer"
	"github.com/hypernoise/hypernoise/progress"
)

// LoadOrTrainFinetune returns the fine-tune baseline of model im for the reward spec: the
// generator with LoRA adapters of the given rank trained on -r alone (no regularizer), with the
// same optimizer settings as the hypernetwork. The adapters are cached in dir (reloaded if their
// config matches).
func LoadOrTrainFinetune(backend backends.Backend, im *family.Model, spec string, rank int, cfg hypernet.TrainConfig, dir string, prog progress.Func) (*finetune.Model, error) {
	ft, err := finetune.New(im.Generator, rank, 0, "finetune")
	if err != nil {
		return nil, err
	}
	want := infer.FinetuneConfig{RewardSpec: spec, Rank: rank, BaseHash: im.Hash, Train: cfg}
	if have, err := infer.ReadFinetune(dir); err == nil &&
		have.RewardSpec == want.RewardSpec && have.Rank == want.Rank && have.BaseHash == want.BaseHash &&
		have.Train.Steps == cfg.Steps && have.Train.Seed == cfg.Seed {
		if err := infer.LoadFinetuneWeights(im.Context, dir, ft.Scope()); err == nil {
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
	want.Result = summarize(res)
	if err := infer.SaveFinetune(im.Context, ft.Scope(), dir, want); err != nil {
		return nil, err
	}
	return ft, nil
}
