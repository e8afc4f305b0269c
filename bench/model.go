package bench

import (
	"fmt"
	"time"

	"github.com/gomlx/gomlx/backends"

	"github.com/hypernoise/hypernoise/family"
	"github.com/hypernoise/hypernoise/hypernet"
	"github.com/hypernoise/hypernoise/pipeline"
)

// ModelStep is the time of the HyperNoise training step on an imported model (a model spec): a LoRA
// copy of the generator's backbone whose output layer is its LoRA branch (so f = 0 at step 0),
// eps' = eps + f(eps, c), the frozen generator and the reward, loss -r + 0.5 mean(f^2), the backward
// pass and an AdamW update: the step make_t2i.py --bench times in PyTorch.
type ModelStep struct {
	Model          string  `json:"model"`
	Backend        string  `json:"backend"`
	Reward         string  `json:"reward"`
	Batch          int     `json:"batch"`
	Rank           int     `json:"lora_rank"`
	Steps          int     `json:"steps"`           // timed steps
	CompileSeconds float64 `json:"compile_seconds"` // the first step: graph building, compilation and one run
	StepMS         float64 `json:"step_ms"`         // median of the timed steps (after warmSteps-1 more untimed ones)
	MinStepMS      float64 `json:"min_step_ms"`
	FirstLoss      float64 `json:"first_loss"`
	LastLoss       float64 `json:"last_loss"`
}

// TimeModelStep times the HyperNoise step on im with reward spec reward (im's default if empty), LoRA
// rank rank and batch batch: one step that compiles, warmSteps-1 untimed and steps timed ones.
func TimeModelStep(backend backends.Backend, im *family.Model, reward string, batch, rank, steps int) (*ModelStep, error) {
	if reward == "" {
		reward = im.DefaultReward
	}
	r, err := im.Rewards.Parse(reward)
	if err != nil {
		return nil, err
	}
	opts := pipeline.DefaultTrainOptions()
	opts.Modulator.Rank = rank
	mod, err := opts.Modulator.Build(im.Generator, "bench_hypernet")
	if err != nil {
		return nil, err
	}
	prob, err := hypernet.NewProblem(im.Generator, mod, hypernet.Objective{Reward: r, Reg: opts.Reg, Weight: opts.RegWeight})
	if err != nil {
		return nil, err
	}
	cfg := opts.Train
	cfg.Steps, cfg.BatchSize, cfg.CheckpointEvery, cfg.WarmupSteps = warmSteps+steps, batch, 0, 0
	var times []float64
	var compile float64
	last := time.Now()
	report := func(done, _ int, _ string) {
		now := time.Now()
		switch {
		case done == 1:
			compile = now.Sub(last).Seconds()
		case done > warmSteps:
			times = append(times, float64(now.Sub(last))/1e6)
		}
		last = now
	}
	res, err := hypernet.Train(backend, im.Context, prob, cfg, report)
	if err != nil {
		return nil, fmt.Errorf("HyperNoise step on %s: %w", im.Generator.Name(), err)
	}
	if len(times) == 0 {
		return nil, fmt.Errorf("HyperNoise step on %s: no step was timed", im.Generator.Name())
	}
	minMS := times[0]
	for _, t := range times {
		minMS = min(minMS, t)
	}
	return &ModelStep{Model: im.Generator.Name(), Backend: backend.Name(), Reward: reward, Batch: batch, Rank: rank,
		Steps: len(times), CompileSeconds: compile, StepMS: median(times), MinStepMS: minMS,
		FirstLoss: res.Loss[0], LastLoss: res.Loss[len(res.Loss)-1]}, nil
}
